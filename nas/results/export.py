"""Export: the Pareto architectures as YAML specs, and deployable model folders (spec, weights,
ONNX checked against onnxruntime, metrics, model card)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from search_spaces import Arch

from ..complexity import complexity
from ..errors import ConfigError, DataError
from ..files import atomic_write, exclusive
from ..model import MAX_MPARAMS, build_model
from ..timing import machine, onnx_session, run_times
from .front import FrontMember

__all__ = ["ONNX_TOLERANCE", "TRAINING_FIELDS", "export_front", "export_model", "export_onnx", "load_model", "load_weights",
           "onnx_speed", "read_training_metrics"]

log = logging.getLogger(__name__)

#: Largest absolute difference allowed between onnxruntime's and PyTorch's logits (float32).
ONNX_TOLERANCE = 1e-4


def export_front(front: Sequence[FrontMember], folder: Path) -> dict[int, str]:
    """Write `trial_NNNN.yaml` for each front member and drop the YAMLs of trials that left the
    front, except those nas-train trained (weights or metrics beside them: the YAML stays with its
    model); returns {trial number: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for c in front:
        path = folder / f"trial_{c.trial:04d}.yaml"
        arch = c.arch  # validates what the study stored before writing it out
        header = f"# trial {c.trial}: val_acc {c.val_acc:.4f}, {c.mmacs:.3f} MMACs, {c.mparams:.4f} M params\n"
        atomic_write(path, header + arch.to_yaml())
        paths[c.trial] = str(path)
    for stale in folder.glob("trial_*.yaml"):
        # Only the files this writes (trial_NNNN.yaml): a user's trial_0002_wider.yaml stays.
        if (re.fullmatch(r"trial_\d{4,}\.yaml", stale.name) and str(stale) not in paths.values()
                and not any(stale.with_suffix(s).exists() for s in (".pt", ".metrics.json"))):
            stale.unlink()
    return paths


def load_model(folder: str | Path) -> torch.nn.Module:
    """The trained network of an exported folder (`arch.yaml` + `weights.pt`), in eval mode.

    Weights are read with `weights_only=True`: a weights file cannot run code.
    """
    folder = Path(folder)
    arch = Arch.from_yaml(folder / "arch.yaml")
    weights = folder / "weights.pt"
    if not weights.is_file():
        raise ConfigError(
            "weights", f"{folder} has no weights.pt: train it with nas-train and export again, or use "
            "nas.build_model(nas.Arch.from_yaml(...)) for an untrained network"
        )
    model = build_model(arch)
    load_weights(model, weights)
    return model.eval()


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """Load the state dict in `path` into `model` and return it. Read with `weights_only=True`: a
    weights file cannot run code. A file that cannot be read, is refused, or holds another
    network's weights raises `DataError` naming it."""
    import pickle

    _check_weights_file(model, path)
    try:
        with warnings.catch_warnings():
            # torch warns of pickle protocols it may not read; what it cannot read is reported below.
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "torch.load with weights_only refused it: only tensors and plain containers are read"
        raise DataError(f"{path} cannot be loaded as weights ({reason}); train it again with nas-train") from None
    except Exception as err:  # noqa: BLE001 - torch.load reports a bad file as RuntimeError, EOFError, KeyError, ...
        reason = f"{type(err).__name__}: {str(err).split('. ')[0].splitlines()[0]}" if str(err) else type(err).__name__
        raise DataError(f"{path} cannot be loaded as weights ({reason}); train it again with nas-train") from None
    try:
        if not isinstance(state, dict):
            raise TypeError(f"it holds a {type(state).__name__}, not a state dict")
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        reason = f"they are another network's: {str(err).splitlines()[0].rstrip(':')}" if isinstance(err, RuntimeError) else str(err)
        raise DataError(f"{path} cannot be loaded as weights ({reason}); train it again with nas-train") from None
    return state


def _check_weights_file(model: torch.nn.Module, path: Path) -> None:
    """Refuse, before reading it, a weights file that could cost far more memory than the network
    it is for: `torch.save` writes a zip archive of stored (uncompressed) entries, so its size is
    what loading it costs; a compressed entry (a "zip bomb": megabytes that inflate to gigabytes)
    or a file many times the network's size is not ours. Other files go to `torch.load`."""
    import zipfile

    expected = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    limit = 4 * expected + (1 << 20)  # room for the archive's names, records and alignment
    try:
        size = path.stat().st_size
        if size > limit:
            raise DataError(f"{path} is {size} bytes, too large for weights of this network ({expected} bytes of "
                            "tensors); train it again with nas-train")
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (OSError, zipfile.BadZipFile):
        return  # torch.load reports what is wrong with it
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise DataError(f"{path} holds compressed entries ({packed[0]}), which torch.save never writes and which "
                        "can inflate to far more than the file; train it again with nas-train")


def export_onnx(model: torch.nn.Module, arch: Arch, path: Path, *, seed: int = 0) -> float:
    """Write the model as ONNX (dynamic batch) and return the largest absolute difference between
    onnxruntime's and PyTorch's outputs on random inputs; raises if it exceeds ONNX_TOLERANCE."""
    import numpy as np
    import onnxruntime

    model = model.eval()
    size = (arch.in_channels, arch.resolution, arch.resolution)
    example = torch.randn(2, *size)
    # The exporter and its graph optimizer narrate every pass (stdout and INFO logs); keep the
    # terminal for our own messages.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_loggers(
        "onnxscript", "onnx_ir", "torch.onnx", "torch.export"
    ):
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=["images"], output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
        )
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        program.save(str(staged))
        inputs = torch.randn(5, *size, generator=torch.Generator().manual_seed(seed))
        session = onnxruntime.InferenceSession(str(staged), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"images": inputs.numpy()})
        with torch.no_grad():
            expected = model(inputs).numpy()
        diff = float(np.abs(got - expected).max())
        if not diff <= ONNX_TOLERANCE:
            raise RuntimeError(f"ONNX export of {arch.genotype()} differs from PyTorch by {diff:.2e}")
        staged.replace(path)
    return diff


