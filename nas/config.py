"""Typed configuration: one dataclass per Hydra config group, registered once in the ConfigStore.

The YAML files in `conf/` pick values; these schemas define fields, defaults and units, and
`validate` checks values before anything is created on disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from search_spaces import SPACES, Budget

from .checks import check_device, check_folder, redact, require_fraction, require_positive
from .errors import ConfigError
from .model import MAX_MPARAMS
from .proxy import Recipe, check_recipe

__all__ = [
    "DashboardConfig",
    "DataConfig",
    "LimitsConfig",
    "NasConfig",
    "ObjectiveConfig",
    "OnCpuConfig",
    "ProxyConfig",
    "SearchConfig",
    "SpaceConfig",
    "StorageConfig",
    "StudyConfig",
    "TrainConfig",
    "register_configs",
    "validate",
]


@dataclass
class SpaceConfig:
    name: str = MISSING  # shufflenet | mobilenext | hybrid


@dataclass
class DataConfig:
    name: str = MISSING  # fashion_mnist | mnist | cifar10 | cifar100 | imagefolder | synthetic
    root: Optional[str] = None  # folder with the files; null searches the dataset's default places
    val_fraction: float = 0.1  # of the training set, held out to select architectures on
    split_seed: int = 0  # seed of the train/validation split
    flip: bool = True  # random horizontal flips while training (off for digits)
    pad_crop: int = 2  # random translations of up to this many pixels while training
    resolution: Optional[int] = None  # pixels; imagefolder: resize to NxN (null: the images' own); synthetic: size (null: 16)
    channels: Optional[int] = None  # 1 (grey) or 3 (RGB); null: the images' own (imagefolder), 1 (synthetic)


@dataclass
class LimitsConfig:
    """What a typo must not be able to start; raise a limit if you mean it."""

    max_mparams: float = MAX_MPARAMS  # refuse to build networks with more parameters (millions)


@dataclass
class OnCpuConfig:
    """A lighter proxy used when no GPU is found, so that a search on a laptop ends in minutes.
    Its batch and learning rate were chosen by measurement at this size (docs/proxy-quality.md):
    the proxy's 156 steps need a higher rate than a GPU epoch's hundreds."""

    max_train_images: int = 5000  # training images per candidate (drawn once per trial)
    max_val_images: int = 1000  # validation images scored per candidate
    batch_size: Optional[int] = 32  # null: proxy.batch_size
    lr: Optional[float] = 0.4  # peak learning rate; null: proxy.lr


@dataclass
class ProxyConfig(Recipe):
    """The search's proxy: the training recipe (`nas.proxy.Recipe`: epochs, batch, lr, schedule,
    images) of every candidate, and where and how it runs."""

    max_val_images: Optional[int] = None  # cap on validation images scored (null: all)
    device: str = "auto"  # auto (GPU when there is one) | cpu | cuda | cuda:N
    zero_cost: bool = True  # record synflow, NASWOT and ZiCo of every trained architecture (user attrs zc_*)
    on_cpu: Optional[OnCpuConfig] = field(default_factory=OnCpuConfig)  # null: full proxy on CPU too


@dataclass
class ObjectiveConfig:
    name: str = "pareto"  # pareto: (max val_acc, min MMACs) | accuracy: max val_acc
    pruner: Optional[dict[str, Any]] = None  # accuracy only: an Optuna pruner (_target_ ...)


@dataclass
class HalvingConfig:
    """Early stopping that keeps the Pareto mode (nas.halving): successive halving over rungs."""

    # Stop trials dominated at a rung (works with objective=pareto and accuracy). null: on unless
    # objective.pruner stops trials already (objective=accuracy comes with Hyperband).
    enabled: Optional[bool] = None
    rungs: list[float] = field(default_factory=lambda: [0.25, 0.5])  # fractions of the proxy's steps, ascending
    keep: float = 0.33  # share of the trials measured at a rung that continue (fronts best first)
    min_trials: int = 4  # trials a rung must have seen before it stops any

    def active(self, pruner: Any) -> bool:
        """Whether the search stops trials at the rungs, given the objective's pruner."""
        return self.enabled if self.enabled is not None else not pruner


