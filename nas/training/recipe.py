"""How a network is trained: the recipe (hyperparameters the search's proxy and nas-train share)
and the settings of one training run (a recipe, its augmentation and seed)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Optional

from search_spaces.fields import SEED, Rule, at_least, fraction, interval, one_of, positive

__all__ = ["SCHEDULES", "Recipe", "RunSettings", "TrainConfig"]

SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass
class Recipe:
    """How a network is trained: the hyperparameters the search's proxy (config group `proxy`) and
    nas-train (group `train`) share, defined once here; both groups extend it."""

    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.1  # peak learning rate of SGD with Nesterov momentum
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    schedule: str = "onecycle"  # onecycle (linear warm-up, linear decay) | cosine | constant
    warmup: float = 0.2  # fraction of the steps spent warming up (onecycle)
    train_fraction: float = 1.0  # of the training split, drawn once per run
    max_train_images: Optional[int] = None  # cap on the images drawn (null: no cap)
    eval_batch_size: Optional[int] = None  # null: 64 on the CPU (faster there), 1024 elsewhere
    channels_last: Optional[bool] = None  # memory layout; null: channels-last on the CPU (faster there), not on GPUs

    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": positive(integer=True),
        "batch_size": positive(integer=True),
        "lr": positive(),
        "momentum": at_least(0),
        "weight_decay": at_least(0),
        "label_smoothing": interval(0, 1),
        "schedule": one_of(SCHEDULES),
        "warmup": interval(0, 1),
        "train_fraction": fraction(),
        "max_train_images": positive(integer=True, optional=True),
        "eval_batch_size": positive(integer=True, optional=True),
    }


@dataclass
class RunSettings(Recipe):
    """One training run: a recipe, and what the run itself is given (augmentation, seed)."""

    flip: bool = True  # random horizontal flips
    pad_crop: int = 2  # random translations of up to this many pixels
    seed: int = 0  # images drawn, their order, augmentation

    @classmethod
    def of(cls, recipe: Any, **given: Any) -> RunSettings:
        """The settings of a run with `recipe` (a `Recipe` or a config node extending it), fields in
        `given` replacing the recipe's."""
        return cls(**{**{f.name: getattr(recipe, f.name) for f in fields(Recipe)}, **given})


@dataclass
class TrainConfig(Recipe):
    """`nas-train`: a standard recipe for training an exported architecture (or a study's front)
    fully, on train + validation (`max_train_images`: a random subset of them)."""

    epochs: int = 30
    warmup: float = 0.1
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (checked against this machine before training)
    top_k: Optional[int] = None  # nas-train study.name=...: the k most accurate front members (null: the whole front)

    RULES: ClassVar[dict[str, Rule]] = {**Recipe.RULES, "seed": SEED, "top_k": positive(integer=True, optional=True)}
