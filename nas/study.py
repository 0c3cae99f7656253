"""The search: Optuna samples architectures, the budget rejects costly ones before they are built,
the proxy trains the rest, and the Pareto-best are written out.

`run_search(cfg)` is the whole job and needs no Hydra; `nas-search` only parses and calls it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import socket
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from hydra.utils import instantiate
from optuna.trial import TrialState

from search_spaces import Arch, DataShape, Space, Usage, get_space, reference

from .complexity import Complexity, complexity
from .config import NasConfig, redact, validate
from .data import DATASETS, Dataset, Split, load_dataset
from .errors import ConfigError, SearchAborted
from .export import export_front
from .halving import Halving, record_and_decide
from .model import build_model
from .pareto import Candidate, atomic_write, candidates, hypervolume, pareto_front, plot_front, write_front_csv
from .proxy import EpochMetrics, ProxySettings, pick_device, train_proxy
from .zero_cost import zero_cost_scores

__all__ = ["Budget", "SearchResult", "fail_dead_trials", "open_study", "run_search", "this_process", "trial_counts",
           "write_outputs"]

log = logging.getLogger(__name__)

#: Reference networks marked on plots for orientation.
PLOT_REFERENCES = ("shufflenet_v1_g3_0.25x", "shufflenet_v1_g3_0.5x", "shufflenet_v1_g3_1.0x",
                   "mobilenext_0.35", "mobilenext_0.5", "mobilenext_1.0")


@dataclass(frozen=True)
class Budget:
    """Caps on MACs (millions) and optionally parameters (millions)."""

    mflops: float
    mparams: float | None = None

    def violations(self, cost: Complexity) -> dict[str, float]:
        """How far over each cap a network is; <= 0 is within it (Optuna's constraint convention)."""
        values = {"mmacs_over_budget": cost.mmacs - self.mflops}
        if self.mparams is not None:
            values["mparams_over_budget"] = cost.mparams - self.mparams
        return values

    def admits(self, cost: Complexity) -> bool:
        return all(v <= 0 for v in self.violations(cost).values())

    def usage(self, cost: Complexity) -> float:
        """The share of the budget a network uses: of its MACs cap, or of its parameter cap where
        that is the tighter one (<= 1 fits)."""
        shares = [cost.mmacs / self.mflops]
        if self.mparams is not None:
            shares.append(cost.mparams / self.mparams)
        return max(shares)


@dataclass
class SearchResult:
    study_name: str
    output_dir: Path
    front: list[Candidate]
    trained: int
    rejected: int
    failed: int
    pruned: int
    wall_s: float
    device: str
    hypervolume: float = 0.0
    proxy_note: str = ""
    exported: dict[int, str] = field(default_factory=dict)
    prescreened: int = 0  # scored untrained and not chosen (search.prescreen)

    @property
    def inside_budget(self) -> float:
        """Share of the sampled architectures that fit the budget."""
        sampled = self.trained + self.rejected + self.failed + self.prescreened
        return 1.0 - self.rejected / sampled if sampled else 1.0


# -- study set-up --------------------------------------------------------------------------------


def make_storage(cfg: NasConfig) -> optuna.storages.BaseStorage:
    """The study's storage; creates the folder of a SQLite file or journal when needed."""
    storage = cfg.storage
    if storage.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalRedisBackend, JournalStorage

        if storage.url:
            return JournalStorage(JournalRedisBackend(storage.url))
        path = Path(storage.path or Path(cfg.output_dir) / "journal.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    url = str(storage.url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from sqlalchemy.exc import IntegrityError

    for attempt in range(5):
        try:
            rdb = optuna.storages.RDBStorage(
                url,
                heartbeat_interval=storage.heartbeat_s,
                grace_period=2 * storage.heartbeat_s,
                # SQLite: several local workers queue for its write lock rather than fail at once.
                engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True},
            )
            break
        except IntegrityError:
            # Workers started together on an empty database race to create Optuna's tables;
            # the losers find them created a moment later.
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
        except ImportError as err:
            raise ConfigError(
                "storage.url", f"cannot open {redact(url)}: its database driver is not installed "
                f"({err.__cause__ or err}); for PostgreSQL: pip install 'budget-nas[postgres]'"
            ) from None
        except Exception as err:  # SQLAlchemy's errors carry the URL, password included
            reason = redact(str(err).splitlines()[0] if str(err) else type(err).__name__)
            raise ConfigError("storage.url", f"cannot open {redact(url)}: {reason}") from None
    if url.startswith("sqlite"):
        _sqlite_wal(rdb)
    return rdb


def _sqlite_wal(rdb: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging without an fsync per commit: every suggest and attribute is a commit,
    and this halves their cost (measured: 63 -> 31 ms per 14-write trial). Still safe against a
    killed process; only a power cut can lose the last commits."""
    from sqlalchemy import event

    @event.listens_for(rdb.engine, "connect")
    def pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    rdb.engine.dispose()  # reconnect so that the pool's connections get the pragmas


def _study_identity(cfg: NasConfig, shape: DataShape) -> dict[str, Any]:
    """What must not change when a study is resumed."""
    return {
        "space": cfg.space.name,
        "data": cfg.data.name,
        "input": f"{shape.in_channels}x{shape.resolution}x{shape.resolution}",
        "num_classes": shape.num_classes,
        "objective": cfg.objective.name,
        "budget_mflops": float(cfg.budget.mflops),
        "budget_mparams": None if cfg.budget.mparams is None else float(cfg.budget.mparams),
    }


def open_study(cfg: NasConfig, shape: DataShape, storage: optuna.storages.BaseStorage,
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner | None) -> optuna.Study:
    """Create the study, or load it and check that it is the same search."""
    pareto = cfg.objective.name == "pareto"
    study = optuna.create_study(
        storage=storage,
        study_name=cfg.study.name,
        sampler=sampler,
        pruner=pruner,
        directions=["maximize", "minimize"] if pareto else ["maximize"],
        load_if_exists=True,
    )
    identity = _study_identity(cfg, shape)
    stored = {k: study.user_attrs.get(k) for k in identity}
    if not study.user_attrs:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        study.set_metric_names(["val_acc", "MMACs"] if pareto else ["val_acc"])
    elif stored != identity:
        changed = [k for k in identity if stored[k] != identity[k]]
        raise ConfigError(
            "study.name",
            f"study {cfg.study.name!r} already holds a different search ({', '.join(f'{k}={stored[k]}' for k in changed)}); "
            "choose another study.name to start a new one",
        )
    _check_same_proxy(study, cfg)
    return study


#: Study attribute: the settings that score a trial (proxy and data preparation), by config field.
PROXY_SETTINGS_KEY = "proxy_settings"
#: Proxy fields that change how fast a trial is scored or what else is recorded, not its score.
_PROXY_FIELDS_NOT_SCORING = ("device", "eval_batch_size", "zero_cost")
_DATA_FIELDS_SCORING = ("val_fraction", "split_seed", "flip", "pad_crop")


def proxy_identity(cfg: NasConfig) -> dict[str, Any]:
    """The settings every trial of a study is scored with, as `{"proxy.epochs": 1, ...}`."""
    proxy = {f"proxy.{k}": v for k, v in dataclasses.asdict(cfg.proxy).items() if k not in _PROXY_FIELDS_NOT_SCORING}
    data = {f"data.{k}": getattr(cfg.data, k) for k in _DATA_FIELDS_SCORING}
    return json.loads(json.dumps({**proxy, **data}))  # as the storage gives it back


def _check_same_proxy(study: optuna.Study, cfg: NasConfig) -> None:
    """Record the scoring settings on a new study; refuse to resume one with others, whose trials
    could not be compared with those it holds. A study from before they were recorded adopts them."""
    current = proxy_identity(cfg)
    stored = study.user_attrs.get(PROXY_SETTINGS_KEY)
    if stored is None:
        study.set_user_attr(PROXY_SETTINGS_KEY, current)
        return
    # Only fields both know: one added to the config later has no recorded value to differ from.
    for key in (k for k in current if k in stored and stored[k] != current[k]):
        raise ConfigError(
            key,
            f"{current[key]!r} differs from the {stored[key]!r} that study {cfg.study.name!r} was searched with: its "
            f"architectures would be scored by two proxies (allowed: {stored[key]!r} to resume, or another "
            "study.name for a new search)",
        )


class RandomSuggests:
    """A throwaway trial drawing uniformly from a space's choices (for probing, not searching).

    With `smallest=True` every number takes its lower bound (the spaces grow with width and
    depth) and only the categorical choices vary: a cheap way to find the space's small end.
    """

    def __init__(self, seed: int, *, smallest: bool = False) -> None:
        self.rng = np.random.default_rng(seed)
        self.smallest = smallest

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        if self.smallest:
            return low
        return int(self.rng.integers(0, (high - low) // step + 1)) * step + low

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        if self.smallest:
            return low
        if step is None:
            return float(self.rng.uniform(low, high))
        return low + step * int(self.rng.integers(0, round((high - low) / step) + 1))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return choices[int(self.rng.integers(0, len(choices)))]


def budget_usage(budget: Budget) -> Usage:
    """What a budget-aware space draws its sizes with: the share of `budget` an architecture uses."""
    return lambda arch: budget.usage(complexity(arch))


def probe_budget(space: Space, shape: DataShape, budget: Budget, samples: int, seed: int,
                 budget_aware: bool = True) -> dict[str, float]:
    """Price random samples of the space (drawn as the search draws them); refuse a budget that
    none of them fits."""
    rng, small = RandomSuggests(seed), RandomSuggests(seed, smallest=True)
    usage = budget_usage(budget) if budget_aware else None
    costs = [complexity(space(rng, shape, usage)) for _ in range(samples)]
    small_end = [complexity(space(small, shape)) for _ in range(samples)]
    feasible = sum(budget.admits(c) for c in costs)
    mmacs = sorted(c.mmacs for c in costs)
    smallest = min(c.mmacs for c in small_end + costs)
    summary = {"feasible": feasible / samples, "smallest": smallest, "median": mmacs[len(mmacs) // 2]}
    if not any(budget.admits(c) for c in small_end + costs):
        smallest_params = min(c.mparams for c in small_end + costs)
        field_name = "budget.mflops" if budget.mflops < smallest else "budget.mparams"
        raise ConfigError(
            field_name,
            f"no architecture fits: {2 * samples} samples of this space at "
            f"{shape.resolution}x{shape.resolution} need at least {smallest:.2f} MMACs and "
            f"{smallest_params:.3f} M params (budget: {budget.mflops:g} MMACs"
            f"{'' if budget.mparams is None else f', {budget.mparams:g} M params'}); raise the budget",
        )
    return summary


def proxy_settings(cfg: NasConfig, device: torch.device, seed: int) -> tuple[ProxySettings, int | None, str]:
    """The proxy's settings for this device, the validation cap, and a note when reduced."""
    p = cfg.proxy
    max_train, max_val, note = None, p.max_val_images, ""
    batch_size, lr = p.batch_size, p.lr
    if device.type == "cpu" and p.on_cpu is not None:
        max_train = p.on_cpu.max_train_images
        max_val = min(max_val or p.on_cpu.max_val_images, p.on_cpu.max_val_images)
        batch_size = p.on_cpu.batch_size or batch_size
        lr = p.on_cpu.lr or lr
        note = (
            f"no GPU found: reduced proxy on the CPU (at most {max_train} training and {max_val} "
            f"validation images, {p.epochs} epoch(s), batch {batch_size}, lr {lr:g}); "
            "set proxy.on_cpu=null for the full proxy"
        )
    settings = ProxySettings(
        epochs=p.epochs, batch_size=batch_size, lr=lr, momentum=p.momentum, weight_decay=p.weight_decay,
        label_smoothing=p.label_smoothing, schedule=p.schedule, warmup=p.warmup, train_fraction=p.train_fraction,
        max_train_images=max_train,
        eval_batch_size=p.eval_batch_size, flip=cfg.data.flip, pad_crop=cfg.data.pad_crop, seed=seed,
    )
    return settings, max_val, note


# -- trial accounting -----------------------------------------------------------------------------


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: trained (complete or pruned after admission), rejected, failed, pruned,
    running, prescreened (scored untrained and not chosen)."""
    counts = {"trained": 0, "rejected": 0, "failed": 0, "pruned": 0, "running": 0, "prescreened": 0}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get("status")
        if status == "rejected":
            counts["rejected"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 0 if status == "withdrawn" else 1
        elif status == "admitted" and t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            counts["trained"] += 1
            counts["pruned"] += t.state == TrialState.PRUNED
        elif status == "admitted" and t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif status == "prescreened":
            counts["prescreened"] += 1
    return counts


class Withdrawn(Exception):
    """Other workers already train the study's last architectures; this trial steps back."""


def _admit(study: optuna.Study, trial: optuna.Trial, n_trials: int, wait_s: float = 30.0) -> None:
    """Claim one of the study's `n_trials` training slots or raise `Withdrawn`.

    Slots go by trial number: a trial trains when fewer than `n_trials` lower-numbered trials
    were admitted (and have not failed). It first waits until every lower-numbered trial has
    decided, so that workers sharing a study never train more than `n_trials` together.
    """
    trial.set_user_attr("status", "admitted")
    deadline = time.monotonic() + wait_s
    while True:
        ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        undecided = [t for t in ahead if t.state == TrialState.RUNNING and "status" not in t.user_attrs]
        if not undecided or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # An undecided trial after the wait counts as admitted: better to withdraw than to overshoot.
    taken = sum(
        1 for t in ahead
        if (t.user_attrs.get("status") == "admitted" and t.state != TrialState.FAIL)
        or (t.state == TrialState.RUNNING and "status" not in t.user_attrs)
    )
    if taken >= n_trials:
        trial.set_user_attr("status", "withdrawn")
        raise Withdrawn(f"{taken} earlier trials already hold the study's {n_trials} training slots")


#: Trial attribute: the process running the trial, {"host", "pidns", "pid", "start"}, so that a
#: resumed run can tell its own dead trials from another worker's live ones.
PROCESS_KEY = "process"


def _start_ticks(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot; Linux), which tells a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of proc(5), counted after the command name
    except (OSError, ValueError, IndexError):
        return None


def _pid_namespace() -> str | None:
    # Containers sharing a host name may each number their processes from 1: their pids are
    # comparable only within one pid namespace (Linux).
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pidns": _pid_namespace(), "pid": os.getpid(),
            "start": _start_ticks(os.getpid())}


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the process recorded in `owner` (on this host) still runs."""
    pid = owner["pid"]
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    start = owner.get("start")
    return start is None or _start_ticks(pid) in (None, start)


def fail_dead_trials(study: optuna.Study, grace_s: float) -> list[int]:
    """Mark failed, with the reason, the running trials whose process is gone: this host's trials
    whose process has ended, and any trial with no heartbeat for `grace_s` whose process is not
    alive on this host. Returns their numbers; other workers' live trials are left alone."""
    storage = study._storage
    stale: set[int] = set()
    if isinstance(storage, optuna.storages._heartbeat.BaseHeartbeat) and storage.get_heartbeat_interval():
        # NOTE: the query optuna.storages.fail_stale_trials makes; called here to fail with a reason.
        stale = set(storage._get_stale_trial_ids(study._study_id))
    host, namespace = socket.gethostname(), _pid_namespace()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(PROCESS_KEY) or {}
        local = (owner.get("host") == host and owner.get("pidns") == namespace
                 and isinstance(owner.get("pid"), int))
        if local and not _alive(owner):
            reason = f"killed: its process {owner['pid']} on {host} ended without finishing it"
        elif t._trial_id in stale and not local:
            where = f" on {owner['host']}" if owner.get("host") else ""
            reason = f"lost: no heartbeat for over {grace_s:g} s from its worker{where}"
        else:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "failure", reason)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # its worker finished it, or another worker failed it first
        log.warning("trial %d marked failed: %s", t.number, reason)
        failed.append(t.number)
    return failed


