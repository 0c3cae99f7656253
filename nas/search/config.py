"""The search's configuration: one dataclass per Hydra config group, each stating its fields'
defaults, units and rules once; `NasConfig` is the whole of `conf/search.yaml`.

`validate` applies the rules (`search_spaces.fields.check_fields`), then probes the folders and
devices the run will use, before anything is created on disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

from omegaconf import MISSING

from search_spaces import SPACES, Budget
from search_spaces.fields import SEED, FieldError, Rule, at_least, check_fields, fraction, integer_in, one_of, positive

from ..attrs import TrialAttr
from ..probes import check_device, check_folder
from ..secrets import redact
from ..data import DataConfig
from ..errors import ConfigError
from ..model import LimitsConfig
from ..training import Recipe, TrainConfig

__all__ = [
    "OBJECTIVES",
    "DashboardConfig",
    "HalvingConfig",
    "LatencyConfig",
    "NasConfig",
    "ObjectiveConfig",
    "OnCpuConfig",
    "ProxyConfig",
    "SearchConfig",
    "SpaceConfig",
    "StorageConfig",
    "StudyConfig",
    "validate",
    "worker_seed",
]

PRESCREEN_SCORES = ("naswot", "zico", "synflow")
WORKER_SEED_STRIDE = 1009
RUNG_SCHEDULES = ("restart", "restart_no_warmup", "single")


def worker_seed(seed: int, worker: int) -> int:
    """Each worker of a shared study gets its own sampler seed (conf/sampler's `${worker_seed:...}`);
    otherwise workers started together would propose the same architectures."""
    return int(seed) + WORKER_SEED_STRIDE * int(worker)
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]{0,99}")
STORAGE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "postgresql+psycopg", "mysql", "mysql+pymysql")


@dataclass
class SpaceConfig:
    name: str = MISSING  # shufflenet | mobilenext | hybrid

    RULES: ClassVar[dict[str, Rule]] = {"name": one_of(lambda: sorted(SPACES), noun="search space")}


@dataclass
class OnCpuConfig:
    """A smaller ladder used when no GPU is found, so that a search on a laptop ends in minutes.
    Its sizes, batch and learning rate were chosen by measurement (docs/proxy-quality.md)."""

    epochs: Optional[int] = 1  # of the top rung (null: proxy.epochs)
    max_train_images: int = 40000  # training images per candidate (drawn once per trial)
    screen_images: Optional[int] = None  # the lowest rung (null: proxy.screen_images, else the top / eta^2)
    max_val_images: int = 1000  # validation images scored at each rung below the top
    top_val_images: Optional[int] = None  # at the top rung, which chooses the front (null: the whole split)
    batch_size: Optional[int] = 32  # null: proxy.batch_size
    lr: Optional[float] = 0.4  # peak learning rate; null: proxy.lr
    # The data's flips and translations (data.flip, data.pad_crop) while training; off by default,
    # as a one-epoch top rung shows each image once and augmentation only slows it down
    augment: bool = False

    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": positive(integer=True, optional=True),
        "max_train_images": positive(integer=True),
        "screen_images": positive(integer=True, optional=True),
        "max_val_images": positive(integer=True),
        "top_val_images": positive(integer=True, optional=True),
        "batch_size": positive(integer=True, optional=True),
        "lr": positive(optional=True),
    }


@dataclass
class ProxyConfig(Recipe):
    """How candidates are trained: a fidelity ladder whose top rung is the recipe itself (`epochs`
    over the images drawn, `nas.training.Recipe`), a real training, and whose lower rungs are the
    top's images seen divided by `eta` again and again down to `screen_images`. A trial stopped at
    a rung never trains further; one promoted continues its own run (nas.search.ladder)."""

    epochs: int = 3  # of the top rung
    eta: int = 3  # ratio of one rung's training images to the rung below
    screen_images: Optional[int] = None  # training images seen at the lowest rung (null: the top / eta^2)
    # restart: each rung's steps have their own schedule, warm-up included (warm restarts) |
    # restart_no_warmup: the rungs after the first start at the peak lr | single: one over the top
    rung_schedule: str = "restart"
    max_val_images: Optional[int] = None  # validation images scored at each rung (null: all)
    device: str = "auto"  # auto (GPU when there is one) | cpu | cuda | cuda:N
    zero_cost: bool = False  # record synflow, NASWOT and ZiCo of every trained architecture (user attrs zc_*)
    on_cpu: Optional[OnCpuConfig] = field(default_factory=OnCpuConfig)  # null: the full ladder on the CPU too

    RULES: ClassVar[dict[str, Rule]] = {
        **Recipe.RULES,
        "eta": integer_in(2, 100),
        "screen_images": positive(integer=True, optional=True),
        "rung_schedule": one_of(RUNG_SCHEDULES),
        "max_val_images": positive(integer=True, optional=True),
    }


@dataclass
class LatencyConfig:
    """How objective=latency times a network (`nas.latency`): exported to ONNX and run by
    onnxruntime on this machine's CPU, with `threads` intra-op threads and a batch of
    `batch_size`; after `warmup` untimed runs, the median of `repeats` timed ones, in ms per image."""

    threads: int = 1
    batch_size: int = 1
    repeats: int = 30
    warmup: int = 5

    RULES: ClassVar[dict[str, Rule]] = {"threads": integer_in(1, 256), "batch_size": integer_in(1, 4096),
                                        "repeats": integer_in(3, 100_000), "warmup": integer_in(0, 100_000)}


#: The objectives, by name: the names of a trial's values (accuracy, then the cost minimized if any).
OBJECTIVES = {"pareto": ("val_acc", "MMACs"), "accuracy": ("val_acc",), "latency": ("val_acc", "latency_ms")}


@dataclass
class ObjectiveConfig:
    # pareto: (max val_acc, min MMACs) | accuracy: max val_acc | latency: (max val_acc, min measured
    # CPU ms per image), with MACs still the budget
    name: str = "pareto"
    # accuracy only: an Optuna pruner ({_target_: ...}); typed Any, as OmegaConf cannot merge an
    # override's dict into a null dict node
    pruner: Any = None
    latency: LatencyConfig = field(default_factory=LatencyConfig)  # objective=latency: how it is timed

    RULES: ClassVar[dict[str, Rule]] = {"name": one_of(tuple(OBJECTIVES), noun="objective")}

    def check(self) -> None:
        if self.pruner is not None and not (isinstance(self.pruner, dict) and isinstance(self.pruner.get("_target_"), str)):
            raise FieldError("pruner", f"{str(self.pruner)[:80]!r} is not allowed (allowed: null, or an Optuna pruner "
                                       "{_target_: optuna.pruners.MedianPruner, ...} with objective=accuracy)")
        if self.name != "accuracy" and self.pruner:
            raise FieldError("pruner", "Optuna's pruners are single-objective: use objective=accuracy")

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The trial values' names, as the study and the dashboard show them."""
        return OBJECTIVES[self.name]

    @property
    def cost_attr(self) -> str | None:
        """The trial attribute weighed against accuracy: macs, latency_ms, or None (accuracy alone)."""
        return {"pareto": TrialAttr.MACS, "latency": TrialAttr.LATENCY_MS}.get(self.name)


@dataclass
class HalvingConfig:
    """Promotion up the ladder (nas.search.halving): at each rung below the top, a trial goes on
    while it is among the best `keep` share of the trials measured there (`screen_keep` at the
    screening rung; non-dominated fronts on accuracy and MACs; accuracy alone with
    objective=accuracy), and with `cap` while fewer than that share of the rung's searched trials
    have gone on; with `late`, also when it gets there later."""

    # Stop trials dominated at a rung. null: on unless objective.pruner stops trials already.
    enabled: Optional[bool] = None
    # Share of the trials measured at a rung that continue (fronts best first), and the share at the
    # screening rung (null: keep). With late promotion (below), a fifth at the screening rung and a
    # quarter above it give the replayed searches their best hypervolume, and a front of three in 69%
    # of them against 32% for a fifth everywhere decided at arrival, for about 20% more training
    # time (bench/promotion_replay.py, docs/proxy-quality.md); 0.15 at the screening rung is quicker.
    keep: float = 0.25
    screen_keep: Optional[float] = 0.2
    # ASHA's bound: also at most ceil(keep * k) of a rung's k searched trials go on. With
    # screen_keep=0.4 keep=0.6 the README search takes at most 5 searched networks to the top and
    # about 7 minutes, but fell short of the ShuffleNet reference in 2 of 3 headline seeds
    # (docs/search-fashion-mnist.md, 2026-12-04, eighth session): an option, not the default.
    cap: bool = False
    # ASHA's promotion: a worker takes a stopped trial that the rung's later arrivals put among its
    # best share (trained again from the start) before a new one. Decided at arrival alone, the
    # cheap networks stopped by a rung's first quota of one stayed stopped (docs/search-fashion-mnist.md).
    late: bool = True
    min_trials: int = 4  # trials a rung must have seen before it stops any

    RULES: ClassVar[dict[str, Rule]] = {"keep": fraction(), "screen_keep": fraction(optional=True),
                                        "min_trials": positive(integer=True)}

    def active(self, pruner: Any) -> bool:
        """Whether the search stops trials at the rungs, given the objective's pruner."""
        return self.enabled if self.enabled is not None else not pruner


@dataclass
class SearchConfig:
    n_trials: int = 20  # trained architectures to reach (rejected samples do not count)
    seed: int = 0  # sampler seed; with it the same architectures are sampled again
    worker: int = 0  # index of this worker when several share a study (its first worker's, with workers > 1)
    # Worker processes this search starts on its study (nas.search.workers): auto is one per GPU on a
    # GPU machine, else one per CPU core (at most 8), the cores shared out evenly; 1 trains in this process.
    workers: str = "auto"
    max_rejected: int = 2000  # stop after this many over-budget samples in a row
    max_failures: int = 10  # stop after this many failed trials in a row
    probe_samples: int = 500  # random samples that estimate the budget's feasible share
    budget_aware: bool = True  # draw depths and widths within what the budget leaves (false: plain space + rejection)
    halving: HalvingConfig = field(default_factory=HalvingConfig)
    prescreen: Optional[str] = None  # zero-cost pre-screening: naswot | zico | synflow (null: off)
    prescreen_candidates: int = 8  # architectures drawn (and scored) per one trained
    # The papers' networks scaled to the budget (nas.search.references) are the first trials and
    # always climb to the top rung, so that the front shows hand design beside the search.
    start_from_references: bool = True

    RULES: ClassVar[dict[str, Rule]] = {
        "n_trials": positive(integer=True),
        "seed": SEED,
        "worker": at_least(0),
        "max_rejected": positive(integer=True),
        "max_failures": positive(integer=True),
        "probe_samples": positive(integer=True),
        "prescreen": one_of(PRESCREEN_SCORES, optional=True),
        "prescreen_candidates": positive(integer=True),
    }


    def check(self) -> None:
        if self.workers != "auto" and not (str(self.workers).isdigit() and 1 <= int(self.workers) <= 64):
            raise FieldError("workers", f"{self.workers!r} is not allowed (allowed: auto, or an integer 1..64)")
        if worker_seed(self.seed, self.worker) > 2**32 - 1:
            top = (2**32 - 1 - self.seed) // WORKER_SEED_STRIDE
            raise FieldError("worker", f"{self.worker} is not allowed with search.seed={self.seed} "
                                       f"(allowed: 0..{top}, so that every worker's sampler seed fits 32 bits)")


@dataclass
class StudyConfig:
    name: str = MISSING  # the study's name in its storage, and its folder under runs/

    def check(self) -> None:
        if not STUDY_NAME.fullmatch(str(self.name)):
            raise FieldError(
                "name", f"{self.name!r} is not allowed (allowed: ASCII letters, digits, '_', '-', '.', '='; up to 100)"
            )


@dataclass
class StorageConfig:
    kind: str = "rdb"  # rdb (SQLite, PostgreSQL: SQLAlchemy URL) | journal
    url: Optional[str] = None  # rdb: SQLAlchemy URL; journal: redis:// URL (null: a file)
    path: Optional[str] = None  # journal: log file (null: runs/<study.name>/journal.log)
    heartbeat_s: int = 60  # RDB: a trial without a heartbeat for 2x this long is stale

    RULES: ClassVar[dict[str, Rule]] = {"kind": one_of(("rdb", "journal")), "heartbeat_s": positive(integer=True)}

    def check(self) -> None:
        if self.kind == "rdb":
            url = self.url or ""
            if url in ("", "???"):
                raise FieldError("url", "is required (e.g. storage.url=postgresql://USER:PASSWORD@HOST:5432/DB)")
            scheme = url.split("://", 1)[0] if "://" in url else ""
            if scheme not in STORAGE_SCHEMES or not url.split("://", 1)[1]:
                raise FieldError(
                    "url",
                    f"{redact(url)!r} is not a database URL (allowed: sqlite:///PATH, "
                    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, mysql://...)",
                )
        elif self.url and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise FieldError("url", f"{redact(self.url)!r} is not a Redis URL (allowed: redis://HOST:PORT/DB)")


@dataclass
class DashboardConfig:
    host: str = "127.0.0.1"  # interface optuna-dashboard listens on
    port: int = 8080

    RULES: ClassVar[dict[str, Rule]] = {"port": integer_in(1, 65535)}


@dataclass
class NasConfig:
    """Everything `nas-search`, `nas-train`, `nas-report`, `nas-export` and `nas-dashboard` read."""

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

    def check(self) -> None:
        if self.search.halving.enabled and self.objective.pruner:
            raise FieldError("search.halving.enabled",
                             "cannot be combined with objective.pruner (choose one; null turns halving off under a pruner)")
        if not self.sampler.get("_target_"):
            raise FieldError("sampler", "needs a _target_ (choose one with sampler=tpe|nsgaii|random)")


def validate(cfg: NasConfig) -> None:
    """Raise `ConfigError` naming the first invalid field, then probe the device and the folders
    the search will use. Writes nothing."""
    check_fields(cfg, "", ConfigError)
    check_device("proxy.device", cfg.proxy.device)
    check_folder("output_dir", cfg.output_dir)
    check_folder("artifact_dir", cfg.artifact_dir)
    if cfg.storage.kind == "rdb" and cfg.storage.url.startswith("sqlite:///"):
        check_folder("storage.url", Path(cfg.storage.url.removeprefix("sqlite:///")).parent)
    if cfg.storage.kind == "journal" and not cfg.storage.url:
        journal = Path(cfg.storage.path or Path(cfg.output_dir) / "journal.log")
        check_folder("storage.path", journal.parent)
        if journal.is_dir():
            raise ConfigError("storage.path", f"{journal} is a folder (allowed: a journal file, or a path that does not "
                                              "exist yet)")
