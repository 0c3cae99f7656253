"""Training: the recipe, one plain training loop (`fit`) that the search's proxy and nas-train
share, accuracy on a split, and the zero-cost scores of untrained networks."""

from .loop import EpochMetrics, TrainingDiverged, TrainResult, evaluate, fit, pick_device
from .recipe import SCHEDULES, Recipe, RunSettings, TrainConfig
from .zero_cost import ZERO_COST_SCORES, rank_aggregate, zero_cost_scores

__all__ = ["SCHEDULES", "ZERO_COST_SCORES", "EpochMetrics", "Recipe", "RunSettings", "TrainConfig", "TrainResult",
           "TrainingDiverged", "evaluate", "fit", "pick_device", "rank_aggregate", "zero_cost_scores"]