# -- the search -----------------------------------------------------------------------------------


def sample_and_price(trial: optuna.Trial, space: Space, shape: DataShape, budget: Budget,
                     worker: int = 0, budget_aware: bool = True) -> tuple[Arch, Complexity]:
    """Sample an architecture (its sizes within the budget when `budget_aware`), count it, and
    record the count (and, when over budget, the rejection) on the trial. Nothing is built."""
    arch: Arch = space(trial, shape, budget_usage(budget) if budget_aware else None)
    cost = complexity(arch)
    for key, value in (("macs", cost.macs), ("params", cost.params), ("genotype", arch.genotype()),
                       ("worker", worker)):
        trial.set_user_attr(key, value)
    # The sampler learns the feasible region from these (Optuna 5 constraints; <= 0 is feasible).
    for key, value in budget.violations(cost).items():
        trial.set_constraint(key, value)
    if not budget.admits(cost):
        trial.set_user_attr("status", "rejected")
        trial.set_user_attr("rejected", True)
    return arch, cost


def rejected_values(cost: Complexity, pareto: bool) -> float | tuple[float, float]:
    """Values told for a rejected sample. It was never trained: accuracy 0 is a placeholder that
    its violated constraint keeps out of every front and every sampler's model."""
    return (0.0, cost.mmacs) if pareto else 0.0


