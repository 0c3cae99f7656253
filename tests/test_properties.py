"""Property tests: every architecture a space can sample is a valid, counted, serialisable network."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ptflops import get_model_complexity_info

import nas
from search_spaces import SPACES, Arch, DataShape


class DrawnSuggests:
    """A trial whose every choice hypothesis draws (and can shrink)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return low + step * self.draw(st.integers(0, (high - low) // step), label=name)

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        if step is None:
            return self.draw(st.floats(low, high), label=name)
        return low + step * self.draw(st.integers(0, round((high - low) / step)), label=name)

    def suggest_categorical(self, name: str, choices):
        return self.draw(st.sampled_from(list(choices)), label=name)


@st.composite
def sampled(draw: st.DrawFn, space: str) -> Arch:
    shape = DataShape(
        in_channels=draw(st.sampled_from([1, 3])),
        resolution=draw(st.sampled_from([16, 28, 32, 96])),
        num_classes=draw(st.sampled_from([4, 10, 100])),
    )
    # Sometimes within a budget (sizes drawn as fractions of what fits), sometimes the plain space.
    mflops = draw(st.sampled_from([None, 1.0, 5.0, 20.0]), label="budget")
    usage = None if mflops is None else (lambda arch: nas.complexity(arch).mmacs / mflops)
    return SPACES[space](DrawnSuggests(draw), shape, usage)


@pytest.mark.parametrize("space", sorted(SPACES))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_sample_builds_runs_counts_and_round_trips(space: str, data: st.DataObject) -> None:
    arch = data.draw(sampled(space))
    model = nas.build_model(arch).eval()
    size = (arch.in_channels, arch.resolution, arch.resolution)
    with torch.no_grad():
        out = model(torch.randn(2, *size))
    assert out.shape == (2, arch.num_classes)
    ours = nas.complexity(arch)
    macs, params = get_model_complexity_info(
        model, size, as_strings=False, print_per_layer_stat=False, backend="aten"
    )
    assert ours.macs + arch.num_classes == macs  # ptflops also counts the classifier's bias adds
    assert ours.params == params
    assert Arch.from_yaml(arch.to_yaml()) == arch
    assert Arch.from_genotype(arch.genotype()) == arch
