"""The jobs the entry points run, callable from Python without Hydra: a search that ends with its
outputs written (`run_search`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..attrs import StudyAttr, TrialAttr
from ..data import Dataset
from ..results import FrontMember, Outcome, measure_test, write_outputs
from ..search import NasConfig, search

__all__ = ["SearchResult", "run_search"]


@dataclass
class SearchResult:
    """What a search found: its study, its front (validation accuracy vs MACs, each member with
    its `Arch`, MACs, parameters and, once measured, test accuracy), and how it went."""

    study_name: str
    output_dir: Path  # the run folder: pareto.csv, pareto.png, export/, weights/
    front: list[FrontMember]  # by MACs (by latency with objective=latency)
    trained: int
    rejected: int
    failed: int
    pruned: int
    wall_s: float  # this run's (a loaded study: from its first trial's start to its last's end)
    device: str
    hypervolume: float = 0.0
    proxy_note: str = ""
    exported: dict[int, str] = field(default_factory=dict)
    rows: list[tuple[FrontMember, bool]] = field(default_factory=list)  # the front, then references not on it
    prescreened: int = 0  # scored untrained and not chosen (search.prescreen)
    study: optuna.Study | None = None
    axis: str = TrialAttr.MACS  # the front's cost: macs, or latency_ms (objective=latency)

    @property
    def inside_budget(self) -> float:
        """Share of the sampled architectures that fit the budget."""
        sampled = self.trained + self.rejected + self.failed + self.prescreened
        return 1.0 - self.rejected / sampled if sampled else 1.0

    @classmethod
    def of(cls, study: optuna.Study, outcome: Outcome, output_dir: Path, *, counts: dict[str, int], wall_s: float,
           device: str, exported: dict[int, str], proxy_note: str = "") -> SearchResult:
        """The result of `study` as `outcome` (`nas.results.outcome`) saw it."""
        return cls(
            study_name=study.study_name, output_dir=output_dir, front=outcome.front, exported=exported,
            trained=counts["trained"], rejected=counts["rejected"], failed=counts["failed"], pruned=counts["pruned"],
            prescreened=counts["prescreened"], wall_s=wall_s, device=device, proxy_note=proxy_note,
            hypervolume=outcome.hypervolume, rows=outcome.rows(), study=study, axis=outcome.axis,
        )

    def __repr__(self) -> str:
        best = self.best
        shown = "none trained" if best is None else (
            f"best: trial {best.trial}, val_acc {best.val_acc:.4f}, test_acc "
            f"{'-' if best.test_acc is None else f'{best.test_acc:.4f}'}, {best.mmacs:.2f} MMACs"
            f"{'' if best.latency_ms is None else f', {best.latency_ms:.3f} ms'}")
        return (f"<SearchResult study {self.study_name!r}: {self.trained} trained, front of {len(self.front)}; "
                f"{shown}; in {self.output_dir}>")

    @property
    def best(self) -> FrontMember | None:
        """The front's most accurate member on the validation split (what the search selects
        on; its test accuracy is reported, never used to choose), None before any is trained."""
        return max(self.front, key=lambda m: (m.val_acc, -m.macs), default=None)

    @property
    def references(self) -> list[FrontMember]:
        """The papers' networks scaled to the budget, trained beside the search."""
        return [m for m, _ in self.rows if m.reference]

    def to_dataframe(self) -> Any:
        """One row per trial of the study (a pandas DataFrame, like Optuna's
        `trials_dataframe`): number, state, status, val_acc, test_acc, mmacs, mparams, latency_ms
        (objective=latency), on_front, reference, pruned_at (training images seen), train_s,
        genotype, worker, datetimes."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SearchResult.to_dataframe needs pandas: pip install pandas") from None
        if self.study is None:
            raise ValueError("this result holds no study")
        on_front = {m.trial for m in self.front}
        tested = self.study.user_attrs.get(StudyAttr.TEST_ACC, {})
        rows = []
        for t in self.study.get_trials(deepcopy=False):
            a = t.user_attrs
            rows.append({
                "number": t.number, "state": t.state.name, "status": a.get(TrialAttr.STATUS),
                "val_acc": a.get(TrialAttr.VAL_ACC), "test_acc": tested.get(str(t.number)),
                "mmacs": a[TrialAttr.MACS] / 1e6 if TrialAttr.MACS in a else None,
                "mparams": a[TrialAttr.PARAMS] / 1e6 if TrialAttr.PARAMS in a else None,
                "latency_ms": a.get(TrialAttr.LATENCY_MS),
                "on_front": t.number in on_front, "reference": a.get(TrialAttr.REFERENCE),
                "pruned_at": a.get(TrialAttr.PRUNED_AT), "train_s": a.get(TrialAttr.TRAIN_S),
                "genotype": a.get(TrialAttr.GENOTYPE), "worker": a.get(TrialAttr.WORKER),
                "datetime_start": t.datetime_start, "datetime_complete": t.datetime_complete,
                "duration": (t.datetime_complete - t.datetime_start
                             if t.datetime_start and t.datetime_complete else None),
            })
        return pd.DataFrame(rows).set_index("number")


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
    return SearchResult.of(run.study, outcome, Path(cfg.output_dir), counts=run.counts, wall_s=run.wall_s,
                           device=run.device, exported=exported, proxy_note=run.proxy_note)