class _Objective:
    """One trial: sample, price, reject or train. Called by `study.optimize`."""

    def __init__(self, cfg: NasConfig, study: optuna.Study, space: Space, data: Dataset, val: Split,
                 settings: ProxySettings, device: torch.device) -> None:
        self.cfg, self.study, self.space, self.data, self.val = cfg, study, space, data, val
        self.artifacts = artifact_store(cfg.artifact_dir)
        self.settings, self.device = settings, device
        self.budget = Budget(cfg.budget.mflops, cfg.budget.mparams)
        self.pareto = cfg.objective.name == "pareto"
        self.process = this_process()
        h = cfg.search.halving
        self.halving = Halving(tuple(h.rungs), h.keep, h.min_trials) if h.active(cfg.objective.pruner) else None
        self.last: dict[str, Any] = {}

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        trial.set_user_attr(PROCESS_KEY, self.process)
        arch, cost = sample_and_price(trial, self.space, self.data.shape, self.budget, self.cfg.search.worker,
                                      self.cfg.search.budget_aware)
        self.last = {"status": "rejected", "mmacs": cost.mmacs, "genotype": arch.genotype()}
        if not self.budget.admits(cost):
            return rejected_values(cost, self.pareto)

        _admit(self.study, trial, self.cfg.search.n_trials)
        self.last = {"status": "pruned", "mmacs": cost.mmacs, "genotype": arch.genotype()}  # until it completes
        trial.set_user_attr("arch_yaml", arch.to_yaml())
        upload_text(self.artifacts, trial, f"trial_{trial.number:04d}.yaml", arch.to_yaml(), "application/yaml")
        seed = self.cfg.search.seed * 1_000_003 + trial.number
        torch.manual_seed(seed)
        model = None
        try:
            model = build_model(arch, max_mparams=self.cfg.limits.max_mparams)
            if self.cfg.proxy.zero_cost:
                record_zero_cost(trial, model, self.data, self.device, seed)
            result = train_proxy(
                model, self.data.train, self.val, dataclasses.replace(self.settings, seed=seed),
                mean=self.data.mean, std=self.data.std, device=self.device, on_epoch=self._reporter(trial),
                checkpoints=self.halving.rungs if self.halving else (), on_checkpoint=self._rung(trial),
            )
        except Exception as err:
            trial.set_user_attr("failure", f"{type(err).__name__}: {err}"[:500])
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("failure", "interrupted")
            raise
        finally:
            del model
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        for key, value in (("val_acc", result.val_acc), ("train_s", round(result.train_s, 3)),
                           ("setup_s", round(result.setup_s, 3)), ("img_s", round(result.img_s, 1)),
                           ("device", result.device), ("epochs", result.epochs),
                           ("loss_sum", round(result.loss_sum, 4))):
            trial.set_user_attr(key, value)
        self.last = {"status": "trained", "val_acc": result.val_acc, "mmacs": cost.mmacs,
                     "genotype": arch.genotype(), "train_s": result.train_s}
        return (result.val_acc, cost.mmacs) if self.pareto else result.val_acc

    def queue_best_of_prescreen(self) -> None:
        """Zero-cost pre-screening: let the sampler propose `search.prescreen_candidates`
        architectures, score each untrained, and queue the best-scored one's parameters for the
        next trial. The others are recorded as pruned (status `prescreened`, with their score), so
        the sampler learns from them too; over-budget ones as rejected."""
        name, m = self.cfg.search.prescreen, self.cfg.search.prescreen_candidates
        scored: list[tuple[float, optuna.Trial]] = []
        for _ in range(m):
            with warnings.catch_warnings():  # ask() outside optimize(): told within seconds, no heartbeat needed
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = self.study.ask()
            trial.set_user_attr(PROCESS_KEY, self.process)
            arch, cost = sample_and_price(trial, self.space, self.data.shape, self.budget, self.cfg.search.worker,
                                          self.cfg.search.budget_aware)
            if not self.budget.admits(cost):
                self.study.tell(trial, rejected_values(cost, self.pareto))
                continue
            torch.manual_seed(self.cfg.search.seed * 1_000_003 + trial.number)
            try:
                model = build_model(arch, max_mparams=self.cfg.limits.max_mparams)
                score = zero_cost_scores(model, self.data.train, mean=self.data.mean, std=self.data.std,
                                         seed=trial.number, device=self.device, scores=(name,))[name]
            except (ArithmeticError, RuntimeError, ValueError) as err:
                log.warning("prescreen: trial %d not scored (%s: %s)", trial.number, type(err).__name__, err)
                score = -math.inf
            trial.set_user_attr("status", "prescreened")
            trial.set_user_attr(f"zc_{name}", round(score, 4) if math.isfinite(score) else None)
            scored.append((score, trial))
        if not scored:
            return
        best = max(scored, key=lambda st: st[0])[1]
        for _, trial in scored:
            self.study.tell(trial, state=TrialState.PRUNED)
        self.study.enqueue_trial(best.params, user_attrs={"prescreened_from": [t.number for _, t in scored]})

    def _reporter(self, trial: optuna.Trial):
        def report(metrics: EpochMetrics) -> None:
            trial.set_user_attr("val_acc_curve", [*trial.user_attrs.get("val_acc_curve", []), metrics.val_acc])
            if self.pareto:
                return
            trial.report(metrics.val_acc, metrics.epoch)
            if trial.should_prune():
                trial.set_user_attr("val_acc", metrics.val_acc)
                raise optuna.TrialPruned(f"pruned after epoch {metrics.epoch} at val_acc {metrics.val_acc:.4f}")

        return report

    def _rung(self, trial: optuna.Trial):
        def decide(fraction: float, val_acc: float, train_s: float) -> None:
            assert self.halving is not None
            if not record_and_decide(self.study, trial, fraction, val_acc, self.halving, pareto=self.pareto):
                trial.set_user_attr("val_acc", val_acc)
                trial.set_user_attr("pruned_at", fraction)
                trial.set_user_attr("train_s", round(train_s, 3))
                raise optuna.TrialPruned(
                    f"dominated at rung {fraction:g} (val_acc {val_acc:.4f}; search.halving.keep={self.halving.keep:g})"
                )

        return decide


