"""What a search leaves behind: pareto.csv, pareto.png, export/ and the study's artifacts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from search_spaces import DataShape, reference

from .attrs import StudyAttr
from .complexity import complexity
from .export import export_front
from .pareto import Candidate, candidates, hypervolume, pareto_front, plot_front, write_front_csv
from .storage import artifact_store, upload_text

__all__ = ["SearchResult", "reference_points", "write_outputs"]

#: Reference networks marked on plots for orientation.
PLOT_REFERENCES = ("shufflenet_v1_g3_0.25x", "shufflenet_v1_g3_0.5x", "shufflenet_v1_g3_1.0x",
                   "mobilenext_0.35", "mobilenext_0.5", "mobilenext_1.0")



@dataclass
class SearchResult:
    study_name: str
    output_dir: Path
    front: list[Candidate]
    trained: int
    rejected: int
    failed: int
    pruned: int
    wall_s: float
    device: str
    hypervolume: float = 0.0
    proxy_note: str = ""
    exported: dict[int, str] = field(default_factory=dict)
    prescreened: int = 0  # scored untrained and not chosen (search.prescreen)

    @property
    def inside_budget(self) -> float:
        """Share of the sampled architectures that fit the budget."""
        sampled = self.trained + self.rejected + self.failed + self.prescreened
        return 1.0 - self.rejected / sampled if sampled else 1.0



def reference_points(shape: DataShape) -> list[tuple[str, float]]:
    """(name, MMACs) of the plotted reference networks at the study's input size."""
    return [(name, complexity(reference(name, shape.num_classes, shape.in_channels, shape.resolution)).mmacs)
            for name in PLOT_REFERENCES]


def write_outputs(study: optuna.Study, output_dir: Path, *, budget_mflops: float, shape: DataShape,
                  artifact_dir: str | None = None) -> tuple[list[Candidate], dict[int, str]]:
    """pareto.csv, pareto.png and export/ for the study's current trials (atomically); the CSV and
    plot also go to the artifact store when they changed since the last upload."""
    front = pareto_front(candidates(study.get_trials(deepcopy=False)))
    exported = export_front(front, output_dir / "export")
    write_front_csv(front, exported, output_dir / "pareto.csv")
    plot_front(study, front, output_dir / "pareto.png", budget_mmacs=budget_mflops, references=reference_points(shape))
    if front:
        study.set_user_attr(StudyAttr.HYPERVOLUME, hypervolume(front, budget_mflops))
    if artifact_dir is not None:
        # What the files show: the front and the number of trials (a PNG's bytes vary run to run).
        csv_bytes = (output_dir / "pareto.csv").read_bytes()
        digest = hashlib.sha256(csv_bytes + str(len(study.trials)).encode()).hexdigest()
        if study.user_attrs.get(StudyAttr.ARTIFACTS_DIGEST) != digest:
            store = artifact_store(artifact_dir)
            upload_text(store, study, "pareto.csv", csv_bytes, "text/csv")
            upload_text(store, study, "pareto.png", (output_dir / "pareto.png").read_bytes(), "image/png")
            study.set_user_attr(StudyAttr.ARTIFACTS_DIGEST, digest)
    return front, exported