def onnx_speed(path: Path, arch: Arch, *, threads: int | None = None, seconds: float = 1.0) -> dict[str, Any]:
    """CPU speed of an ONNX model through onnxruntime: median latency of one image (batch 1) and
    throughput at batch 64, each after warm-up runs, on `threads` intra-op threads (None: all
    cores), with the machine it was measured on."""
    import os
    import statistics

    import numpy as np
    import onnxruntime

    session = onnx_session(path, threads)
    rng = np.random.default_rng(0)

    def median_s(batch: int) -> float:
        images = rng.standard_normal((batch, arch.in_channels, arch.resolution, arch.resolution), dtype=np.float32)
        return statistics.median(run_times(session, images, warmup=3, repeats=5, seconds=seconds))

    latency, batch64 = median_s(1), median_s(64)
    return {
        "latency_ms_batch1": round(1e3 * latency, 4),
        "throughput_img_s_batch64": round(64 / batch64, 1),
        "threads": threads or os.cpu_count(),
        "machine": machine(),
        "onnxruntime": onnxruntime.__version__,
    }


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Any:
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


SCRATCH_LOCK = ".lock"  # held by the export building a scratch folder
ABANDONED_S = 60.0  # a scratch folder unlocked for this long was left by an export that was killed


def _remove_abandoned_scratch(folder: Path) -> None:
    """Remove the scratch folders (`.<name>.*`) that exports of `folder` killed midway left: those
    whose lock no process holds and that have not changed for ABANDONED_S."""
    import shutil

    for scratch in folder.parent.glob(f".{folder.name}.*"):
        try:
            if not scratch.is_dir() or time.time() - scratch.stat().st_mtime < ABANDONED_S:
                continue
            with exclusive(scratch / SCRATCH_LOCK) as abandoned:
                if abandoned:
                    shutil.rmtree(scratch, ignore_errors=True)
        except OSError:
            continue  # removed by another export meanwhile


def export_model(arch: Arch, folder: Path, *, weights: Path | None, metrics: dict[str, Any], command: str,
                 max_mparams: float | None = MAX_MPARAMS, speed_s: float = 1.0) -> None:
    """A folder users can deploy from: arch.yaml, weights.pt (when trained), model.onnx,
    metrics.json and README.md (the model card). `speed_s` > 0 measures the ONNX model's CPU
    latency and throughput for about that many seconds per batch size (`onnx_speed`)."""
    model = build_model(arch, max_mparams=max_mparams)
    state = None if weights is None else load_weights(model, weights)  # before anything is written
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_scratch(folder)
    # Built in a scratch folder beside it and swapped in whole: a failure leaves no half-made folder,
    # and an earlier export stays as it was. The scratch folder's lock tells a live export's apart
    # from one a killed export left.
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}.") as scratch, \
            exclusive(Path(scratch) / SCRATCH_LOCK):
        staged = Path(scratch) / folder.name
        staged.mkdir()
        if state is not None:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            atomic_write(staged / "weights.pt", buffer.getvalue())
        atomic_write(staged / "arch.yaml", arch.to_yaml())
        diff = export_onnx(model, arch, staged / "model.onnx")
        cost = complexity(arch)
        record = {**metrics, "macs": cost.macs, "params": cost.params, "trained": weights is not None,
                  "onnx": {"max_abs_diff_vs_pytorch": diff, "tolerance": ONNX_TOLERANCE, "opset": "default",
                           "input": ["batch", *[arch.in_channels, arch.resolution, arch.resolution]]},
                  "cpu_speed": onnx_speed(staged / "model.onnx", arch, seconds=speed_s) if speed_s > 0 else None}
        atomic_write(staged / "metrics.json", json.dumps(record, indent=2) + "\n")
        atomic_write(staged / "README.md", _model_card(arch, record, command))
        if folder.exists():
            folder.replace(Path(scratch) / "previous")  # removed with the scratch folder
        staged.replace(folder)


