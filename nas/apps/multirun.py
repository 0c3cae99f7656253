"""Multirun: each search job leaves a summary.json; a Hydra callback compares the studies at the end.

`nas-search -m budget.mflops=10,20,40 space=shufflenet,mobilenext` runs six searches, each with its
own study and runs/ folder, and ends with one table (and plot) comparing their fronts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..files import atomic_write

__all__ = ["MultirunSummary", "write_job_summary"]

log = logging.getLogger(__name__)


def write_job_summary(result: Any, cfg: Any, job_dir: Path) -> None:
    """What the multirun summary needs from one search job."""
    best = max(result.front, key=lambda c: c.val_acc, default=None)
    record = {
        "study": result.study_name,
        "space": cfg.space.name,
        "data": cfg.data.name,
        "budget_mflops": cfg.budget.mflops,
        "worker": cfg.search.worker,
        "trained": result.trained,
        "rejected": result.rejected,
        "failed": result.failed,
        "best": None if best is None else {"trial": best.trial, "val_acc": best.val_acc, "mmacs": best.mmacs,
                                           "genotype": best.genotype},
        "front": [{"trial": c.trial, "val_acc": c.val_acc, "mmacs": c.mmacs} for c in result.front],
        "hypervolume": result.hypervolume,
        "output_dir": str(result.output_dir),
        "wall_s": round(result.wall_s, 1),
    }
    atomic_write(job_dir / "summary.json", json.dumps(record, indent=2) + "\n")


class MultirunSummary(Callback):
    """Prints and saves `summary.md` and `summary.png` in the sweep folder after a multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        by_study: dict[str, dict[str, Any]] = {}
        for path in sorted(sweep.glob("*/summary.json")):
            record = json.loads(path.read_text())
            by_study.setdefault(record["study"], record)  # workers of one study report the same front
        if not by_study:
            return
        rows = sorted(by_study.values(), key=lambda r: (r["space"], r["budget_mflops"]))
        lines = [
            "| study | space | budget MMACs | trained | rejected | best val_acc | its MMACs | front size | hypervolume |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            best = r["best"] or {"val_acc": float("nan"), "mmacs": float("nan")}
            lines.append(
                f"| {r['study']} | {r['space']} | {r['budget_mflops']:g} | {r['trained']} | {r['rejected']} | "
                f"{best['val_acc']:.4f} | {best['mmacs']:.2f} | {len(r['front'])} | {r['hypervolume']:.4f} |"
            )
        table = "\n".join(lines)
        atomic_write(sweep / "summary.md", f"# Multirun summary\n\nHypervolume: area under the front in "
                     f"(MMACs / budget, val_acc), reference (1, 0).\n\n{table}\n")
        self._plot(rows, sweep / "summary.png")
        print(f"\n{table}\n\nwritten: {sweep / 'summary.md'}, {sweep / 'summary.png'}")

    @staticmethod
    def _plot(rows: list[dict[str, Any]], path: Path) -> None:
        import io

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for r in rows:
            xs = [p["mmacs"] for p in r["front"]]
            ys = [100 * p["val_acc"] for p in r["front"]]
            (line,) = ax.step(xs, ys, where="post", marker="o", ms=3, label=f"{r['space']} <= {r['budget_mflops']:g}")
            ax.axvline(r["budget_mflops"], color=line.get_color(), ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("MMACs per image (log scale)")
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        atomic_write(path, buffer.getvalue())
