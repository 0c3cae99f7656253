"""The search: its configuration, the loop that trains architectures until a study holds enough,
one trial's lifecycle (shared with the Hydra sweeper), the study's storage, successive halving,
and the trial a sweeper job reports to."""

from .budget import RandomSuggests, budget_usage, probe_budget
from .config import (DashboardConfig, HalvingConfig, NasConfig, ObjectiveConfig, OnCpuConfig, ProxyConfig,
                     SearchConfig, SpaceConfig, StorageConfig, StudyConfig, validate, worker_seed)
from .halving import Halving, promoted, record_and_decide
from .liveness import fail_dead_trials, live_workers, this_process
from .objective import run_settings
from .storage import artifact_store, check_identity, make_storage, open_finished_study, open_study, study_shape, upload_text
from .study import SearchRun, search
from .sweep_jobs import RungTrial, current_trial
from .trials import (RejectionLimit, Withdrawn, admit, fully_trained, record_arch, rejected_values, sample_and_price,
                     trial_counts)

__all__ = [
    "DashboardConfig", "Halving", "HalvingConfig", "NasConfig", "ObjectiveConfig", "OnCpuConfig", "ProxyConfig",
    "RandomSuggests", "RejectionLimit", "RungTrial", "SearchConfig", "SearchRun", "SpaceConfig", "StorageConfig",
    "StudyConfig", "Withdrawn", "admit", "artifact_store", "check_identity", "budget_usage", "current_trial", "fail_dead_trials",
    "fully_trained", "live_workers", "make_storage", "open_finished_study", "open_study", "probe_budget", "promoted",
    "record_and_decide", "record_arch", "rejected_values", "run_settings", "sample_and_price", "search",
    "study_shape", "this_process", "trial_counts", "upload_text", "validate", "worker_seed",
]
