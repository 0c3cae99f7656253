"""Exported models (ONNX vs onnxruntime, weights, model folders) and the dashboard over HTTP."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

import nas
from nas.errors import DataError
from nas.results import ONNX_TOLERANCE, export_onnx
from nas.apps import run_search
from search_spaces import Arch, Head, SandglassStage, ShuffleStage, Stem

SHUFFLE = Arch(stem=Stem(24), stages=(ShuffleStage(96, 2, groups=3, shuffle=True), ShuffleStage(192, 2, groups=8)),
               num_classes=10, in_channels=1, resolution=28)
SANDGLASS = Arch(stem=Stem(16, act="relu6"), stages=(SandglassStage(32, 2, stride=2, reduction=4, identity_mult=0.5),
                 SandglassStage(64, 3, stride=2, reduction=2, identity_mult=0.75, keep_3x3=False)),
                 head=Head(dropout=0.2), num_classes=10, in_channels=3, resolution=32)


@pytest.mark.parametrize("arch", [SHUFFLE, SANDGLASS], ids=["shuffle_g3_g8", "sandglass_m0.5_m0.75"])
def test_onnx_export_matches_pytorch_in_onnxruntime(arch: Arch, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nas.build_model(arch).eval()
    # Non-trivial BatchNorm statistics, so that the export of eval-mode BN is exercised too.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    path = tmp_path / "model.onnx"
    export_onnx(model, arch, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # the batch dimension is dynamic
        x = np.random.default_rng(batch).standard_normal((batch, arch.in_channels, arch.resolution, arch.resolution))
        x = x.astype(np.float32)
        (got,) = session.run(None, {"images": x})
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 10)
        assert np.abs(got - expected).max() <= ONNX_TOLERANCE


def test_load_model_restores_weights_and_refuses_pickled_code(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = nas.build_model(SANDGLASS).eval()
    (tmp_path / "arch.yaml").write_text(SANDGLASS.to_yaml())
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    loaded = nas.load_model(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    assert not loaded.training
    assert torch.equal(loaded(x), model(x))

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    with open(tmp_path / "weights.pt", "wb") as f:
        pickle.dump({"stem.0.0.weight": Payload()}, f)
    with pytest.raises(DataError, match="torch.load with weights_only refused it"):
        nas.load_model(tmp_path)


def _cli(entry: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = entry.removesuffix("_main")  # python -m nas search|train|export|...
    return subprocess.run([sys.executable, "-m", "nas", command, *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(Path.cwd())})


FAST_CLI = ["data=synthetic", "budget.mflops=1", "proxy.train_fraction=0.3", "proxy.on_cpu=null",
            "search.n_trials=3", "study.name=demo"]


def test_three_commands_from_search_to_onnx(tmp_path: Path) -> None:
    search = _cli("search_main", *FAST_CLI, cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    with open(tmp_path / "runs/demo/pareto.csv") as f:
        first = next(csv.DictReader(f))
    yaml_path = first["yaml"]
    train = _cli("train_main", yaml_path, "data=synthetic", "train.epochs=2", cwd=tmp_path)
    assert train.returncode == 0, train.stderr
    metrics = json.loads((tmp_path / yaml_path).with_suffix(".metrics.json").read_text())
    assert metrics["test_acc"] > 0.5  # 4 classes: well above chance after 2 epochs
    export = _cli("export_main", "study.name=demo", "data=synthetic", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    folder = tmp_path / "runs/demo/models" / f"trial_{int(first['trial']):04d}"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "arch.yaml", "metrics.json", "model.onnx", "weights.pt"]
    card = (folder / "README.md").read_text()
    assert f"test accuracy **{metrics['test_acc']:.4f}**" in card and first["genotype"] in card
    model = nas.load_model(folder)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 1, 16, 16)).astype(np.float32)
    with torch.no_grad():
        assert np.abs(session.run(None, {"images": x})[0] - model(torch.from_numpy(x)).numpy()).max() <= ONNX_TOLERANCE


def test_nas_train_trains_the_top_of_the_front_once_and_exports_it_with_cpu_speed(tmp_path: Path) -> None:
    assert _cli("search_main", *FAST_CLI, cwd=tmp_path).returncode == 0
    with open(tmp_path / "runs/demo/pareto.csv") as f:
        front = list(csv.DictReader(f))
    best = max(front, key=lambda row: float(row["val_acc"]))  # the most accurate member is the top 1
    args = ["study.name=demo", "data=synthetic", "train.epochs=1", "train.top_k=1"]
    other_data = _cli("train_main", "study.name=demo", "train.epochs=1", cwd=tmp_path)  # the default data
    assert other_data.returncode == 2 and other_data.stderr.splitlines() == [
        "error: data: fashion_mnist is not the data study 'demo' was searched on; its front is trained on "
        "the data that chose it (allowed: data=synthetic)"], other_data.stderr
    assert not (tmp_path / "runs/demo/models").exists()
    first = _cli("train_main", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    export = tmp_path / "runs/demo/export"
    trained = sorted(p.name for p in export.glob("*.metrics.json"))
    assert trained == [f"trial_{int(best['trial']):04d}.metrics.json"]
    metrics = json.loads((export / trained[0]).read_text())
    assert 0 <= metrics["test_acc"] <= 1 and metrics["epochs"] == 1 and round(metrics["val_acc_proxy"], 4) == float(best["val_acc"])
    assert f"{metrics['test_acc']:.4f}" in first.stdout
    folder = tmp_path / "runs/demo/models" / f"trial_{int(best['trial']):04d}"
    assert [p.name for p in (tmp_path / "runs/demo/models").iterdir()] == [folder.name]
    speed = json.loads((folder / "metrics.json").read_text())["cpu_speed"]
    assert speed["latency_ms_batch1"] > 0 and speed["throughput_img_s_batch64"] > 0
    assert "ms per image at batch 1" in (folder / "README.md").read_text()
    weights = export / trained[0].replace(".metrics.json", ".pt")
    stamp = weights.stat().st_mtime_ns
    again = _cli("train_main", *args, cwd=tmp_path)  # same recipe: nothing is trained again
    assert again.returncode == 0 and weights.stat().st_mtime_ns == stamp
    assert "0 front members to train, 1 already trained with this recipe" in again.stdout + again.stderr
    other = _cli("train_main", *args[:-2], "train.epochs=2", "train.top_k=1", cwd=tmp_path)
    assert other.returncode == 0 and weights.stat().st_mtime_ns != stamp
    assert json.loads((export / trained[0]).read_text())["epochs"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_dashboard_serves_study_metric_names_trials_and_artifacts(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("search.n_trials=2", name="dash")
    run_search(cfg, progress=False)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nas", "dashboard",
         "data=synthetic", "study.name=dash", f"output_dir={cfg.output_dir}", f"dashboard.port={port}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                summaries = json.loads(_get(f"{base}/api/studies"))["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.5)
        assert [s["study_name"] for s in summaries] == ["dash"]
        study_id = summaries[0]["study_id"]
        detail = json.loads(_get(f"{base}/api/studies/{study_id}"))
        assert detail["objective_names"] == ["val_acc", "MMACs"]
        trained = [t for t in detail["trials"] if {"key": "status", "value": "admitted"} in t["user_attrs"]]
        assert len(trained) == 2
        for trial in trained:
            keys = {a["key"] for a in trial["user_attrs"]}
            assert {"genotype", "macs", "params", "train_s", "img_s", "device", "val_acc"} <= keys
            artifacts = {a["filename"]: a for a in trial["artifacts"]}
            name = f"trial_{trial['number']:04d}"
            if trial["state"] == "Complete":  # reached the top rung: its weights too
                assert set(artifacts) == {f"{name}.yaml", f"{name}.pt"}
            else:
                assert set(artifacts) == {f"{name}.yaml"}
            body = _get(f"{base}/artifacts/{study_id}/{trial['trial_id']}/{artifacts[name + '.yaml']['artifact_id']}")
            assert Arch.from_yaml(body.decode()).genotype() == next(
                a["value"] for a in trial["user_attrs"] if a["key"] == "genotype")
        files = {a["filename"]: a["artifact_id"] for a in detail["artifacts"]}
        assert set(files) == {"pareto.csv", "pareto.png"}
        served_csv = _get(f"{base}/artifacts/{study_id}/{files['pareto.csv']}")
        assert served_csv == (Path(cfg.output_dir) / "pareto.csv").read_bytes()
        assert _get(f"{base}/artifacts/{study_id}/{files['pareto.png']}")[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_dashboard_port_in_use_is_one_line(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("search.n_trials=1", name="dash")
    run_search(cfg, progress=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "nas", "dashboard", "data=synthetic", "study.name=dash",
                               f"output_dir={cfg.output_dir}", f"dashboard.port={port}"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (f"error: dashboard.port: 127.0.0.1:{port} is in use by another "
                                                    "program (Address already in use); choose another dashboard.port")


# -- bad weights files ------------------------------------------------------------------------------


class _Code:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def _bad_weights(kind: str, good: bytes) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "not torch.save":
        return b"hello world" * 10
    if kind == "pickled code":
        return pickle.dumps({"stem.0.0.weight": _Code()})
    buffer = io.BytesIO()  # another network's weights
    torch.save(nas.build_model(SHUFFLE).state_dict(), buffer)
    return buffer.getvalue()


BAD_WEIGHTS = {
    "truncated": "RuntimeError: PytorchStreamReader failed reading zip archive",
    "not torch.save": "KeyError",
    "pickled code": "torch.load with weights_only refused it: only tensors and plain containers are read",
    "another network": "they are another network's: Error(s) in loading state_dict for Network",
}


def test_export_refuses_bad_weights_naming_the_file_and_leaves_no_folder_behind(make_cfg) -> None:
    from nas.results import export_models

    cfg = make_cfg("search.n_trials=1")
    result = run_search(cfg, progress=False)
    trial = next(iter(result.exported))
    weights = Path(cfg.output_dir) / "export" / f"trial_{trial:04d}.pt"
    models = Path(cfg.output_dir) / "models"
    good = io.BytesIO()
    torch.save(nas.build_model(Arch.from_yaml(Path(result.exported[trial]))).state_dict(), good)
    for kind, reason in BAD_WEIGHTS.items():
        weights.write_bytes(_bad_weights(kind, good.getvalue()))
        with pytest.raises(DataError) as info:
            export_models(cfg)
        assert str(info.value).startswith(f"{weights} cannot be loaded as weights ("), info.value
        assert reason in str(info.value) and str(info.value).endswith("; train it again with nas-train"), info.value
        assert not models.exists() or not list(models.iterdir()), kind
    weights.write_bytes(good.getvalue())
    (folder,) = export_models(cfg)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    weights.write_bytes(_bad_weights("truncated", b""))
    with pytest.raises(DataError):
        export_models(cfg)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the earlier export is kept whole
    assert sorted(p.name for p in models.iterdir()) == [folder.name]


def test_load_model_names_a_bad_weights_file(tmp_path: Path) -> None:
    (tmp_path / "arch.yaml").write_text(SANDGLASS.to_yaml())
    (tmp_path / "weights.pt").write_bytes(b"")
    with pytest.raises(DataError, match=r"weights.pt cannot be loaded as weights \(EOFError"):
        nas.load_model(tmp_path)


def test_scratch_folders_of_a_killed_export_are_removed_and_a_live_ones_kept(make_cfg) -> None:
    import os
    import time

    from nas.files import exclusive
    from nas.results import export_models

    cfg = make_cfg("search.n_trials=1")
    run_search(cfg, progress=False)
    (folder,) = export_models(cfg)
    models = folder.parent
    # What kill -9 during an export leaves: a hidden scratch folder, half-filled, that nobody holds.
    abandoned, live = models / f".{folder.name}.k1ll3d", models / f".{folder.name}.l1v3"
    for scratch in (abandoned, live):
        (scratch / folder.name).mkdir(parents=True)
        (scratch / folder.name / "weights.pt").write_bytes(b"half")
        old = time.time() - 3600
        os.utime(scratch, (old, old))
    with exclusive(live / ".lock") as held:  # another export, still building its folder
        assert held
        export_models(cfg)
    assert sorted(p.name for p in models.iterdir()) == sorted([folder.name, live.name])