@dataclass
class SearchConfig:
    n_trials: int = 20  # trained architectures to reach (rejected samples do not count)
    seed: int = 0  # sampler seed; with it the same architectures are sampled again
    worker: int = 0  # index of this worker when several share a study
    max_rejected: int = 2000  # stop after this many over-budget samples in a row
    max_failures: int = 10  # stop after this many failed trials in a row
    probe_samples: int = 500  # random samples that estimate the budget's feasible share
    budget_aware: bool = True  # draw depths and widths within what the budget leaves (false: plain space + rejection)
    halving: HalvingConfig = field(default_factory=HalvingConfig)
    prescreen: Optional[str] = None  # zero-cost pre-screening: naswot | zico | synflow (null: off)
    prescreen_candidates: int = 8  # architectures drawn (and scored) per one trained


@dataclass
class StudyConfig:
    name: str = MISSING  # the study's name in its storage, and its folder under runs/


@dataclass
class StorageConfig:
    kind: str = "rdb"  # rdb (SQLite, PostgreSQL: SQLAlchemy URL) | journal
    url: Optional[str] = None  # rdb: SQLAlchemy URL; journal: redis:// URL (null: a file)
    path: Optional[str] = None  # journal: log file (null: runs/<study.name>/journal.log)
    heartbeat_s: int = 60  # RDB: a trial without a heartbeat for 2x this long is stale


@dataclass
class TrainConfig(Recipe):
    """`nas-train`: a standard recipe for training an exported architecture (or a study's front)
    fully, on train + validation (`max_train_images`: a random subset of them)."""

    epochs: int = 30
    warmup: float = 0.1
    seed: int = 0
    device: str = "auto"
    top_k: Optional[int] = None  # nas-train study.name=...: the k most accurate front members (null: the whole front)


@dataclass
class DashboardConfig:
    host: str = "127.0.0.1"  # interface optuna-dashboard listens on
    port: int = 8080


@dataclass
class NasConfig:
    space: SpaceConfig = MISSING
    data: DataConfig = MISSING
    budget: Budget = field(default_factory=Budget)  # search_spaces.Budget: mflops (MACs), mparams
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sampler: dict[str, Any] = field(default_factory=dict)  # an Optuna sampler (_target_ ...)
    output_dir: str = MISSING  # where the study's files go (runs/<study.name>)
    artifact_dir: str = MISSING  # Optuna artifact store (trial YAMLs, the front's CSV and plot)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    verbose: bool = False  # tracebacks instead of one-line errors
    train: TrainConfig = field(default_factory=TrainConfig)
    arch: Optional[str] = None  # nas-train: the architecture YAML to train (null: the study's front)


def worker_seed(seed: int, worker: int) -> int:
    """Each worker of a shared study gets its own sampler seed; otherwise workers started together
    would propose the same architectures."""
    return int(seed) + 1009 * int(worker)


