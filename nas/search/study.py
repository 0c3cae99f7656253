"""The search loop: Optuna samples architectures, the budget rejects costly ones before they are
built, the proxy trains the rest (`nas.search.objective`), until the study holds `search.n_trials`
trained architectures; several workers may share one study.

`search(cfg)` needs no Hydra; writing the outputs is the caller's (`on_stop`), so that the loop
knows nothing of them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from hydra.utils import instantiate
from optuna.trial import FrozenTrial, TrialState

from search_spaces import Budget, DataShape, get_space

from ..attrs import Status, StudyAttr, TrialAttr
from ..data import Dataset, fingerprint, load_data
from ..errors import ConfigError, SearchAborted
from ..files import atomic_write
from ..secrets import redact
from ..training import pick_device, warm_up
from .budget import probe_budget
from .config import NasConfig, validate
from .halving import Halving
from .ladder import ladder_for
from .liveness import fail_dead_trials, live_workers
from .objective import Objective, run_settings
from .references import enqueue_references
from .storage import make_storage, open_study
from .trials import RejectionLimit, Withdrawn, fully_trained, trial_counts
from .workers import plan_workers, run_workers

__all__ = ["SearchRun", "search"]

log = logging.getLogger(__name__)


@dataclass
class SearchRun:
    """How a search went: its study, what it trained and rejected, and where and how long."""

    study: optuna.Study
    shape: DataShape
    counts: dict[str, int]  # trials by outcome (`trial_counts`)
    wall_s: float
    device: str
    proxy_note: str = ""  # set when the proxy was reduced to fit the device


#: What the loop calls when it stops, finished or interrupted: write what the study holds.
#: `interrupted` is true when it stops on Ctrl-C (or SIGTERM), which should not wait for long work.
OnStop = Callable[[optuna.Study, Dataset, bool], None]


def search(cfg: NasConfig, *, dataset: Dataset | None = None, progress: bool = True,
           on_stop: OnStop | None = None) -> SearchRun:
    """Search until the study holds `search.n_trials` trained architectures, then call `on_stop`
    (also when interrupted, before the interrupt goes on).

    Everything that can be wrong with the configuration or data is checked before the first
    file is written.
    """
    started = time.perf_counter()
    validate(cfg)
    data = dataset or load_data(cfg.data)
    space = get_space(cfg.space.name)
    budget = Budget(cfg.budget.mflops, cfg.budget.mparams)
    probe = probe_budget(space, data.shape, budget, cfg.search.probe_samples, cfg.search.seed,
                         cfg.search.budget_aware)
    device = pick_device(cfg.proxy.device, cfg.search.worker)
    proxy = run_settings(cfg, device, cfg.search.seed)
    ladder = ladder_for(proxy.settings, len(data.train), cfg.proxy.eta, proxy.screen_images,
                        cfg.proxy.rung_schedule != "single", field=proxy.screen_field,
                        rewarm=cfg.proxy.rung_schedule != "restart_no_warmup")
    sampler = instantiate(cfg.sampler)
    pruner = instantiate(cfg.objective.pruner) if cfg.objective.pruner else optuna.pruners.NopPruner()
    val, top_val = (data.val.subset(n, cfg.data.split_seed) if n else data.val
                    for n in (proxy.max_val_images, proxy.top_val_images))

    storage = make_storage(cfg)  # the first write
    study = open_study(cfg, data.shape, storage, sampler, pruner, fingerprint(data))
    workers, threads = plan_workers(cfg.search.workers, device)
    _check_workers_free(cfg, study, workers)  # before this run's files replace a live worker's
    if StudyAttr.DATA_MEAN not in study.user_attrs:  # what exported models need to normalise their inputs
        study.set_user_attr(StudyAttr.DATA_MEAN, [round(v, 6) for v in data.mean])
        study.set_user_attr(StudyAttr.DATA_STD, [round(v, 6) for v in data.std])
    _record_run(cfg)
    if cfg.search.start_from_references and cfg.search.worker == 0:
        enqueue_references(study, data.shape, budget)
    log.info(
        "study %s: space=%s data=%s (%s), budget %g MMACs%s; %.0f%% of %s samples fit "
        "(smallest %.2f, median %.1f MMACs)", cfg.study.name, cfg.space.name, cfg.data.name,
        f"{data.shape.in_channels}x{data.shape.resolution}x{data.shape.resolution}", budget.mflops,
        "" if budget.mparams is None else f", {budget.mparams:g} M params", 100 * probe["feasible"],
        "budget-aware" if cfg.search.budget_aware else "random", probe["smallest"], probe["median"],
    )
    if proxy.note:
        log.warning(proxy.note)
    halving = Halving.of(cfg.search.halving, ladder.images[:-1], cfg.objective.pruner)
    log.info(ladder.describe(cfg.search.n_trials, halving, len(study.user_attrs.get(StudyAttr.REFERENCES, []))))
    try:
        if workers > 1:
            run_workers(search, cfg, study, workers, threads, dataset=dataset, progress=progress)
        else:
            warm_up()
            objective = Objective(cfg, study, space, data, val, proxy.settings, ladder, device, top_val)
            _optimize(cfg, study, objective, progress)
    except KeyboardInterrupt:
        # Optuna has marked the current trial failed; what was trained so far is written out.
        if on_stop is not None:
            on_stop(study, data, True)
        log.warning("interrupted: %d of %d architectures trained; run the same command to resume",
                    trial_counts(study)["trained"], cfg.search.n_trials)
        raise
    if on_stop is not None:
        on_stop(study, data, False)
    return SearchRun(study, data.shape, trial_counts(study), time.perf_counter() - started, str(device), proxy.note)


def _check_workers_free(cfg: NasConfig, study: optuna.Study, workers: int) -> None:
    """Refuse worker indices that live processes already search this study with: a worker's index
    is its sampler seed, so two workers of one index would draw the same architectures."""
    busy = live_workers(study, 2 * cfg.storage.heartbeat_s)
    taken = sorted(set(range(cfg.search.worker, cfg.search.worker + workers)) & set(busy))
    if taken:
        owner = busy[taken[0]]
        raise ConfigError("search.worker", f"worker {taken[0]} already searches study {cfg.study.name} (process "
                                           f"{owner.get('pid')} on {owner.get('host')}), and a second with its index "
                                           f"would draw the same architectures (allowed: search.worker={max(busy) + 1} "
                                           "or above for another search on this study)")


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


def _optimize(cfg: NasConfig, study: optuna.Study, objective: Objective, progress: bool) -> None:
    """Run trials one by one until the study holds `n_trials` trained architectures."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    n_trials = cfg.search.n_trials
    grace_s = 2 * cfg.storage.heartbeat_s
    fail_dead_trials(study, grace_s)  # a killed run's own trials: failed now, not once their heartbeat lapses
    counts = trial_counts(study)
    rejections = RejectionLimit(cfg.search.max_rejected, "search.max_rejected", "budget.mflops")
    failures_in_row = 0
    bar = tqdm(total=n_trials, initial=min(counts["trained"], n_trials), unit="arch", disable=not progress,
               desc=cfg.study.name, dynamic_ncols=True)
    best = max((t.user_attrs[TrialAttr.VAL_ACC] for t in study.get_trials(deepcopy=False) if fully_trained(t)), default=0.0)
    waiting_since = None
    with bar, logging_redirect_tqdm():
        while True:
            # Before every trial, not only when the slots look taken: a worker killed before its trial
            # had a status (while pre-screening) holds no slot that counts as running, yet every new
            # trial's admission waits for it and then withdraws, forever.
            if fail_dead_trials(study, grace_s):
                counts = trial_counts(study)
            # A stopped trial that its rung now promotes goes before a new one (search.halving.late),
            # also once the study's architectures are all trained or taken.
            promoting = objective.queue_late_promotion()
            if not promoting and counts["trained"] >= n_trials:
                break
            if not promoting and counts["trained"] + counts["running"] >= n_trials:
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
                if cfg.search.prescreen and not promoting:
                    objective.queue_best_of_prescreen()
                finished: list[FrozenTrial] = []  # the trial as stored, handed over by Optuna's callback
                study.optimize(objective, n_trials=1, gc_after_trial=False,
                               callbacks=[lambda _study, trial: finished.append(trial)])
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
                last = finished[-1]
                attrs = last.user_attrs
                rejected = attrs.get(TrialAttr.STATUS) == Status.REJECTED
                rejections.count(rejected)
                if not rejected:
                    failures_in_row = 0
                if last.state == TrialState.PRUNED:
                    log.info("stopped at rung %s: %s, val_acc %.4f, %.2f MMACs", attrs.get(TrialAttr.PRUNED_AT),
                             attrs[TrialAttr.GENOTYPE], attrs.get(TrialAttr.VAL_ACC, math.nan), attrs[TrialAttr.MACS] / 1e6)
                elif not rejected:
                    best = max(best, attrs[TrialAttr.VAL_ACC])
                    log.info("trained %s: val_acc %.4f, %.2f MMACs, %.1fs", attrs[TrialAttr.GENOTYPE],
                             attrs[TrialAttr.VAL_ACC], attrs[TrialAttr.MACS] / 1e6, attrs[TrialAttr.TRAIN_S])
            counts = trial_counts(study)
            bar.n = min(counts["trained"], n_trials)
            bar.set_postfix(best=f"{best:.4f}", promoted=counts["promoted"], rejected=counts["rejected"],
                            failed=counts["failed"], refresh=False)
            bar.refresh()
