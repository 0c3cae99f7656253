"""Results: a study's front and its outputs (pareto.csv, pareto.png, export/), the report of a
finished study, nas-train's full training of the front, and deployable model folders."""

from .export import ONNX_TOLERANCE, export_front, export_model, export_onnx, load_model, load_weights, onnx_speed
from .front import FrontMember, Outcome, cost_axis, hypervolume, outcome, pareto_front, trained_members, write_front_csv
from .outputs import reference_points, write_outputs
from .plot import plot_front
from .report import FrontReport, export_models, report_front
from .testing import measure_test
from .retrain import train_arch, train_front, train_full, validate_train

__all__ = [
    "ONNX_TOLERANCE",
    "FrontMember",
    "FrontReport",
    "Outcome",
    "cost_axis",
    "export_front",
    "export_model",
    "export_models",
    "export_onnx",
    "hypervolume",
    "load_model",
    "load_weights",
    "measure_test",
    "onnx_speed",
    "outcome",
    "pareto_front",
    "plot_front",
    "reference_points",
    "report_front",
    "train_arch",
    "train_front",
    "train_full",
    "trained_members",
    "validate_train",
    "write_front_csv",
    "write_outputs",
]
