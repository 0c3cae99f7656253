"""`nas.latency` and objective=latency: measured milliseconds per image through onnxruntime (no
timing is asserted: speed is measured in bench/, never in a test; what is checked is what is
timed, where the times go, and that the front is the one they define)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

import nas
from nas.errors import ConfigError
from nas.timing import _export_for_timing, onnx_session
from search_spaces import reference

#: A quick search on synthetic images, timed: the papers' networks left out, 4 trained to the top.
QUICK = ("objective=latency", "data=synthetic", "space=shufflenet", "budget.mflops=1.5", "search.n_trials=4",
         "search.start_from_references=false", "search.probe_samples=200", "proxy.on_cpu=null",
         "proxy.train_fraction=0.3", "search.halving.enabled=false", "objective.latency.repeats=5",
         "objective.latency.warmup=1")


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


def test_the_timed_graph_computes_what_the_network_computes() -> None:
    """What is timed is the network itself: the ONNX graph the timer runs gives the model's
    outputs, and the model stays in its mode."""
    torch.manual_seed(0)
    arch = reference("shufflenet_v1_g3_0.25x", num_classes=10, in_channels=1, resolution=28)
    model = nas.build_model(arch).train()
    images = torch.randn(3, 1, 28, 28)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        _export_for_timing(model, (1, 28, 28), path, batch_size=3)
        (got,) = onnx_session(path, 1).run(None, {"images": images.numpy()})
    assert model.training
    with torch.no_grad():
        expected = model.eval()(images).numpy()
    assert np.abs(got - expected).max() < 1e-4


def _nondominated(points: dict[int, tuple[float, float]]) -> set[int]:
    """Trials no other beats on (higher accuracy, fewer ms), by the definition."""
    return {i for i, (acc, ms) in points.items()
            if not any(a >= acc and m <= ms and (a, m) != (acc, ms) for a, m in points.values())}


def test_objective_latency_times_every_trained_network_and_draws_the_front_on_milliseconds(tmp_path,
                                                                                         monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = nas.search(*QUICK, "study.name=lat", "search.workers=1", progress=False)
    study = r.study
    assert study.metric_names == ["val_acc", "latency_ms"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    admitted = [t for t in study.get_trials() if t.user_attrs.get("status") == "admitted"]
    assert admitted and all(t.user_attrs["latency_ms"] > 0 for t in admitted)  # timed before training, pruned too
    trained = [t for t in admitted if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trained) == r.trained == 4
    for t in trained:
        assert t.values == [t.user_attrs["val_acc"], t.user_attrs["latency_ms"]]
    points = {t.number: (t.user_attrs["val_acc"], t.user_attrs["latency_ms"]) for t in trained}
    assert {m.trial for m in r.front} == _nondominated(points)
    assert [m.latency_ms for m in r.front] == sorted(m.latency_ms for m in r.front)
    with open(tmp_path / "runs" / "lat" / "pareto.csv") as f:
        rows = list(csv.DictReader(f))
    assert {int(row["trial"]): float(row["latency_ms"]) for row in rows} == {
        m.trial: round(m.latency_ms, 4) for m in r.front}
    frame = r.to_dataframe()
    assert frame.loc[trained[0].number, "latency_ms"] == trained[0].user_attrs["latency_ms"]

    # Milliseconds of another thread count, or of another machine, are not the study's: refused.
    with pytest.raises(ConfigError, match=r"^objective\.latency\.threads: 2 differs from the 1 "):
        nas.search(*QUICK, "study.name=lat", "search.workers=1", "objective.latency.threads=2", progress=False)
    monkeypatch.setattr("nas.search.storage.machine", lambda: "Another CPU, 64 cores")
    with pytest.raises(ConfigError, match=r"^objective: study 'lat' timed its networks on .+, and this machine is "
                                          r"Another CPU, 64 cores: latencies from two machines cannot be compared"):
        nas.search(*QUICK, "study.name=lat", "search.workers=1", progress=False)


def test_a_pareto_search_leaves_latency_out_and_its_csv_column_empty(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = nas.search(*QUICK[1:], "study.name=macs", "search.n_trials=1", "search.workers=1", progress=False)
    assert r.study.metric_names == ["val_acc", "MMACs"]
    assert all("latency_ms" not in t.user_attrs for t in r.study.get_trials())
    with open(tmp_path / "runs" / "macs" / "pareto.csv") as f:
        assert {row["latency_ms"] for row in csv.DictReader(f)} == {""}


@pytest.mark.parametrize(("override", "message"), [
    ("objective.latency.repeats=2", "objective.latency.repeats: 2 is not allowed"),
    ("objective.latency.threads=0", "objective.latency.threads: 0 is not allowed"),
    ("objective.pruner={_target_:optuna.pruners.MedianPruner}",
     "objective.pruner: Optuna's pruners are single-objective: use objective=accuracy"),
])
def test_bad_latency_settings_are_one_config_error(override, message, tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        nas.search(*QUICK, override, output_dir=str(tmp_path / "x"), progress=False)
    assert str(info.value).startswith(message)
    assert not (tmp_path / "x").exists()
