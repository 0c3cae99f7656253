"""Full training of an exported architecture with a standard recipe, and its one test score.

The search never sees the test split; this is where it is read, once, after training.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from search_spaces import Arch

from search_spaces.fields import check_fields

from ..attrs import StudyAttr
from ..probes import check_device, check_folder
from ..complexity import complexity
from ..data import Dataset, Split, load_data
from ..errors import ConfigError
from ..files import atomic_write, exclusive
from ..model import build_model, check_size
from ..search import NasConfig, live_workers, open_finished_study
from ..training import RunSettings, evaluate, fit, pick_device
from .export import read_training_metrics
from .front import cost_axis, pareto_front, trained_members
from .report import export_models

__all__ = ["train_arch", "train_front", "train_full", "validate_train"]

log = logging.getLogger(__name__)

#: nas-train settings that choose what is trained or where, and leave a trained model as it is.
_NOT_RECIPE = ("top_k", "device", "channels_last", "eval_batch_size")


def validate_train(cfg: NasConfig) -> None:
    """Raise `ConfigError` naming the first invalid field of what nas-train uses, then probe its device."""
    check_fields(cfg.train, "train", ConfigError)
    check_fields(cfg.limits, "limits", ConfigError)
    check_device("train.device", cfg.train.device)


def train_full(cfg: NasConfig, *, command: str = "") -> dict[str, Any]:
    """Train `cfg.arch` on the whole training set (train + validation), test it once, and save
    `<name>.pt` (state dict) and `<name>.metrics.json` beside the YAML."""
    if not cfg.arch:
        raise ConfigError("arch", "name the architecture YAML: nas-train path/to/arch.yaml [overrides]")
    path = Path(cfg.arch)
    validate_train(cfg)
    arch = Arch.from_yaml(path)
    check_size(arch, cfg.limits.max_mparams)  # before the data is read: a typo must fail at once
    data = load_data(cfg.data)
    _check_shape(arch, data, path.name, cfg.data.name)
    model, metrics = train_arch(arch, data, cfg, command=command)
    return _save(model, metrics, path)


def train_arch(arch: Arch, data: Dataset, cfg: NasConfig, *, command: str = "",
               progress: Callable[[int, int], None] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train `arch` with the recipe `cfg.train` on train + validation (`train.max_train_images`
    of them when set), evaluate it once on the test split, and return the model and its metrics.
    `progress(epoch, epochs)` is called after each epoch."""
    t, d = cfg.train, cfg.data
    device = pick_device(t.device)
    torch.manual_seed(t.seed)
    model = build_model(arch, max_mparams=cfg.limits.max_mparams)
    full = Split(torch.cat([data.train.images, data.val.images]), torch.cat([data.train.labels, data.val.labels]))
    settings = RunSettings.of(t, flip=d.flip, pad_crop=d.pad_crop, seed=t.seed)

    def on_epoch(m: Any) -> None:
        log.info("epoch %d/%d: loss %.4f (%.1fs)", m.epoch, t.epochs, m.train_loss, m.seconds)
        if progress is not None:
            progress(m.epoch, t.epochs)

    started = time.perf_counter()
    result = fit(model, full, None, settings, mean=data.mean, std=data.std, device=device, on_epoch=on_epoch)
    test_acc = evaluate(model, data.test, mean=data.mean, std=data.std, device=device, batch_size=t.eval_batch_size)
    cost = complexity(arch)
    metrics = {
        "genotype": arch.genotype(),
        "data": d.name,
        "test_acc": test_acc,
        "mmacs": round(cost.mmacs, 4),
        "mparams": round(cost.mparams, 5),
        "epochs": t.epochs,
        "train_images": result.train_images,
        "train": asdict(t),
        "train_s": round(time.perf_counter() - started, 1),
        "img_s": round(result.img_s, 1),
        "device": result.device,
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
    }
    return model, metrics


