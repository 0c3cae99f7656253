"""One trial's lifecycle, shared by the search and the sweeper: propose an architecture and
price it, reject it or claim a training slot, and count the study's trials by outcome; and the
detection of trials whose process died."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search_spaces import Arch, DataShape, Space

from .attrs import Status, TrialAttr
from .budget import Budget, budget_usage
from .complexity import Complexity, complexity
from .errors import ConfigError
from .storage import upload_text

__all__ = ["RejectionLimit", "Withdrawn", "admit", "fail_dead_trials", "record_arch", "rejected_values",
           "sample_and_price", "this_process", "trial_counts"]

log = logging.getLogger(__name__)


def sample_and_price(trial: optuna.Trial, space: Space, shape: DataShape, budget: Budget,
                     worker: int = 0, budget_aware: bool = True) -> tuple[Arch, Complexity]:
    """Sample an architecture (its sizes within the budget when `budget_aware`), count it, and
    record the count (and, when over budget, the rejection) on the trial. Nothing is built."""
    arch: Arch = space(trial, shape, budget_usage(budget) if budget_aware else None)
    cost = complexity(arch)
    for key, value in ((TrialAttr.MACS, cost.macs), (TrialAttr.PARAMS, cost.params),
                       (TrialAttr.GENOTYPE, arch.genotype()), (TrialAttr.WORKER, worker)):
        trial.set_user_attr(key, value)
    # The sampler learns the feasible region from these (Optuna 5 constraints; <= 0 is feasible).
    for key, value in budget.violations(cost).items():
        trial.set_constraint(key, value)
    if not budget.admits(cost):
        trial.set_user_attr(TrialAttr.STATUS, Status.REJECTED)
        trial.set_user_attr(TrialAttr.REJECTED, True)
    return arch, cost


def rejected_values(cost: Complexity, directions: Sequence[str], pareto: bool) -> list[float]:
    """Values told for a sample over the budget, in the search and the sweeper alike. It was never
    trained: each objective gets its worst value (-inf maximized, +inf minimized), and in the
    Pareto mode the MMACs it would cost; its violated constraint keeps it out of every front and
    out of the samplers' model of good architectures (TPE and NSGA-II rank infeasible trials by
    their violation alone)."""
    worst = [-math.inf if d == "maximize" else math.inf for d in directions]
    return [*worst, cost.mmacs] if pareto else worst


class RejectionLimit:
    """Stops a search whose sampler keeps proposing over-budget architectures: `count(rejected)`
    after each sample raises a ConfigError naming `field` once `limit` come in a row."""

    def __init__(self, limit: int, field: str, budget_field: str) -> None:
        self.limit, self.field, self.budget_field = limit, field, budget_field
        self.in_row = 0

    def count(self, rejected: bool) -> None:
        self.in_row = self.in_row + 1 if rejected else 0
        if self.in_row >= self.limit:
            raise ConfigError(
                self.budget_field,
                f"the sampler proposed {self.in_row} over-budget architectures in a row ({self.field}={self.limit}); "
                "raise the budget or the limit",
            )


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by outcome: trained (complete or pruned after admission), rejected, failed, pruned,
    running, prescreened (scored untrained and not chosen)."""
    counts = {"trained": 0, "rejected": 0, "failed": 0, "pruned": 0, "running": 0, "prescreened": 0}
    for t in study.get_trials(deepcopy=False):
        status = t.user_attrs.get(TrialAttr.STATUS)
        if status == Status.REJECTED:
            counts["rejected"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 0 if status == Status.WITHDRAWN else 1
        elif status == Status.ADMITTED and t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            counts["trained"] += 1
            counts["pruned"] += t.state == TrialState.PRUNED
        elif status == Status.ADMITTED and t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif status == Status.PRESCREENED:
            counts["prescreened"] += 1
    return counts


class Withdrawn(Exception):
    """Other workers already train the study's last architectures; this trial steps back."""


def admit(study: optuna.Study, trial: optuna.Trial, n_trials: int, wait_s: float = 30.0) -> None:
    """Claim one of the study's `n_trials` training slots or raise `Withdrawn`.

    Slots go by trial number: a trial trains when fewer than `n_trials` lower-numbered trials
    were admitted (and have not failed). It first waits until every lower-numbered trial has
    decided, so that workers sharing a study never train more than `n_trials` together.
    """
    trial.set_user_attr(TrialAttr.STATUS, Status.ADMITTED)
    deadline = time.monotonic() + wait_s
    while True:
        ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number]
        undecided = [t for t in ahead if t.state == TrialState.RUNNING and TrialAttr.STATUS not in t.user_attrs]
        if not undecided or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # An undecided trial after the wait counts as admitted: better to withdraw than to overshoot.
    taken = sum(
        1 for t in ahead
        if (t.user_attrs.get(TrialAttr.STATUS) == Status.ADMITTED and t.state != TrialState.FAIL)
        or (t.state == TrialState.RUNNING and TrialAttr.STATUS not in t.user_attrs)
    )
    if taken >= n_trials:
        trial.set_user_attr(TrialAttr.STATUS, Status.WITHDRAWN)
        raise Withdrawn(f"{taken} earlier trials already hold the study's {n_trials} training slots")


def record_arch(trial: optuna.Trial, arch: Arch, store: Any) -> None:
    """An admitted trial's spec: as a user attribute (what the outputs rebuild it from) and as an
    artifact (`trial_NNNN.yaml`, downloadable from the dashboard)."""
    text = arch.to_yaml()
    trial.set_user_attr(TrialAttr.ARCH_YAML, text)
    upload_text(store, trial, f"trial_{trial.number:04d}.yaml", text, "application/yaml")


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
        owner = t.user_attrs.get(TrialAttr.PROCESS) or {}
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
            storage.set_trial_user_attr(t._trial_id, TrialAttr.FAILURE, reason)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # its worker finished it, or another worker failed it first
        log.warning("trial %d marked failed: %s", t.number, reason)
        failed.append(t.number)
    return failed
