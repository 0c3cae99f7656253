"""Trials whose process died: the process that runs a trial is recorded on it, and a running trial
whose process is gone (on this host) or whose heartbeat lapsed (elsewhere) is failed with the
reason, so that its training slot is trained again."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..attrs import TrialAttr

__all__ = ["fail_dead_trials", "live_workers", "this_process"]

log = logging.getLogger(__name__)


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


def _deaths(study: optuna.Study, grace_s: float) -> list[tuple[FrozenTrial, str | None]]:
    """Each running trial with the reason its process is dead, or None while it lives: this host's
    trials whose process has ended, and any trial with no heartbeat for `grace_s` whose process
    is not alive on this host."""
    storage = study._storage
    stale: set[int] = set()
    if isinstance(storage, optuna.storages._heartbeat.BaseHeartbeat) and storage.get_heartbeat_interval():
        # NOTE: the query optuna.storages.fail_stale_trials makes; called here to fail with a reason.
        stale = set(storage._get_stale_trial_ids(study._study_id))
    host, namespace = socket.gethostname(), _pid_namespace()
    found = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.user_attrs.get(TrialAttr.PROCESS) or {}
        local = (owner.get("host") == host and owner.get("pidns") == namespace
                 and isinstance(owner.get("pid"), int))
        reason = None
        if local and not _alive(owner):
            reason = f"killed: its process {owner['pid']} on {host} ended without finishing it"
        elif t._trial_id in stale and not local:
            where = f" on {owner['host']}" if owner.get("host") else ""
            reason = f"lost: no heartbeat for over {grace_s:g} s from its worker{where}"
        found.append((t, reason))
    return found


def fail_dead_trials(study: optuna.Study, grace_s: float) -> list[int]:
    """Mark failed, with the reason, the running trials whose process is gone (`_deaths`).
    Returns their numbers; other workers' live trials are left alone."""
    storage = study._storage
    failed = []
    for t, reason in _deaths(study, grace_s):
        if reason is None:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, TrialAttr.FAILURE, reason)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # its worker finished it, or another worker failed it first
        log.warning("trial %d marked failed: %s", t.number, reason)
        failed.append(t.number)
    return failed


def live_workers(study: optuna.Study, grace_s: float) -> dict[int, dict[str, Any]]:
    """Worker index -> process of each live process now running one of the study's trials."""
    return {t.user_attrs[TrialAttr.WORKER]: t.user_attrs.get(TrialAttr.PROCESS) or {}
            for t, reason in _deaths(study, grace_s) if reason is None and TrialAttr.WORKER in t.user_attrs}