def record_zero_cost(trial: optuna.Trial, model: torch.nn.Module, data: Dataset, device: torch.device,
                     seed: int) -> None:
    """The untrained network's zero-cost scores as user attributes `zc_synflow`, `zc_naswot`,
    `zc_zico` (and `zc_s`, their seconds), for the dashboard and for ranking studies. A score
    that cannot be computed is left out with a warning; it never fails the trial."""
    try:
        scores = zero_cost_scores(model, data.train, mean=data.mean, std=data.std, seed=seed, device=device)
    except (ArithmeticError, RuntimeError, ValueError) as err:
        log.warning("trial %d: zero-cost scores skipped (%s: %s)", trial.number, type(err).__name__, err)
        return
    for name, value in scores.items():
        trial.set_user_attr(name if name.startswith("zc_") else f"zc_{name}", round(value, 4))


def artifact_store(folder: str) -> optuna.artifacts.FileSystemArtifactStore:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(folder)


def upload_text(store: Any, target: optuna.Trial | optuna.Study, name: str, data: str | bytes, mimetype: str) -> None:
    """Put `data` into the artifact store as `name`, attached to a trial or the study."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=target,
                                         mimetype=mimetype)


def _load(cfg: NasConfig) -> Dataset:
    d = cfg.data
    return load_dataset(d.name, d.root, val_fraction=d.val_fraction, split_seed=d.split_seed,
                        resolution=d.resolution, channels=d.channels)


def run_search(cfg: NasConfig, *, dataset: Dataset | None = None, progress: bool = True) -> SearchResult:
    """Search until the study holds `search.n_trials` trained architectures, then write outputs.

    Everything that can be wrong with the configuration or data is checked before the first
    file is written.
    """
    started = time.perf_counter()
    validate(cfg, DATASETS)
    data = dataset or _load(cfg)
    space = get_space(cfg.space.name)
    budget = Budget(cfg.budget.mflops, cfg.budget.mparams)
    probe = probe_budget(space, data.shape, budget, cfg.search.probe_samples, cfg.search.seed,
                         cfg.search.budget_aware)
    device = pick_device(cfg.proxy.device, cfg.search.worker)
    settings, max_val, note = proxy_settings(cfg, device, cfg.search.seed)
    sampler = instantiate(cfg.sampler)
    pruner = instantiate(cfg.objective.pruner) if cfg.objective.pruner else optuna.pruners.NopPruner()
    val = data.val.subset(max_val, cfg.data.split_seed) if max_val else data.val

    storage = make_storage(cfg)  # the first write
    study = open_study(cfg, data.shape, storage, sampler, pruner)
    if "data_mean" not in study.user_attrs:  # what exported models need to normalise their inputs
        study.set_user_attr("data_mean", [round(v, 6) for v in data.mean])
        study.set_user_attr("data_std", [round(v, 6) for v in data.std])
    _record_run(cfg)
    log.info(
        "study %s: space=%s data=%s (%s), budget %g MMACs%s; %.0f%% of %s samples fit "
        "(smallest %.2f, median %.1f MMACs)", cfg.study.name, cfg.space.name, cfg.data.name,
        f"{data.shape.in_channels}x{data.shape.resolution}x{data.shape.resolution}", budget.mflops,
        "" if budget.mparams is None else f", {budget.mparams:g} M params", 100 * probe["feasible"],
        "budget-aware" if cfg.search.budget_aware else "random", probe["smallest"], probe["median"],
    )
    if note:
        log.warning(note)
    objective = _Objective(cfg, study, space, data, val, settings, device)
    try:
        _optimize(cfg, study, objective, progress)
    except KeyboardInterrupt:
        # Optuna has marked the current trial failed; what was trained so far is written out.
        write_outputs(study, Path(cfg.output_dir), budget_mflops=cfg.budget.mflops, shape=data.shape,
                      artifact_dir=cfg.artifact_dir)
        log.warning("interrupted: %d of %d architectures trained; run the same command to resume",
                    trial_counts(study)["trained"], cfg.search.n_trials)
        raise
    front, exported = write_outputs(study, Path(cfg.output_dir), budget_mflops=cfg.budget.mflops,
                                    shape=data.shape, artifact_dir=cfg.artifact_dir)
    counts = trial_counts(study)
    return SearchResult(
        study_name=cfg.study.name, output_dir=Path(cfg.output_dir), front=front, exported=exported,
        trained=counts["trained"], rejected=counts["rejected"], failed=counts["failed"], pruned=counts["pruned"],
        prescreened=counts["prescreened"],
        wall_s=time.perf_counter() - started, device=str(device), proxy_note=note,
        hypervolume=hypervolume(front, budget.mflops) if front else 0.0,
    )


def _record_run(cfg: NasConfig) -> None:
    """Keep the resolved config (password redacted) and a log file beside the study's outputs."""
    from omegaconf import OmegaConf

    out = Path(cfg.output_dir)
    resolved = OmegaConf.structured(cfg)
    if resolved.storage.url:
        resolved.storage.url = redact(resolved.storage.url)
    atomic_write(out / f"config-worker{cfg.search.worker}.yaml", OmegaConf.to_yaml(resolved))
    logger = logging.getLogger("nas")
    for old in [h for h in logger.handlers if getattr(h, "nas_run_log", False)]:
        logger.removeHandler(old)  # an earlier search in this process (multirun, tests)
        old.close()
    handler = logging.FileHandler(out / f"search-worker{cfg.search.worker}.log")
    handler.nas_run_log = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _optimize(cfg: NasConfig, study: optuna.Study, objective: _Objective, progress: bool) -> None:
    """Run trials one by one until the study holds `n_trials` trained architectures."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    n_trials = cfg.search.n_trials
    grace_s = 2 * cfg.storage.heartbeat_s
    fail_dead_trials(study, grace_s)  # a killed run's own trials: failed now, not once their heartbeat lapses
    counts = trial_counts(study)
    rejected_in_row = failures_in_row = 0
    bar = tqdm(total=n_trials, initial=min(counts["trained"], n_trials), unit="arch", disable=not progress,
               desc=cfg.study.name, dynamic_ncols=True)
    best = max((c.val_acc for c in candidates(study.get_trials(deepcopy=False))), default=0.0)
    waiting_since = None
    with bar, logging_redirect_tqdm():
        while counts["trained"] < n_trials:
            if counts["trained"] + counts["running"] >= n_trials:
                # Other workers hold the last slots. A killed worker's trial is failed once its
                # process is seen gone (this host) or its heartbeat lapses (RDB storages), which
                # frees its slot for us.
                if not fail_dead_trials(study, grace_s):
                    if waiting_since is None or time.monotonic() - waiting_since >= 60:
                        waiting_since = time.monotonic()
                        log.info("waiting for %d running trial(s) of other workers", counts["running"])
                    time.sleep(1.0)
                counts = trial_counts(study)
                continue
            waiting_since = None
            try:
                if cfg.search.prescreen:
                    objective.queue_best_of_prescreen()
                study.optimize(objective, n_trials=1, gc_after_trial=False)
            except Withdrawn as err:
                log.info("trial withdrawn: %s", err)
            except Exception as err:  # recorded as failed, with the reason, by the objective
                failures_in_row += 1
                log.warning("trial failed (%d in a row): %s: %s", failures_in_row, type(err).__name__, err)
                if failures_in_row >= cfg.search.max_failures:
                    raise SearchAborted(
                        f"{failures_in_row} trials failed in a row (search.max_failures={cfg.search.max_failures}); "
                        f"the last: {type(err).__name__}: {err}. The study is kept; fix the cause and re-run to resume."
                    ) from err
            else:
                last = objective.last
                if last["status"] == "rejected":
                    rejected_in_row += 1
                    if rejected_in_row >= cfg.search.max_rejected:
                        raise ConfigError(
                            "budget.mflops",
                            f"the sampler proposed {rejected_in_row} over-budget architectures in a row "
                            "(search.max_rejected); raise the budget or the limit",
                        )
                elif last["status"] == "pruned":
                    rejected_in_row = failures_in_row = 0
                    log.info("stopped early %s: %.2f MMACs", last["genotype"], last["mmacs"])
                else:
                    rejected_in_row = failures_in_row = 0
                    best = max(best, last["val_acc"])
                    log.info("trained %s: val_acc %.4f, %.2f MMACs, %.1fs", last["genotype"], last["val_acc"],
                             last["mmacs"], last["train_s"])
            counts = trial_counts(study)
            bar.n = min(counts["trained"], n_trials)
            bar.set_postfix(best=f"{best:.4f}", rejected=counts["rejected"], failed=counts["failed"], refresh=False)
            bar.refresh()


def reference_points(shape: DataShape) -> list[tuple[str, float]]:
    """(name, MMACs) of the plotted reference networks at the study's input size."""
    return [(name, complexity(reference(name, shape.num_classes, shape.in_channels, shape.resolution)).mmacs)
            for name in PLOT_REFERENCES]


