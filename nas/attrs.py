"""The names a search writes on Optuna trials and studies, defined once.

They are what users see in the dashboard and read with `trial.user_attrs[...]`, so their values
are part of the interface; the code spells them only through these constants (a typo is then an
AttributeError, not a silently empty front). Being `str` enums, they compare equal to the plain
strings a storage gives back.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Status", "StudyAttr", "TrialAttr", "zero_cost_attr"]


class Status(StrEnum):
    """A trial's `status`: how far it got."""

    ADMITTED = "admitted"  # inside the budget and holding a training slot: trained (or training)
    REJECTED = "rejected"  # over the budget: priced, never built
    WITHDRAWN = "withdrawn"  # inside the budget, but other workers held the study's last slots
    PRESCREENED = "prescreened"  # scored untrained by search.prescreen and not chosen


class TrialAttr(StrEnum):
    """Trial user attributes."""

    STATUS = "status"
    REJECTED = "rejected"  # True on rejected samples (kept beside STATUS for the dashboard's filters)
    MACS = "macs"
    PARAMS = "params"
    GENOTYPE = "genotype"
    WORKER = "worker"
    PROCESS = "process"  # {"host", "pidns", "pid", "start"} of the process running the trial
    ARCH_YAML = "arch_yaml"
    VAL_ACC = "val_acc"
    VAL_ACC_CURVE = "val_acc_curve"  # after each epoch
    RUNG_VAL_ACC = "rung_val_acc"  # {rung: validation accuracy measured there} (nas.search.halving)
    PRUNED_AT = "pruned_at"
    TRAIN_S = "train_s"
    SETUP_S = "setup_s"
    IMG_S = "img_s"
    DEVICE = "device"
    EPOCHS = "epochs"
    LOSS_SUM = "loss_sum"
    FAILURE = "failure"  # why a trial failed
    PRESCREENED_FROM = "prescreened_from"  # the trials a pre-screened trial was chosen from


def zero_cost_attr(score: str) -> str:
    """The trial attribute of a zero-cost score: `zc_synflow`, `zc_naswot`, ..."""
    return score if score.startswith("zc_") else f"zc_{score}"


class StudyAttr(StrEnum):
    """Study user attributes."""

    SPACE = "space"
    DATA = "data"
    INPUT = "input"  # "CxHxW"
    NUM_CLASSES = "num_classes"
    OBJECTIVE = "objective"
    BUDGET_MFLOPS = "budget_mflops"
    BUDGET_MPARAMS = "budget_mparams"
    PROXY_SETTINGS = "proxy_settings"  # the settings every trial is scored with, by config field
    DATA_MEAN = "data_mean"
    DATA_STD = "data_std"
    HYPERVOLUME = "hypervolume"
    ARTIFACTS_DIGEST = "artifacts_digest"  # what the uploaded pareto.csv / pareto.png showed
