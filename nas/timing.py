"""Measured CPU latency of a network on this machine, through onnxruntime (what a CPU deployment
runs): `nas.latency(arch_or_model)`, and the timer `nas-export`'s speed report shares. MACs rank
CPU latency badly (docs/RESULTS.md), so this times the network itself: exported to ONNX, warmed
up, then run `repeats` times; the median and the spread are reported, in milliseconds per image.

The network is exported with PyTorch's TorchScript-based ONNX exporter for the batch size timed,
in about 0.3 s, where the exporter of deployed models (`nas.results.export_onnx`, torch.export,
a dynamic batch) takes about 8 s for a small network; onnxruntime fuses both graphs alike, and
their latencies agree within a few percent (bench/latency_noise.py measures it), so an objective
can time every trial.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from search_spaces import Arch

from .errors import ConfigError
from .model import build_model

__all__ = ["Latency", "latency", "machine", "onnx_session", "run_times"]


@dataclass(frozen=True)
class Latency:
    """Milliseconds per image of one network: the median of `repeats` timed runs, their 10th and
    90th percentiles (the spread a shared machine adds), and the fastest."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    repeats: int
    batch_size: int
    threads: int
    machine: str
    onnxruntime: str

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: 0 on a quiet machine."""
        return (self.p90_ms - self.p10_ms) / self.median_ms

    def __str__(self) -> str:
        return (f"{self.median_ms:.4f} ms per image (p10 {self.p10_ms:.4f}, p90 {self.p90_ms:.4f}; {self.repeats} runs "
                f"of batch {self.batch_size} on {self.threads} thread(s), {self.machine})")


def machine() -> str:
    """The CPU the times were measured on, in words: its model name (Linux) or kind, and its cores."""
    name = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def onnx_session(path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session of the ONNX file, on `threads` intra-op threads (None: all cores)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_times(session: Any, images: Any, *, warmup: int, repeats: int, seconds: float = 0.0) -> list[float]:
    """Seconds of each timed run of `session` on `images`, after `warmup` untimed ones: at least
    `repeats` runs, and more until `seconds` have passed."""
    feed = {"images": images}
    for _ in range(warmup):
        session.run(None, feed)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < repeats or time.perf_counter() < deadline:
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return times


def latency(arch_or_model: Arch | torch.nn.Module, batch_size: int = 1, threads: int = 1, *, repeats: int = 50,
            warmup: int = 10) -> Latency:
    """Median milliseconds per image of `arch_or_model` (an `Arch`, or a model built from one by
    `nas.build_model`; weights do not change the time) through onnxruntime on this machine's
    CPU, with `threads` intra-op threads, after `warmup` untimed runs."""
    import numpy as np
    import onnxruntime

    for name, value, low in (("batch_size", batch_size, 1), ("threads", threads, 1), ("repeats", repeats, 3),
                             ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(name, f"{value!r} is not allowed (allowed: an integer >= {low})")
    if isinstance(arch_or_model, Arch):
        arch, model = arch_or_model, build_model(arch_or_model)
    elif isinstance(arch_or_model, torch.nn.Module) and isinstance(getattr(arch_or_model, "arch", None), Arch):
        arch, model = arch_or_model.arch, arch_or_model
    else:
        raise ConfigError("arch_or_model", f"{type(arch_or_model).__name__} is not an Arch or a model built from one "
                                           "(nas.build_model(arch))")
    size = (arch.in_channels, arch.resolution, arch.resolution)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        _export_for_timing(model, size, path, batch_size)
        session = onnx_session(path, threads)
    images = np.random.default_rng(0).standard_normal((batch_size, *size), dtype=np.float32)
    runs = [1e3 * t / batch_size for t in run_times(session, images, warmup=warmup, repeats=repeats)]
    deciles = statistics.quantiles(runs, n=10)
    return Latency(round(statistics.median(runs), 5), round(deciles[0], 5), round(deciles[-1], 5), round(min(runs), 5),
                   repeats, batch_size, threads, machine(), onnxruntime.__version__)


def _export_for_timing(model: torch.nn.Module, size: tuple[int, int, int], path: Path, batch_size: int = 1) -> None:
    """The network as ONNX for a batch of `batch_size`, through the TorchScript-based exporter
    (fast; the module docstring says why the time is the deployed graph's), in eval mode and then
    restored. The batch is fixed: with a dynamic one this exporter computes every reshape's target
    at run time (ShuffleNet's channel shuffles: 3x the graph's nodes, 20% slower)."""
    training = model.training
    model.eval()
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
            torch.onnx.export(model, (torch.zeros(batch_size, *size),), str(path), dynamo=False, input_names=["images"],
                              output_names=["logits"])
    finally:
        model.train(training)
