"""Training: the recipe, one plain training loop (`Training`, resumable at any step; `fit` runs it
whole) that the search's ladder and nas-train share, accuracy on a split, and the zero-cost scores of untrained networks."""

from .loop import EpochMetrics, Training, TrainingDiverged, TrainResult, evaluate, fit, lr_at, pick_device
from .recipe import SCHEDULES, Recipe, RunSettings, TrainConfig
from .zero_cost import ZERO_COST_SCORES, rank_aggregate, zero_cost_scores

__all__ = ["SCHEDULES", "ZERO_COST_SCORES", "EpochMetrics", "Recipe", "RunSettings", "TrainConfig", "TrainResult",
           "Training", "TrainingDiverged", "evaluate", "fit", "lr_at", "pick_device", "rank_aggregate", "zero_cost_scores"]
