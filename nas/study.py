"""The search: Optuna samples architectures, the budget rejects costly ones before they are built,
the proxy trains the rest, and the Pareto-best are written out.

`run_search(cfg)` is the whole job and needs no Hydra; `nas-search` only parses and calls it. The
trial lifecycle is in `nas.trials`, the storage in `nas.storage`, the outputs in `nas.outputs`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from pathlib import Path

import optuna
import torch
from hydra.utils import instantiate
from optuna.trial import FrozenTrial, TrialState

from search_spaces import Space, get_space

from .attrs import Status, StudyAttr, TrialAttr, zero_cost_attr
from .budget import Budget, probe_budget
from .checks import redact
from .config import NasConfig, validate
from .data import DATASETS, Dataset, Split, load_data
from .errors import SearchAborted
from .halving import Halving, record_and_decide
from .model import build_model
from .outputs import SearchResult, write_outputs
from .pareto import atomic_write, candidates, hypervolume
from .proxy import EpochMetrics, ProxySettings, pick_device, train_proxy
from .storage import artifact_store, make_storage, open_study
from .trials import (RejectionLimit, Withdrawn, admit, fail_dead_trials, record_arch, rejected_values, sample_and_price,
                     this_process, trial_counts)
from .zero_cost import zero_cost_scores

__all__ = ["proxy_settings", "run_search"]

log = logging.getLogger(__name__)


def proxy_settings(cfg: NasConfig, device: torch.device, seed: int) -> tuple[ProxySettings, int | None, str]:
    """The proxy's settings for this device, the validation cap, and a note when reduced."""
    p = cfg.proxy
    max_train, max_val, note = p.max_train_images, p.max_val_images, ""
    batch_size, lr = p.batch_size, p.lr
    if device.type == "cpu" and p.on_cpu is not None:
        max_train = min(max_train or p.on_cpu.max_train_images, p.on_cpu.max_train_images)
        max_val = min(max_val or p.on_cpu.max_val_images, p.on_cpu.max_val_images)
        batch_size = p.on_cpu.batch_size or batch_size
        lr = p.on_cpu.lr or lr
        note = (
            f"no GPU found: reduced proxy on the CPU (at most {max_train} training and {max_val} "
            f"validation images, {p.epochs} epoch(s), batch {batch_size}, lr {lr:g}); "
            "set proxy.on_cpu=null for the full proxy"
        )
    settings = ProxySettings.of(p, batch_size=batch_size, lr=lr, max_train_images=max_train, flip=cfg.data.flip,
                                pad_crop=cfg.data.pad_crop, seed=seed)
    return settings, max_val, note


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

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        trial.set_user_attr(TrialAttr.PROCESS, self.process)
        arch, cost = sample_and_price(trial, self.space, self.data.shape, self.budget, self.cfg.search.worker,
                                      self.cfg.search.budget_aware)
        if not self.budget.admits(cost):
            return rejected_values(cost, ["maximize"], self.pareto)

        admit(self.study, trial, self.cfg.search.n_trials)
        record_arch(trial, arch, self.artifacts)
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
            trial.set_user_attr(TrialAttr.FAILURE, f"{type(err).__name__}: {err}"[:500])
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(TrialAttr.FAILURE, "interrupted")
            raise
        finally:
            del model
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        for key, value in ((TrialAttr.VAL_ACC, result.val_acc), (TrialAttr.TRAIN_S, round(result.train_s, 3)),
                           (TrialAttr.SETUP_S, round(result.setup_s, 3)), (TrialAttr.IMG_S, round(result.img_s, 1)),
                           (TrialAttr.DEVICE, result.device), (TrialAttr.EPOCHS, result.epochs),
                           (TrialAttr.LOSS_SUM, round(result.loss_sum, 4))):
            trial.set_user_attr(key, value)
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
            trial.set_user_attr(TrialAttr.PROCESS, self.process)
            arch, cost = sample_and_price(trial, self.space, self.data.shape, self.budget, self.cfg.search.worker,
                                          self.cfg.search.budget_aware)
            if not self.budget.admits(cost):
                self.study.tell(trial, rejected_values(cost, ["maximize"], self.pareto))
                continue
            torch.manual_seed(self.cfg.search.seed * 1_000_003 + trial.number)
            try:
                model = build_model(arch, max_mparams=self.cfg.limits.max_mparams)
                score = zero_cost_scores(model, self.data.train, mean=self.data.mean, std=self.data.std,
                                         seed=trial.number, device=self.device, scores=(name,))[name]
            except (ArithmeticError, RuntimeError, ValueError) as err:
                log.warning("prescreen: trial %d not scored (%s: %s)", trial.number, type(err).__name__, err)
                score = -math.inf
            trial.set_user_attr(TrialAttr.STATUS, Status.PRESCREENED)
            trial.set_user_attr(zero_cost_attr(name), round(score, 4) if math.isfinite(score) else None)
            scored.append((score, trial))
        if not scored:
            return
        best = max(scored, key=lambda st: st[0])[1]
        for _, trial in scored:
            self.study.tell(trial, state=TrialState.PRUNED)
        self.study.enqueue_trial(best.params, user_attrs={TrialAttr.PRESCREENED_FROM: [t.number for _, t in scored]})

    def _reporter(self, trial: optuna.Trial):
        def report(metrics: EpochMetrics) -> None:
            curve = trial.user_attrs.get(TrialAttr.VAL_ACC_CURVE, [])
            trial.set_user_attr(TrialAttr.VAL_ACC_CURVE, [*curve, metrics.val_acc])
            if self.pareto:
                return
            trial.report(metrics.val_acc, metrics.epoch)
            if trial.should_prune():
                trial.set_user_attr(TrialAttr.VAL_ACC, metrics.val_acc)
                raise optuna.TrialPruned(f"pruned after epoch {metrics.epoch} at val_acc {metrics.val_acc:.4f}")

        return report

    def _rung(self, trial: optuna.Trial):
        def decide(fraction: float, val_acc: float, train_s: float) -> None:
            assert self.halving is not None
            if not record_and_decide(self.study, trial, fraction, val_acc, self.halving, pareto=self.pareto):
                trial.set_user_attr(TrialAttr.VAL_ACC, val_acc)
                trial.set_user_attr(TrialAttr.PRUNED_AT, fraction)
                trial.set_user_attr(TrialAttr.TRAIN_S, round(train_s, 3))
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
        trial.set_user_attr(zero_cost_attr(name), round(value, 4))