def register_configs() -> None:
    """Register the schemas once, so that Hydra type-checks every override against them."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("worker_seed"):
        OmegaConf.register_new_resolver("worker_seed", worker_seed)
    cs = ConfigStore.instance()
    cs.store(name="nas_schema", node=NasConfig)
    for group, node in (("space", SpaceConfig), ("data", DataConfig), ("proxy", ProxyConfig),
                        ("objective", ObjectiveConfig), ("storage", StorageConfig)):
        cs.store(group=group, name=f"{group}_schema", node=node)


PRESCREEN_SCORES = ("naswot", "zico", "synflow")
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,99}")
STORAGE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql", "mysql+pymysql")


def validate(cfg: NasConfig, datasets: Any) -> None:
    """Raise `ConfigError` naming the first invalid field. Writes nothing."""
    if cfg.space.name not in SPACES:
        raise ConfigError("space", f"unknown search space {cfg.space.name!r} (allowed: {', '.join(sorted(SPACES))})")
    if cfg.data.name not in datasets:
        raise ConfigError("data", f"unknown dataset {cfg.data.name!r} (allowed: {', '.join(datasets)})")
    require_fraction("data.val_fraction", cfg.data.val_fraction, closed=False)
    if cfg.data.pad_crop < 0:
        raise ConfigError("data.pad_crop", f"{cfg.data.pad_crop} is not allowed (allowed: >= 0)")
    require_positive("budget.mflops", cfg.budget.mflops)
    require_positive("limits.max_mparams", cfg.limits.max_mparams)
    if cfg.budget.mparams is not None:
        require_positive("budget.mparams", cfg.budget.mparams)
    p = cfg.proxy
    check_recipe(p, "proxy")
    if p.max_val_images is not None:
        require_positive("proxy.max_val_images", p.max_val_images, integer=True)
    if p.on_cpu is not None:
        require_positive("proxy.on_cpu.max_train_images", p.on_cpu.max_train_images, integer=True)
        require_positive("proxy.on_cpu.max_val_images", p.on_cpu.max_val_images, integer=True)
        if p.on_cpu.batch_size is not None:
            require_positive("proxy.on_cpu.batch_size", p.on_cpu.batch_size, integer=True)
        if p.on_cpu.lr is not None:
            require_positive("proxy.on_cpu.lr", p.on_cpu.lr)
    check_device("proxy.device", p.device)
    if cfg.objective.name not in ("pareto", "accuracy"):
        raise ConfigError("objective", f"unknown objective {cfg.objective.name!r} (allowed: pareto, accuracy)")
    if cfg.objective.name == "pareto" and cfg.objective.pruner:
        raise ConfigError("objective.pruner", "Optuna's pruners are single-objective: use objective=accuracy")
    s = cfg.search
    require_positive("search.n_trials", s.n_trials, integer=True)
    require_positive("search.max_rejected", s.max_rejected, integer=True)
    require_positive("search.max_failures", s.max_failures, integer=True)
    if s.worker < 0:
        raise ConfigError("search.worker", f"{s.worker} is not allowed (allowed: >= 0)")
    h = s.halving
    if h.enabled and cfg.objective.pruner:
        raise ConfigError("search.halving.enabled",
                          "cannot be combined with objective.pruner (choose one; null turns halving off under a pruner)")
    if h.active(cfg.objective.pruner):
        rungs = list(h.rungs)
        if not rungs or any(not 0 < r < 1 for r in rungs) or rungs != sorted(set(rungs)):
            raise ConfigError("search.halving.rungs", f"{rungs} is not allowed (allowed: ascending fractions, 0 < r < 1)")
        require_fraction("search.halving.keep", h.keep)
        require_positive("search.halving.min_trials", h.min_trials, integer=True)
    if s.prescreen is not None:
        if s.prescreen not in PRESCREEN_SCORES:
            raise ConfigError("search.prescreen",
                              f"{s.prescreen!r} is not allowed (allowed: {', '.join(PRESCREEN_SCORES)}, or null)")
        require_positive("search.prescreen_candidates", s.prescreen_candidates, integer=True)
    if not STUDY_NAME.fullmatch(str(cfg.study.name)):
        raise ConfigError(
            "study.name",
            f"{cfg.study.name!r} is not allowed (allowed: ASCII letters, digits, '_', '-', '.', '='; up to 100)",
        )
    _validate_storage(cfg.storage)
    check_folder("output_dir", cfg.output_dir)
    check_folder("artifact_dir", cfg.artifact_dir)
    if cfg.storage.kind == "rdb" and cfg.storage.url.startswith("sqlite:///"):
        check_folder("storage.url", Path(cfg.storage.url.removeprefix("sqlite:///")).parent)
    if cfg.storage.kind == "journal" and not cfg.storage.url:
        check_folder("storage.path", Path(cfg.storage.path or Path(cfg.output_dir) / "journal.log").parent)
    if not cfg.sampler.get("_target_"):
        raise ConfigError("sampler", "needs a _target_ (choose one with sampler=tpe|nsgaii|random)")


def _validate_storage(storage: StorageConfig) -> None:
    if storage.kind == "rdb":
        url = storage.url or ""
        if url in ("", "???"):
            raise ConfigError("storage.url", "is required (e.g. storage.url=postgresql://USER:PASSWORD@HOST:5432/DB)")
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in STORAGE_SCHEMES or not url.split("://", 1)[1]:
            raise ConfigError(
                "storage.url",
                f"{redact(url)!r} is not a database URL (allowed: sqlite:///PATH, "
                "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, mysql://...)",
            )
    elif storage.kind == "journal":
        if storage.url and not storage.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("storage.url", f"{redact(storage.url)!r} is not a Redis URL (allowed: redis://HOST:PORT/DB)")
    else:
        raise ConfigError("storage.kind", f"{storage.kind!r} is not allowed (allowed: rdb, journal)")
    require_positive("storage.heartbeat_s", storage.heartbeat_s, integer=True)
