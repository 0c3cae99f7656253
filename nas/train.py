"""Full training of an exported architecture with a standard recipe, and its one test score.

The search never sees the test split; this is where it is read, once, after training.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from search_spaces import Arch

from .complexity import complexity
from .config import NasConfig, check_device
from .data import Split, load_dataset
from .errors import ConfigError
from .model import build_model, check_size
from .pareto import atomic_write
from .proxy import ProxySettings, evaluate, pick_device, train_proxy

__all__ = ["train_full"]

log = logging.getLogger(__name__)


def _check(cfg: NasConfig) -> None:
    train = cfg.train
    for name in ("epochs", "batch_size"):
        value = getattr(train, name)
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"train.{name}", f"{value!r} is not allowed (allowed: a positive integer)")
    if not train.lr > 0:
        raise ConfigError("train.lr", f"{train.lr!r} is not allowed (allowed: a positive number)")
    check_device("train.device", train.device)
    if not cfg.limits.max_mparams > 0:
        raise ConfigError("limits.max_mparams", f"{cfg.limits.max_mparams!r} is not allowed (allowed: a positive number)")


def train_full(cfg: NasConfig, *, command: str = "") -> dict[str, Any]:
    """Train `cfg.arch` on the whole training set (train + validation), test it once, and save
    `<name>.pt` (state dict) and `<name>.metrics.json` beside the YAML."""
    if not cfg.arch:
        raise ConfigError("arch", "name the architecture YAML: nas-train path/to/arch.yaml [overrides]")
    path = Path(cfg.arch)
    _check(cfg)
    arch = Arch.from_yaml(path)
    check_size(arch, cfg.limits.max_mparams)  # before the data is read: a typo must fail at once
    d = cfg.data
    data = load_dataset(d.name, d.root, val_fraction=d.val_fraction, split_seed=d.split_seed,
                        resolution=d.resolution, channels=d.channels)
    shape = data.shape
    if (arch.in_channels, arch.resolution, arch.num_classes) != (shape.in_channels, shape.resolution, shape.num_classes):
        raise ConfigError(
            "data",
            f"{path.name} takes {arch.in_channels}x{arch.resolution}x{arch.resolution} inputs and "
            f"{arch.num_classes} classes, but {d.name} has {shape.in_channels}x{shape.resolution}x"
            f"{shape.resolution} and {shape.num_classes}",
        )
    t = cfg.train
    device = pick_device(t.device)
    torch.manual_seed(t.seed)
    model = build_model(arch, max_mparams=cfg.limits.max_mparams)
    full = Split(torch.cat([data.train.images, data.val.images]), torch.cat([data.train.labels, data.val.labels]))
    settings = ProxySettings(
        epochs=t.epochs, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
        label_smoothing=t.label_smoothing, schedule="onecycle", warmup=0.1, flip=d.flip, pad_crop=d.pad_crop,
        seed=t.seed,
    )
    started = time.perf_counter()
    result = train_proxy(
        model, full, None, settings, mean=data.mean, std=data.std, device=device,
        on_epoch=lambda m: log.info("epoch %d/%d: loss %.4f (%.1fs)", m.epoch, t.epochs, m.train_loss, m.seconds),
    )
    test_acc = evaluate(model, data.test, mean=data.mean, std=data.std, device=device)
    cost = complexity(arch)
    metrics = {
        "genotype": arch.genotype(),
        "data": d.name,
        "test_acc": test_acc,
        "mmacs": round(cost.mmacs, 4),
        "mparams": round(cost.mparams, 5),
        "epochs": t.epochs,
        "train_images": len(full),
        "train": asdict(t),
        "train_s": round(time.perf_counter() - started, 1),
        "img_s": round(result.img_s, 1),
        "device": result.device,
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
    }
    weights = path.with_suffix(".pt")
    buffer = _state_bytes(model)
    atomic_write(weights, buffer)
    atomic_write(path.with_suffix(".metrics.json"), json.dumps(metrics, indent=2) + "\n")
    metrics["weights"] = str(weights)
    return metrics


def _state_bytes(model: torch.nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()