#: What nas-train's `trial_NNNN.metrics.json` holds, which a model card and a resume rely on.
TRAINING_FIELDS = ("test_acc", "epochs", "genotype")


def read_training_metrics(path: Path) -> dict[str, Any] | None:
    """nas-train's metrics of one model; None when the file is missing, torn, or not one nas-train
    wrote (its fields missing or of other kinds: an accuracy outside 0..1 or not a number, epochs not
    a positive integer, a genotype not a string)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(data, dict) and all(k in data for k in TRAINING_FIELDS)):
        return None
    acc, epochs = data["test_acc"], data["epochs"]
    valid = (isinstance(acc, (int, float)) and not isinstance(acc, bool) and 0.0 <= acc <= 1.0
             and isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0
             and isinstance(data["genotype"], str))
    return data if valid else None


def _speed_line(speed: dict[str, Any] | None) -> str:
    if not speed:
        return "not measured"
    return (f"{speed['latency_ms_batch1']:.3f} ms per image at batch 1, {speed['throughput_img_s_batch64']:,.0f} "
            f"images/s at batch 64 (onnxruntime {speed['onnxruntime']}, {speed['threads']} threads, {speed['machine']})")


def _model_card(arch: Arch, record: dict[str, Any], command: str) -> str:
    full = record.get("full_training")
    if full:
        recipe = full.get("train", {})
        accuracy = (f"test accuracy **{full['test_acc']:.4f}** after {full['epochs']} epochs of full training on "
                    f"{full.get('train_images', '?')} images (batch {recipe.get('batch_size', '?')}, peak lr "
                    f"{recipe.get('lr', '?')}, label smoothing {recipe.get('label_smoothing', '?')}, seed "
                    f"{recipe.get('seed', '?')}; `{full.get('command', 'nas-train')}`); proxy validation accuracy "
                    f"{record['val_acc_proxy']:.4f}")
    elif record.get("weights_from"):
        test = record.get("test_acc_search")
        accuracy = (f"validation accuracy {record['val_acc_proxy']:.4f} at the top rung of the search's ladder"
                    + ("" if test is None else f", test accuracy **{test:.4f}** (measured once, after the search)")
                    + "; weights from that training (retrain with a longer recipe with `nas-train`)")
    else:
        accuracy = (f"proxy validation accuracy {record['val_acc_proxy']:.4f}. **Not trained**: the ONNX "
                    "file holds initial weights; train with `nas-train` and export again")
    size = f"{arch.in_channels}x{arch.resolution}x{arch.resolution}"
    return f"""# {record.get('study', '')} trial {record.get('trial', '')}

| | |
|---|---|
| genotype | `{arch.genotype()}` |
| MACs | {record['macs'] / 1e6:.3f} M multiply-adds per image |
| parameters | {record['params'] / 1e6:.4f} M |
| input | {size} float32 (batch dimension dynamic): pixel / 255, then (x - mean) / std with mean {record.get('normalize', {}).get('mean')}, std {record.get('normalize', {}).get('std')} |
| classes | {arch.num_classes} |
| data | {record.get('data', '')} |
| accuracy | {accuracy} |
| ONNX check | onnxruntime vs PyTorch, max abs difference {record['onnx']['max_abs_diff_vs_pytorch']:.2e} (allowed {ONNX_TOLERANCE:g}) |
| CPU speed | {_speed_line(record.get('cpu_speed'))} |
| produced by | `{command}` |

Files: `arch.yaml` (the spec; `nas.Arch.from_yaml` or `hydra.utils.instantiate` rebuild the network),
`weights.pt` (state dict, when trained), `model.onnx`, `metrics.json`.

```python
import nas
model = nas.load_model("{'path/to/this/folder'}")   # with weights, eval mode
```
"""
