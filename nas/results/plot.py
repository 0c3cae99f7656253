"""The front as a picture: every trained trial, the front, the budget, rejected samples and the
papers' reference networks, accuracy against MACs (or against measured CPU latency, with
objective=latency)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..attrs import TrialAttr
from ..files import atomic_write
from .front import Outcome

__all__ = ["plot_front"]

REFERENCE_SPAN = 2.0  # reference widths drawn up to this multiple of the budget


def plot_front(result: Outcome, path: Path, *, references: Sequence[tuple[str, float]] = ()) -> None:
    """Scatter of every trained trial, the front as a step line, the budget as a vertical line,
    rejected samples as ticks along the bottom, reference networks' MACs as dotted lines (those
    up to twice the budget); the front's test accuracies as hollow circles and the trained
    reference networks as stars. On the latency axis (objective=latency) the budget and the
    references' MACs, which are not times, are left out, and the networks are placed at their
    measured milliseconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = result.axis
    on_macs = axis == TrialAttr.MACS
    trained = [c for c in result.trained if math.isfinite(c.cost(axis))]
    front, rejected = result.front, result.rejected_mmacs if on_macs else []
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    ax.scatter([c.cost(axis) for c in trained], [c.val_acc * 100 for c in trained], s=18, color="#8aa4c8",
               label=f"trained ({len(trained)})")
    if front:
        xs = [c.cost(axis) for c in front]
        ys = [c.val_acc * 100 for c in front]
        ax.step(xs, ys, where="post", color="#c0392b", lw=1.2)
        ax.scatter(xs, ys, s=34, color="#c0392b", zorder=3, label=f"Pareto front ({len(front)})")
        tested = [c for c in front if c.test_acc is not None]
        if tested:
            ax.scatter([c.cost(axis) for c in tested], [c.test_acc * 100 for c in tested], s=40, facecolors="none",
                       edgecolors="#c0392b", zorder=3, label="its test accuracy (measured once)")
    trained_refs = [c for c in result.references if math.isfinite(c.cost(axis))]
    if trained_refs:
        ax.scatter([c.cost(axis) for c in trained_refs], [c.val_acc * 100 for c in trained_refs], marker="*", s=90,
                   color="#2e7d32", zorder=4, label="papers' networks scaled to the budget")
        for c in trained_refs:
            ax.annotate(c.reference, (c.cost(axis), c.val_acc * 100), fontsize=6, color="#2e7d32",
                        xytext=(4, -8), textcoords="offset points")
    budget = result.budget_mflops
    if on_macs:
        ax.axvline(budget, color="black", ls="--", lw=1, label=f"budget {budget:g} MMACs")
    if rejected:
        bottom = ax.get_ylim()[0]
        ax.plot(rejected, [bottom] * len(rejected), "|", color="#999999", ms=10,
                label=f"rejected samples ({len(rejected)})")
    # The standard widths up to twice the budget: wider ones would stretch the axis far past the
    # networks it is about. Named from the top of the axes down, whatever its accuracy range.
    top_down = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
    for name, mmacs in references if on_macs else ():
        if mmacs <= REFERENCE_SPAN * budget:
            ax.axvline(mmacs, color="#2e7d32", ls=":", lw=0.8)
            ax.text(mmacs, 0.98, f"{name} ", transform=top_down, rotation=90, fontsize=6, va="top",
                    ha="right", color="#2e7d32")
    if on_macs:
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
    else:  # milliseconds span a narrow range: a linear axis from 0 shows how much faster
        ax.set_xlim(left=0)
    ax.set_xlabel("MMACs per image (log scale)" if on_macs else "measured CPU ms per image (onnxruntime)")
    ax.set_ylabel("accuracy (%): validation, test where marked")
    ax.set_title(f"study {result.study_name}" + ("" if on_macs else f" (MACs budget {budget:g} M)"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # hides no point
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def _plain_log_ticks(axis: Any) -> None:
    """Label a log axis 1, 2, 5, 10, 20, 50 ... in plain numbers: matplotlib's default labels the
    minor ticks of a short span as 2x10^0, 3x10^0, 4x10^0, which run into each other."""
    from matplotlib.ticker import FuncFormatter

    def leading(v: float) -> int:
        return round(v / 10 ** math.floor(math.log10(v))) if v > 0 else 0

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if leading(v) in (2, 5) else ""))
