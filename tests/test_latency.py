"""`nas.latency`: measured milliseconds per image through onnxruntime (no timing is asserted:
speed is measured in bench/, never in a test)."""

from __future__ import annotations

import pytest
import torch

import nas
from nas.errors import ConfigError
from search_spaces import reference


def test_latency_of_an_arch_and_of_its_model_reports_the_median_between_its_deciles() -> None:
    arch = reference("shufflenet_v1_g3_0.25x", num_classes=10, in_channels=1, resolution=28)
    for subject in (arch, nas.build_model(arch)):
        measured = nas.latency(subject, repeats=12, warmup=2)
        assert 0 < measured.p10_ms <= measured.median_ms <= measured.p90_ms
        assert (measured.repeats, measured.batch_size, measured.threads) == (12, 1, 1)
        assert measured.spread >= 0 and "ms per image" in str(measured)


def test_latency_is_per_image_at_a_larger_batch() -> None:
    arch = reference("mobilenext_0.35", num_classes=10, in_channels=1, resolution=28)
    assert nas.latency(arch, batch_size=8, repeats=5, warmup=1).batch_size == 8


@pytest.mark.parametrize(("subject", "options", "message"), [
    (torch.nn.Linear(2, 2), {}, "arch_or_model: Linear is not an Arch or a model built from one"),
    ("shufflenet_v1_g3_0.25x", {}, "arch_or_model: str is not an Arch"),
    (None, {"batch_size": 0}, "batch_size: 0 is not allowed (allowed: an integer >= 1)"),
    (None, {"threads": 1.5}, "threads: 1.5 is not allowed (allowed: an integer >= 1)"),
    (None, {"repeats": 2}, "repeats: 2 is not allowed (allowed: an integer >= 3)"),
])
def test_bad_latency_arguments_are_one_config_error(subject, options, message) -> None:
    subject = subject if subject is not None else reference("mobilenext_0.35", num_classes=10, in_channels=1,
                                                             resolution=28)
    with pytest.raises(ConfigError) as info:
        nas.latency(subject, **options)
    assert str(info.value) == message or str(info.value).startswith(message)
