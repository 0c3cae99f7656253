"""What a search leaves behind: pareto.csv, pareto.png, export/ and the study's artifacts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import optuna

from search_spaces import DataShape, reference

from ..attrs import StudyAttr
from ..complexity import complexity
from ..search.storage import artifact_store, upload_text
from .export import export_front
from .front import Outcome, outcome, write_front_csv
from .plot import plot_front

__all__ = ["reference_points", "write_outputs"]

#: Reference networks marked on plots for orientation.
PLOT_REFERENCES = ("shufflenet_v1_g3_0.25x", "shufflenet_v1_g3_0.5x", "shufflenet_v1_g3_1.0x",
                   "mobilenext_0.35", "mobilenext_0.5", "mobilenext_1.0")


def reference_points(shape: DataShape) -> list[tuple[str, float]]:
    """(name, MMACs) of the plotted reference networks at the study's input size."""
    return [(name, complexity(reference(name, shape.num_classes, shape.in_channels, shape.resolution)).mmacs)
            for name in PLOT_REFERENCES]


def write_outputs(study: optuna.Study, output_dir: Path, *, budget_mflops: float, shape: DataShape,
                  artifact_dir: str | None = None) -> tuple[Outcome, dict[int, str]]:
    """pareto.csv, pareto.png and export/ for the study's current trials (atomically), from one
    `Outcome`; the CSV and plot also go to the artifact store when they changed since the last
    upload. Returns the outcome and the exported YAMLs by trial."""
    result = outcome(study, budget_mflops)
    exported = export_front(result.front, output_dir / "export")
    write_front_csv(result, exported, output_dir / "pareto.csv")
    plot_front(result, output_dir / "pareto.png", references=reference_points(shape))
    if result.front:
        study.set_user_attr(StudyAttr.HYPERVOLUME, result.hypervolume)
    if artifact_dir is not None:
        # What the files show: the front and the number of trials (a PNG's bytes vary run to run).
        csv_bytes = (output_dir / "pareto.csv").read_bytes()
        digest = hashlib.sha256(csv_bytes + str(result.trials).encode()).hexdigest()
        if study.user_attrs.get(StudyAttr.ARTIFACTS_DIGEST) != digest:
            store = artifact_store(artifact_dir)
            upload_text(store, study, "pareto.csv", csv_bytes, "text/csv")
            upload_text(store, study, "pareto.png", (output_dir / "pareto.png").read_bytes(), "image/png")
            study.set_user_attr(StudyAttr.ARTIFACTS_DIGEST, digest)
    return result, exported
