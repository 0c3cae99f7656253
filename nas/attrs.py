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
    PROMOTED = "promoted"  # a stopped trial's network trained again, promoted later (no slot of its own)


class TrialAttr(StrEnum):
    """Trial user attributes."""

    STATUS = "status"
    REJECTED = "rejected"  # True on rejected samples (kept beside STATUS for the dashboard's filters)
    MACS = "macs"
    PARAMS = "params"
    LATENCY_MS = "latency_ms"  # objective=latency: median CPU ms per image through onnxruntime (nas.latency)
    LATENCY_SPREAD = "latency_spread"  # (p90 - p10) / median of those timed runs
    GENOTYPE = "genotype"
    WORKER = "worker"
    PROCESS = "process"  # {"host", "pidns", "pid", "start"} of the process running the trial
    ARCH_YAML = "arch_yaml"
    VAL_ACC = "val_acc"
    RUNG_VAL_ACC = "rung_val_acc"  # {training images seen: validation accuracy there}, each rung reached
    PRUNED_AT = "pruned_at"  # the rung (training images seen) a trial was stopped at
    WEIGHTS = "weights"  # top-rung trials: their weights file, relative to the study's folder
    REFERENCE = "reference"  # a paper's network scaled to the budget (nas.search.references): its name
    TRAIN_S = "train_s"
    SETUP_S = "setup_s"
    IMG_S = "img_s"
    DEVICE = "device"
    EPOCHS = "epochs"
    LOSS_SUM = "loss_sum"
    FAILURE = "failure"  # why a trial failed
    PRESCREENED_FROM = "prescreened_from"  # the trials a pre-screened trial was chosen from
    PROMOTED_FROM = "promoted_from"  # the stopped trial whose network this one trains again


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
    DATA_FINGERPRINT = "data_fingerprint"  # digest of the training and validation images and labels (nas.data.fingerprint)
    LATENCY_MACHINE = "latency_machine"  # objective=latency: the CPU its trials were timed on (nas.timing.machine)
    DATA_MEAN = "data_mean"
    DATA_STD = "data_std"
    HYPERVOLUME = "hypervolume"
    REFERENCES = "references"  # the scaled reference networks queued as the first trials
    TEST_ACC = "test_acc"  # {trial number: test accuracy} of the front, measured once when the search ends
    ARTIFACTS_DIGEST = "artifacts_digest"  # what the uploaded pareto.csv / pareto.png showed
