"""The jobs the entry points run, callable from Python without Hydra: a search that ends with its
outputs written (`run_search`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ..data import Dataset
from ..results import FrontMember, measure_test, write_outputs
from ..search import NasConfig, search

__all__ = ["SearchResult", "run_search"]


@dataclass
class SearchResult:
    study_name: str
    output_dir: Path
    front: list[FrontMember]
    trained: int
    rejected: int
    failed: int
    pruned: int
    wall_s: float
    device: str
    hypervolume: float = 0.0
    proxy_note: str = ""
    exported: dict[int, str] = field(default_factory=dict)
    rows: list[tuple[FrontMember, bool]] = field(default_factory=list)  # the front, then references not on it
    prescreened: int = 0  # scored untrained and not chosen (search.prescreen)

    @property
    def inside_budget(self) -> float:
        """Share of the sampled architectures that fit the budget."""
        sampled = self.trained + self.rejected + self.failed + self.prescreened
        return 1.0 - self.rejected / sampled if sampled else 1.0


def run_search(cfg: NasConfig, *, dataset: Dataset | None = None, progress: bool = True) -> SearchResult:
    """Search until the study holds `search.n_trials` trained architectures (`nas.search.search`),
    then measure the front's test accuracy (once per member) and write pareto.csv, pareto.png and
    export/. Interrupted, it writes what the study holds without measuring test accuracy, which the
    resumed search's end does."""
    written = []

    def write(study: optuna.Study, data: Dataset, interrupted: bool) -> None:
        if not interrupted:
            measure_test(study, data, Path(cfg.output_dir), cfg.proxy.device, cfg.search.worker)
        written.append(write_outputs(study, Path(cfg.output_dir), budget_mflops=cfg.budget.mflops, shape=data.shape,
                                     artifact_dir=cfg.artifact_dir))

    run = search(cfg, dataset=dataset, progress=progress, on_stop=write)
    outcome, exported = written[-1]
    counts = run.counts
    return SearchResult(
        study_name=cfg.study.name, output_dir=Path(cfg.output_dir), front=outcome.front, exported=exported,
        trained=counts["trained"], rejected=counts["rejected"], failed=counts["failed"], pruned=counts["pruned"],
        prescreened=counts["prescreened"], wall_s=run.wall_s, device=run.device, proxy_note=run.proxy_note,
        hypervolume=outcome.hypervolume, rows=outcome.rows(),
    )
