"""Measured CPU latency of a network on this machine, through onnxruntime (what a CPU deployment
runs): `nas.latency(arch_or_model)`. MACs rank CPU latency badly (docs/RESULTS.md), so this times
the network itself: exported to ONNX, warmed up, then run `repeats` times; the median and the
spread are reported, in milliseconds per image.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from search_spaces import Arch

from ..errors import ConfigError
from ..model import build_model
from .export import export_onnx

__all__ = ["Latency", "latency"]


@dataclass(frozen=True)
class Latency:
    """Milliseconds per image of one network: the median of `repeats` timed runs, and their 10th
    and 90th percentiles (the spread a shared machine adds)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
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
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, arch, path)
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    images = np.random.default_rng(0).standard_normal(
        (batch_size, arch.in_channels, arch.resolution, arch.resolution), dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {"images": images})
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"images": images})
        runs.append(1e3 * (time.perf_counter() - start) / batch_size)
    deciles = statistics.quantiles(runs, n=10)
    return Latency(round(statistics.median(runs), 5), round(deciles[0], 5), round(deciles[-1], 5), repeats,
                   batch_size, threads, f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                   onnxruntime.__version__)