def run_search(cfg: NasConfig, *, dataset: Dataset | None = None, progress: bool = True) -> SearchResult:
    """Search until the study holds `search.n_trials` trained architectures, then write outputs.

    Everything that can be wrong with the configuration or data is checked before the first
    file is written.
    """
    started = time.perf_counter()
    validate(cfg, DATASETS)
    data = dataset or load_data(cfg.data)
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
    if StudyAttr.DATA_MEAN not in study.user_attrs:  # what exported models need to normalise their inputs
        study.set_user_attr(StudyAttr.DATA_MEAN, [round(v, 6) for v in data.mean])
        study.set_user_attr(StudyAttr.DATA_STD, [round(v, 6) for v in data.std])
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
    rejections = RejectionLimit(cfg.search.max_rejected, "search.max_rejected", "budget.mflops")
    failures_in_row = 0
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
                    log.info("stopped early %s: %.2f MMACs", attrs[TrialAttr.GENOTYPE], attrs[TrialAttr.MACS] / 1e6)
                elif not rejected:
                    best = max(best, attrs[TrialAttr.VAL_ACC])
                    log.info("trained %s: val_acc %.4f, %.2f MMACs, %.1fs", attrs[TrialAttr.GENOTYPE],
                             attrs[TrialAttr.VAL_ACC], attrs[TrialAttr.MACS] / 1e6, attrs[TrialAttr.TRAIN_S])
            counts = trial_counts(study)
            bar.n = min(counts["trained"], n_trials)
            bar.set_postfix(best=f"{best:.4f}", rejected=counts["rejected"], failed=counts["failed"], refresh=False)
            bar.refresh()
