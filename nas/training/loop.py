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

__all__ = ["EpochMetrics", "TrainResult", "Training", "TrainingDiverged", "eval_batch_size", "evaluate", "fit", "lr_at",
           "memory_format", "pick_device", "warm_up"]

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


def memory_format(device: torch.device, channels_last: bool | None = None) -> torch.memory_format:
    """The layout a run keeps its activations in: `channels_last`, or when None channels-last on
    the CPU, where oneDNN's grouped and depthwise convolutions run faster in it (bench/NOTES.md),
    and the default layout elsewhere."""
    on = device.type == "cpu" if channels_last is None else channels_last
    return torch.channels_last if on else torch.contiguous_format


#: The evaluation batch on the CPU when none is set: small enough for a batch's activations to stay
#: in the caches, which makes scoring 1,000 validation images 2.6-3.3x faster than in batches of
#: 1,024 (bench/NOTES.md); elsewhere (GPUs) batches of EVAL_BATCH.
CPU_EVAL_BATCH, EVAL_BATCH = 64, 1024


def eval_batch_size(device: torch.device, setting: int | None = None) -> int:
    """The evaluation batch: `setting`, or when None CPU_EVAL_BATCH on the CPU, EVAL_BATCH elsewhere."""
    if setting is not None:
        return setting
    return CPU_EVAL_BATCH if device.type == "cpu" else EVAL_BATCH


def warm_up() -> None:
    """Pay before the first trial what a process pays once, on its first training run: torch.optim
    imports torch._dynamo when it makes its first optimizer (about 3 s on a CPU core)."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


class _DeviceData:
    """A split resident on the device, with the normalisation folded into one affine op."""

    def __init__(self, split: Split, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                 layout: torch.memory_format | None = None) -> None:
        self.images = split.images.to(device, non_blocking=True)
        self.labels = split.labels.to(device, non_blocking=True)
        shape = (1, -1, 1, 1)
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(shape)
        self.shift = (-torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(shape)
        self.layout = layout or memory_format(device)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index].float() * self.scale + self.shift
        return x.contiguous(memory_format=self.layout), self.labels[index]


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


def _lr_at(step: int, total: int, settings: RunSettings, warm_up: bool = True) -> float:
    progress = step / max(1, total)
    if settings.schedule == "constant":
        return settings.lr
    if settings.schedule == "cosine":
        return settings.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if not warm_up:  # one-cycle's annealing alone: from the peak down to zero
        return settings.lr * max(0.0, 1.0 - progress)
    warm = max(settings.warmup, 1e-8)
    if progress < warm:
        return settings.lr * progress / warm
    return settings.lr * max(0.0, (1.0 - progress) / (1.0 - warm))


def lr_at(step: int, total: int, settings: RunSettings, restarts: Sequence[int] = (), rewarm: bool = True) -> float:
    """The learning rate of step `step` (0-based) of a run of `total` steps. Each of `restarts`
    (steps, ascending, 0 < r < total) starts the schedule again over the steps up to the next one:
    warm restarts (SGDR), so that every segment ends annealed. With `rewarm` each segment warms up
    again as the first did; without, the segments after the first start at the peak learning rate,
    as SGDR's do (one-cycle: a linear decay from the peak over the segment)."""
    start, end = 0, total
    for r in restarts:
        if r <= step:
            start = r
        else:
            end = r
            break
    return _lr_at(step - start, end - start, settings, warm_up=rewarm or start == 0)


@torch.no_grad()
def evaluate(model: nn.Module, data: _DeviceData | Split, *, mean: tuple[float, ...] = (), std: tuple[float, ...] = (),
             batch_size: int | None = None, device: torch.device | None = None) -> float:
    """Top-1 accuracy of `model` on a split (in eval mode; the model's mode is restored), in
    batches of `batch_size` (None: `eval_batch_size` for the device)."""
    if isinstance(data, Split):
        data = _DeviceData(data, mean, std, device or next(model.parameters()).device)
    batch_size = eval_batch_size(data.labels.device, batch_size)
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