def train_front(cfg: NasConfig, *, command: str = "", progress: bool = True) -> list[dict[str, Any]]:
    """Train the Pareto front of `cfg.study.name` (its `train.top_k` most accurate members when
    set) with the recipe `cfg.train`, each tested once, then export every front member as a
    deployable folder (weights, ONNX, CPU speed, model card) under runs/<study>/models/.

    Resumable per model: a member whose `export/trial_NNNN.metrics.json` was made with the same
    recipe is not trained again; one nas-train at a time per study folder (a second is refused).
    Returns the metrics of the members trained, best first."""
    validate_train(cfg)
    study = open_finished_study(cfg)
    searched_on = study.user_attrs.get(StudyAttr.DATA)
    if searched_on and searched_on != cfg.data.name:  # before any data is read or anything trained
        raise ConfigError("data", f"{cfg.data.name} is not the data study {study.study_name!r} was searched "
                                  "on; its front is trained on the data that chose it "
                                  f"(allowed: data={searched_on})")
    front = sorted(pareto_front(trained_members(study.get_trials(deepcopy=False)), cost_axis(study)),
                   key=lambda c: -c.val_acc)
    if not front:
        raise ConfigError("study.name", f"study {study.study_name!r} has no trained architecture yet (run nas-search first)")
    chosen = front[: cfg.train.top_k] if cfg.train.top_k else front
    running = live_workers(study, 2 * cfg.storage.heartbeat_s)
    if running:
        log.warning("the search of study %s is still running (%d worker(s)): training its front as it stands now "
                    "(trials %s)", study.study_name, len(running), ", ".join(str(c.trial) for c in chosen))
    folder = Path(cfg.output_dir) / "export"
    check_folder("output_dir", folder)
    with exclusive(folder / ".nas-train.lock") as mine:
        if not mine:
            raise ConfigError("study.name", f"another nas-train is training the front of study {study.study_name!r} now "
                                            f"(it holds {folder / '.nas-train.lock'}); wait for it to finish, and "
                                            "run this again to train what it left")
        return _train_chosen(cfg, study, chosen, folder, command, progress)


def _train_chosen(cfg: NasConfig, study: Any, chosen: list[Any], folder: Path, command: str,
                  progress: bool) -> list[dict[str, Any]]:
    """`train_front`'s work, under its lock: train the chosen members not trained with this recipe
    yet, then export the front."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    # What makes a training: not which members are chosen (top_k) nor where it runs (device).
    recipe = {**{k: v for k, v in asdict(cfg.train).items() if k not in _NOT_RECIPE}, "data": cfg.data.name}
    todo, done = [], []
    for c in chosen:
        path = folder / f"trial_{c.trial:04d}.yaml"
        previous = read_training_metrics(path.with_suffix(".metrics.json"))  # None: trained (again)
        # The same trial number can be another network (a study made again under the same name):
        # its weights are reused only when they are this member's own.
        if (previous is not None and path.with_suffix(".pt").is_file() and previous.get("recipe") == recipe
                and previous.get("genotype") == c.genotype):
            done.append(previous)
        else:
            todo.append((c, path))
    log.info("study %s: %d front members to train, %d already trained with this recipe",
             study.study_name, len(todo), len(done))
    if todo:
        data = load_data(cfg.data)
        bar = tqdm(total=len(todo) * cfg.train.epochs, unit="epoch", disable=not progress, dynamic_ncols=True,
                   desc=f"{study.study_name}: training the front")
        with bar, logging_redirect_tqdm():
            for c, path in todo:
                arch = c.arch
                _check_shape(arch, data, f"trial {c.trial}", cfg.data.name)
                bar.set_postfix_str(f"trial {c.trial} ({c.mmacs:.2f} MMACs)")
                model, metrics = train_arch(arch, data, cfg, command=command,
                                            progress=lambda *_: bar.update(1))
                metrics.update(trial=c.trial, val_acc_proxy=c.val_acc, recipe=recipe)
                if not path.is_file():
                    atomic_write(path, arch.to_yaml())
                done.append(_save(model, metrics, path))
                log.info("trial %d: test accuracy %.4f (%.2f MMACs, %.0fs)", c.trial, metrics["test_acc"],
                         c.mmacs, metrics["train_s"])
    export_models(cfg, command=command or f"nas-train study.name={study.study_name}", trials={c.trial for c in chosen})
    return sorted(done, key=lambda m: -m["test_acc"])


def _check_shape(arch: Arch, data: Dataset, what: str, data_name: str) -> None:
    shape = data.shape
    if (arch.in_channels, arch.resolution, arch.num_classes) != (shape.in_channels, shape.resolution, shape.num_classes):
        raise ConfigError(
            "data",
            f"{what} takes {arch.in_channels}x{arch.resolution}x{arch.resolution} inputs and "
            f"{arch.num_classes} classes, but {data_name} has {shape.in_channels}x{shape.resolution}x"
            f"{shape.resolution} and {shape.num_classes}",
        )


def _save(model: torch.nn.Module, metrics: dict[str, Any], path: Path) -> dict[str, Any]:
    """Weights first, then the metrics that mark the model as trained (a resume trusts them)."""
    weights = path.with_suffix(".pt")
    atomic_write(weights, _state_bytes(model))
    atomic_write(path.with_suffix(".metrics.json"), json.dumps(metrics, indent=2) + "\n")
    return {**metrics, "weights": str(weights)}


def _state_bytes(model: torch.nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()
