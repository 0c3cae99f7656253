"""Several worker processes on one study, started by the search itself (`search.workers`).

One small network does not fill a machine: on the CPU, two processes of one thread each train
1.3-1.9x the images per second of one process of two threads (bench/NOTES.md). So the search
starts its workers on the study (one per CPU core by default, or one per GPU), each a process
with its own worker index (hence its own sampler seed), thread count and log, sharing the ladder
through the storage. The parent shows one progress bar, restarts a worker that died (its trial is
failed and its slot trained again, as for any dead worker), and stops them all on Ctrl-C. A worker
whose parent is gone (kill -9) interrupts itself, so that nothing trains unwatched.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
import torch

from ..attrs import TrialAttr
from ..data import Dataset
from ..errors import SearchAborted
from ..interrupts import interrupt_on_signals
from .config import NasConfig, worker_seed
from .trials import fully_trained, trial_counts

__all__ = ["MAX_CPU_WORKERS", "plan_workers", "run_workers", "starting_worker"]

log = logging.getLogger(__name__)

MAX_CPU_WORKERS = 8  # a cap on `auto` (each worker holds its own copy of the data); not measured beyond 2 cores


#: The worker processes' names, by which a process that is still starting knows itself.
WORKER_NAME = "nas-worker"


def starting_worker() -> bool:
    """Whether this process is one of the search's workers: a spawned worker imports the user's
    main module before it runs the search loop, so a script that calls `nas.search` outside
    `if __name__ == "__main__":` calls it here again."""
    return multiprocessing.current_process().name.startswith(WORKER_NAME)  # named before the import


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_workers(setting: str, device: torch.device) -> tuple[int, int]:
    """(worker processes, threads each) for `search.workers` on this machine: `auto` is one per
    GPU on a GPU, else one per CPU core up to MAX_CPU_WORKERS; the cores are shared out evenly."""
    cores = _cores()
    if setting == "auto":
        workers = torch.cuda.device_count() if device.type == "cuda" else min(cores, MAX_CPU_WORKERS)
    else:
        workers = int(setting)
    workers = max(1, workers)
    return workers, max(1, cores // workers)


def _watch_parent(parent: int) -> None:
    """Interrupt this process once its parent is gone: a worker never trains unwatched."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


#: A worker's exit codes besides 0: interrupted (Ctrl-C, its parent gone), and stopped the search
#: on purpose (a ConfigError or SearchAborted, whose one line is in its log and on the console).
INTERRUPTED, STOPPED = 130, 2


def _worker(search: Callable[..., Any], cfg: NasConfig, threads: int, parent: int, dataset: Dataset | None,
            quiet: tuple[int, list[Any]]) -> None:
    """A worker process: the search loop (`search`, `nas.search.study.search`) on the shared study,
    without outputs or a progress bar, as quiet as its parent (`quiet`: Optuna's verbosity and the
    warning filters, which a spawned interpreter does not inherit)."""
    from ..errors import ConfigError

    optuna.logging.set_verbosity(quiet[0])
    warnings.filters[:] = quiet[1]
    interrupt_on_signals(once=True)  # the trial's failure is recorded whole, then the worker exits
    torch.set_num_threads(threads)
    _watch_parent(parent)
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())  # not tqdm's multiprocessing lock, which a killed worker would leak
    console = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    for handler in console:  # the parent speaks for all workers; each worker's own log keeps everything
        handler.setLevel(logging.WARNING)
    try:
        search(cfg, dataset=dataset, progress=False)
    except KeyboardInterrupt:
        raise SystemExit(INTERRUPTED) from None
    except (ConfigError, SearchAborted) as err:
        log.error("worker %d: %s", cfg.search.worker, err)
        raise SystemExit(STOPPED) from None


def _worker_config(cfg: NasConfig, index: int) -> NasConfig:
    """Worker `index`'s config: its worker number (from the parent's), its own sampler seed, one
    process, and no references to queue (the parent did)."""
    worker = cfg.search.worker + index
    search = dataclasses.replace(cfg.search, worker=worker, workers="1", start_from_references=False)
    sampler = dict(cfg.sampler)
    if "seed" in sampler:
        sampler["seed"] = worker_seed(cfg.search.seed, worker)
    return dataclasses.replace(cfg, search=search, sampler=sampler)


def run_workers(search: Callable[..., Any], cfg: NasConfig, study: optuna.Study, workers: int, threads: int, *,
                dataset: Dataset | None = None, progress: bool = True) -> None:
    """Start `workers` worker processes, each running `search` (the search loop) on the study, and
    watch them until it holds `search.n_trials` trained architectures; one progress bar for all."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    context = multiprocessing.get_context("spawn")  # a clean interpreter: no forked torch threads or locks
    n_trials = cfg.search.n_trials

    def start(index: int) -> multiprocessing.process.BaseProcess:
        quiet = (optuna.logging.get_verbosity(), list(warnings.filters))
        process = context.Process(target=_worker, name=f"{WORKER_NAME}{cfg.search.worker + index}", daemon=False,
                                  args=(search, _worker_config(cfg, index), threads, os.getpid(), dataset, quiet))
        process.start()
        return process

    log.info("%d workers of %d thread(s) each on study %s", workers, threads, cfg.study.name)
    running = {index: start(index) for index in range(workers)}
    restarts, shown = 0, None
    counts = trial_counts(study)
    bar = tqdm(total=n_trials, initial=min(counts["trained"], n_trials), unit="arch", disable=not progress,
               desc=cfg.study.name, dynamic_ncols=True)
    try:
        with bar, logging_redirect_tqdm():
            while running:
                time.sleep(1.0)
                for index, process in list(running.items()):
                    if process.is_alive():
                        continue
                    del running[index]
                    worker = cfg.search.worker + index
                    if process.exitcode == STOPPED:
                        raise SearchAborted(f"worker {worker} stopped the search (the reason is above and in "
                                            f"search-worker{worker}.log); the study is kept")
                    if process.exitcode in (0, INTERRUPTED) or trial_counts(study)["trained"] >= n_trials:
                        continue
                    restarts += 1
                    if restarts > cfg.search.max_failures:
                        raise SearchAborted(f"workers died {restarts} times (search.max_failures="
                                            f"{cfg.search.max_failures}); the last, worker {worker}, with exit code "
                                            f"{process.exitcode}: see search-worker{worker}.log. The study is kept; "
                                            "re-run to resume.")
                    log.warning("worker %d exited with code %s; starting it again", worker, process.exitcode)
                    running[index] = start(index)
                trials = study.get_trials(deepcopy=False)
                counts = trial_counts(study)
                best = max((t.user_attrs[TrialAttr.VAL_ACC] for t in trials if fully_trained(t)), default=0.0)
                state = (min(counts["trained"], n_trials), best, counts["running"], counts["promoted"],
                         counts["rejected"], counts["failed"])
                if state != shown:  # redrawn when something changed, not every second (logs, CI)
                    shown = state
                    bar.n = state[0]
                    bar.set_postfix(best=f"{best:.4f}", running=counts["running"],
                                    promoted=counts["promoted"], rejected=counts["rejected"],
                                    failed=counts["failed"], refresh=False)
                    bar.refresh()
    except BaseException:
        _stop(running.values())
        raise


def _stop(processes: Any) -> None:
    """Interrupt the workers (each fails its trial as interrupted), then end any that lingers."""
    processes = [p for p in processes if p.is_alive()]
    for p in processes:
        os.kill(p.pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join()
