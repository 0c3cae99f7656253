"""Training: the recipe, one plain training loop (`Training`, resumable at any step; `fit` runs it
whole) that the search's ladder and nas-train share, accuracy on a split, and the zero-cost scores of untrained networks."""

from .loop import (EpochMetrics, Training, TrainingDiverged, TrainResult, eval_batch_size, evaluate, fit, lr_at,
                   memory_format, pick_device, warm_up)
from .recipe import SCHEDULES, Recipe, RunSettings, TrainConfig
from .zero_cost import ZERO_COST_SCORES, rank_aggregate, zero_cost_scores

__all__ = ["SCHEDULES", "ZERO_COST_SCORES", "EpochMetrics", "Recipe", "RunSettings", "TrainConfig", "TrainResult",
           "Training", "TrainingDiverged", "eval_batch_size", "evaluate", "fit", "lr_at", "memory_format", "pick_device",
           "rank_aggregate", "warm_up", "zero_cost_scores"]
