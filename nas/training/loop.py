"""Training: one plain loop, for the search's short proxy runs and for nas-train's full trainings.

The data sits on the device as uint8; normalisation and augmentation (flip, pad-and-crop) are a
few tensor ops per batch, so no DataLoader is in the hot path. Runs on CUDA when there is one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split
from .recipe import RunSettings

__all__ = ["EpochMetrics", "TrainResult", "TrainingDiverged", "evaluate", "fit", "pick_device"]

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    train_loss: float  # mean over the epoch
    val_acc: float
    seconds: float  # wall time of the epoch's training steps


@dataclass(frozen=True)
class TrainResult:
    val_acc: float
    epochs: int
    train_s: float  # wall time spent in training steps, evaluation excluded
    setup_s: float  # from the call to the end of the first step
    img_s: float  # training images per second over the steady-state steps
    device: str
    loss_sum: float  # sum of per-step training losses (a ranking signal of its own)
    train_images: int  # drawn from the training split
    history: list[EpochMetrics] = field(default_factory=list)


def pick_device(name: str = "auto", worker: int = 0) -> torch.device:
    """`auto`: a CUDA device when there is one (worker k of a shared study takes GPU k mod the
    number of GPUs, so that workers on a multi-GPU machine spread out), else the CPU."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", worker % torch.cuda.device_count())
    return torch.device(name)


class _DeviceData:
    """A split resident on the device, with the normalisation folded into one affine op."""

    def __init__(self, split: Split, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> None:
        self.images = split.images.to(device, non_blocking=True)
        self.labels = split.labels.to(device, non_blocking=True)
        shape = (1, -1, 1, 1)
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(shape)
        self.shift = (-torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(shape)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index].float() * self.scale + self.shift, self.labels[index]


def _augment(x: torch.Tensor, settings: RunSettings, gen: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    if settings.flip:
        flip = torch.rand(n, device=x.device, generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    p = settings.pad_crop
    if p > 0:
        # Per-image translation: pad once, then gather each image's crop window.
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=gen)
        dx = torch.randint(0, 2 * p + 1, (n,), device=x.device, generator=gen)
        rows = (torch.arange(h, device=x.device) + dy[:, None])[:, None, :, None]
        cols = (torch.arange(w, device=x.device) + dx[:, None])[:, None, None, :]
        images = torch.arange(n, device=x.device)[:, None, None, None]
        channels = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[images, channels, rows, cols]
    return x


def _lr_at(step: int, total: int, settings: RunSettings) -> float:
    progress = step / max(1, total)
    if settings.schedule == "constant":
        return settings.lr
    if settings.schedule == "cosine":
        return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    warm = max(settings.warmup, 1e-8)
    if progress < warm:
        return settings.lr * progress / warm
    return settings.lr * max(0.0, (1.0 - progress) / (1.0 - warm))


@torch.no_grad()
def evaluate(model: nn.Module, data: _DeviceData | Split, *, mean: tuple[float, ...] = (), std: tuple[float, ...] = (),
             batch_size: int = 1024, device: torch.device | None = None) -> float:
    """Top-1 accuracy of `model` on a split (in eval mode; the model's mode is restored)."""
    if isinstance(data, Split):
        data = _DeviceData(data, mean, std, device or next(model.parameters()).device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=data.labels.device)
    total = int(data.labels.shape[0])
    for start in range(0, total, batch_size):
        index = torch.arange(start, min(start + batch_size, total), device=data.labels.device)
        x, y = data.batch(index)
        correct += (model(x).argmax(1) == y).sum()
    model.train(was_training)
    return correct.item() / max(1, total)


def fit(
    model: nn.Module,
    train: Split,
    val: Split | None,
    settings: RunSettings,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device | str = "auto",
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    checkpoints: Sequence[float] = (),
    on_checkpoint: Callable[[float, float, float], None] | None = None,
) -> TrainResult:
    """Train `model` for `settings.epochs` on `train` and report accuracy on `val` after each
    epoch (`val=None` skips it: accuracy is then NaN, for a final training measured elsewhere).

    `on_epoch` sees every epoch's metrics and may raise (e.g. `optuna.TrialPruned`) to stop.
    `on_checkpoint(fraction, val_acc, train_s)` is called once the steps done reach each fraction
    in `checkpoints` (0 < fraction < 1, e.g. the rungs of successive halving), with the seconds of
    training so far, and may raise too; evaluating there counts neither in `train_s` nor in an
    epoch's seconds.
    Raises `TrainingDiverged` when the loss is no longer finite.
    """
    started = time.perf_counter()
    device = pick_device(device) if isinstance(device, str) else device
    count = max(1, round(len(train) * settings.train_fraction))
    train = train.subset(min(count, settings.max_train_images or count), settings.seed)
    model.to(device).train()
    train_data = _DeviceData(train, mean, std, device)
    val_data = None if val is None else _DeviceData(val, mean, std, device)
    gen = torch.Generator(device=device).manual_seed(settings.seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=settings.momentum, nesterov=settings.momentum > 0,
        weight_decay=settings.weight_decay,
    )
    n = len(train)
    batch = min(settings.batch_size, n)
    steps_per_epoch = n // batch  # drop the ragged last batch: every step sees a full batch
    total_steps = settings.epochs * steps_per_epoch
    step, train_s, loss_sum, setup_s, first_step_s = 0, 0.0, 0.0, 0.0, 0.0
    history = []
    # The step after which each checkpoint is evaluated (at least one step in, before the end).
    at_step = {min(total_steps - 1, max(1, math.ceil(f * total_steps))): f for f in sorted(checkpoints)}
    if val_data is None and at_step:
        raise ValueError("checkpoints need a validation split")
    for epoch in range(1, settings.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(n, device=device, generator=gen)
        epoch_loss = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total_steps, settings)
            x, y = train_data.batch(order[i * batch : (i + 1) * batch])
            x = _augment(x, settings, gen)
            loss = F.cross_entropy(model(x), y, label_smoothing=settings.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.detach()
            step += 1
            if step == 1:
                _sync(device)
                setup_s = time.perf_counter() - started
                first_step_s = time.perf_counter() - epoch_start
            if step in at_step and on_checkpoint is not None:
                eval_start = time.perf_counter()
                trained_s = train_s + eval_start - epoch_start
                acc = evaluate(model, val_data, batch_size=settings.eval_batch_size)
                epoch_start += time.perf_counter() - eval_start  # the evaluation is not training time
                on_checkpoint(at_step[step], acc, trained_s)
        _sync(device)
        seconds = time.perf_counter() - epoch_start
        train_s += seconds
        mean_loss = epoch_loss.item() / max(1, steps_per_epoch)
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"training loss became {mean_loss} in epoch {epoch}")
        loss_sum += mean_loss * steps_per_epoch
        val_acc = math.nan if val_data is None else evaluate(model, val_data, batch_size=settings.eval_batch_size)
        metrics = EpochMetrics(epoch, mean_loss, val_acc, seconds)
        history.append(metrics)
        log.debug("epoch %d: loss %.4f, val_acc %.4f, %.1fs", epoch, mean_loss, metrics.val_acc, seconds)
        if on_epoch is not None:
            on_epoch(metrics)
    return TrainResult(
        val_acc=history[-1].val_acc,
        epochs=settings.epochs,
        train_s=train_s,
        setup_s=setup_s,
        # Steady state: every step but the first (which carries allocation and autotuning).
        img_s=(total_steps - 1) * batch / (train_s - first_step_s) if total_steps > 1 else 0.0,
        device=_device_name(device),
        loss_sum=loss_sum,
        train_images=n,
        history=history,
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"