class Training:
    """One network's training run, advanced in stages: `run_to(step)` trains until `step` steps
    are done, so that a run stopped at a rung and continued is step for step the run made in one go.

    The run draws its images once (`settings.train_fraction`, `max_train_images`) and goes through
    them epoch after epoch, a new order each epoch; every step sees a full batch (the ragged last
    batch of an epoch is dropped). `restarts` are the steps where the learning-rate schedule
    starts again, warming up again or not (`rewarm`; `lr_at`). Evaluation counts neither in
    `train_s` nor in an epoch's seconds.
    Raises `TrainingDiverged` when an epoch's or a stage's mean loss is no longer finite.
    """

    def __init__(self, model: nn.Module, train: Split, settings: RunSettings, *, mean: tuple[float, ...],
                 std: tuple[float, ...], device: torch.device | str = "auto", restarts: Sequence[int] = (),
                 rewarm: bool = True) -> None:
        self.started = time.perf_counter()
        self.settings = settings
        self.device = pick_device(device) if isinstance(device, str) else device
        count = max(1, round(len(train) * settings.train_fraction))
        train = train.subset(min(count, settings.max_train_images or count), settings.seed)
        self.layout = memory_format(self.device, settings.channels_last)
        self.model = model.to(self.device, memory_format=self.layout).train()
        self.data = _DeviceData(train, mean, std, self.device, self.layout)
        self.mean, self.std = mean, std
        self.gen = torch.Generator(device=self.device).manual_seed(settings.seed)
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum, nesterov=settings.momentum > 0,
            weight_decay=settings.weight_decay,
        )
        self.n = len(train)
        self.batch = min(settings.batch_size, self.n)
        self.steps_per_epoch = self.n // self.batch
        self.total_steps = settings.epochs * self.steps_per_epoch
        self.restarts = tuple(sorted(r for r in restarts if 0 < r < self.total_steps))
        self.rewarm = rewarm
        self.step, self.train_s, self.loss_sum, self.setup_s, self.first_step_s = 0, 0.0, 0.0, 0.0, 0.0
        self.history: list[EpochMetrics] = []
        self._order = torch.empty(0, dtype=torch.long)
        self._epoch_loss = torch.zeros((), device=self.device)
        self._epoch_s = 0.0

    @property
    def images_seen(self) -> int:
        return self.step * self.batch

    def run_to(self, step: int, on_epoch_end: Callable[[int, float, float], None] | None = None) -> None:
        """Train until `step` steps are done (at most the run's total). `on_epoch_end(epoch,
        mean_loss, seconds)` is called after each epoch completed on the way."""
        step = min(step, self.total_steps)
        clock = time.perf_counter()
        stage_loss = torch.zeros((), device=self.device)
        stage_steps = 0
        while self.step < step:
            i = self.step % self.steps_per_epoch
            if i == 0:
                self._order = torch.randperm(self.n, device=self.device, generator=self.gen)
                self._epoch_loss.zero_()
                self._epoch_s = 0.0
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.step, self.total_steps, self.settings, self.restarts, self.rewarm)
            x, y = self.data.batch(self._order[i * self.batch : (i + 1) * self.batch])
            x = _augment(x, self.settings, self.gen).contiguous(memory_format=self.data.layout)
            loss = F.cross_entropy(self.model(x), y, label_smoothing=self.settings.label_smoothing)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self._epoch_loss += loss.detach()
            stage_loss += loss.detach()
            stage_steps += 1
            self.step += 1
            if self.step == 1:
                _sync(self.device)
                self.setup_s = time.perf_counter() - self.started
                self.first_step_s = time.perf_counter() - clock
            if self.step % self.steps_per_epoch == 0:
                _sync(self.device)
                now = time.perf_counter()
                self._epoch_s += now - clock
                self.train_s += now - clock
                epoch = self.step // self.steps_per_epoch
                mean_loss = self._epoch_loss.item() / self.steps_per_epoch
                if not math.isfinite(mean_loss):
                    raise TrainingDiverged(f"training loss became {mean_loss} in epoch {epoch}")
                self.loss_sum += mean_loss * self.steps_per_epoch
                if on_epoch_end is not None:
                    on_epoch_end(epoch, mean_loss, self._epoch_s)
                clock = time.perf_counter()
        _sync(self.device)
        now = time.perf_counter()
        self._epoch_s += now - clock
        self.train_s += now - clock
        if stage_steps and self.step % self.steps_per_epoch:
            mean_loss = stage_loss.item() / stage_steps
            if not math.isfinite(mean_loss):
                raise TrainingDiverged(f"training loss became {mean_loss} by step {self.step}")

    def evaluate(self, data: _DeviceData | Split, batch_size: int | None = None) -> float:
        """Accuracy on `data` now (not counted as training time)."""
        if isinstance(data, Split):
            data = _DeviceData(data, self.mean, self.std, self.device, self.layout)
        return evaluate(self.model, data, batch_size=batch_size or self.settings.eval_batch_size)

    def result(self, val_acc: float) -> TrainResult:
        steps = self.step
        return TrainResult(
            val_acc=val_acc,
            epochs=self.settings.epochs,
            train_s=self.train_s,
            setup_s=self.setup_s,
            # Steady state: every step but the first (which carries allocation and autotuning).
            img_s=(steps - 1) * self.batch / (self.train_s - self.first_step_s) if steps > 1 else 0.0,
            device=_device_name(self.device),
            loss_sum=self.loss_sum,
            train_images=self.n,
            history=list(self.history),
        )


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
) -> TrainResult:
    """Train `model` for `settings.epochs` on `train` and report accuracy on `val` after each
    epoch (`val=None` skips it: accuracy is then NaN, for a final training measured elsewhere).

    `on_epoch` sees every epoch's metrics and may raise (e.g. `optuna.TrialPruned`) to stop.
    Raises `TrainingDiverged` when the loss is no longer finite.
    """
    run = Training(model, train, settings, mean=mean, std=std, device=device)
    val_data = None if val is None else _DeviceData(val, mean, std, run.device, run.layout)

    def epoch_end(epoch: int, mean_loss: float, seconds: float) -> None:
        val_acc = math.nan if val_data is None else run.evaluate(val_data)
        metrics = EpochMetrics(epoch, mean_loss, val_acc, seconds)
        run.history.append(metrics)
        log.debug("epoch %d: loss %.4f, val_acc %.4f, %.1fs", epoch, mean_loss, metrics.val_acc, seconds)
        if on_epoch is not None:
            on_epoch(metrics)

    run.run_to(run.total_steps, epoch_end)
    return run.result(run.history[-1].val_acc)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"