def write_outputs(study: optuna.Study, output_dir: Path, *, budget_mflops: float, shape: DataShape,
                  artifact_dir: str | None = None) -> tuple[list[Candidate], dict[int, str]]:
    """pareto.csv, pareto.png and export/ for the study's current trials (atomically); the CSV and
    plot also go to the artifact store when they changed since the last upload."""
    front = pareto_front(candidates(study.get_trials(deepcopy=False)))
    exported = export_front(front, output_dir / "export")
    write_front_csv(front, exported, output_dir / "pareto.csv")
    plot_front(study, front, output_dir / "pareto.png", budget_mmacs=budget_mflops, references=reference_points(shape))
    if front:
        study.set_user_attr("hypervolume", hypervolume(front, budget_mflops))
    if artifact_dir is not None:
        # What the files show: the front and the number of trials (a PNG's bytes vary run to run).
        csv_bytes = (output_dir / "pareto.csv").read_bytes()
        digest = hashlib.sha256(csv_bytes + str(len(study.trials)).encode()).hexdigest()
        if study.user_attrs.get("artifacts_digest") != digest:
            store = artifact_store(artifact_dir)
            upload_text(store, study, "pareto.csv", csv_bytes, "text/csv")
            upload_text(store, study, "pareto.png", (output_dir / "pareto.png").read_bytes(), "image/png")
            study.set_user_attr("artifacts_digest", digest)
    return front, exported
