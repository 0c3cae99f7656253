"""One trial of the search: sample and price an architecture, reject it or claim a training slot,
train it with the proxy (stopping it early at the rungs), and record what it scored. Called by
`study.optimize`; the loop around it is `nas.search.study`."""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings

import optuna
import torch
from optuna.trial import TrialState

from search_spaces import Budget, Space

from ..attrs import Status, TrialAttr, zero_cost_attr
from ..data import Dataset, Split
from ..model import build_model
from ..training import EpochMetrics, RunSettings, fit, zero_cost_scores
from .config import NasConfig
from .halving import Halving, record_and_decide
from .liveness import this_process
from .storage import artifact_store
from .trials import admit, record_arch, rejected_values, sample_and_price

__all__ = ["Objective", "record_zero_cost", "run_settings"]

log = logging.getLogger(__name__)


def run_settings(cfg: NasConfig, device: torch.device, seed: int) -> tuple[RunSettings, int | None, str]:
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
    settings = RunSettings.of(p, batch_size=batch_size, lr=lr, max_train_images=max_train, flip=cfg.data.flip,
                              pad_crop=cfg.data.pad_crop, seed=seed)
    return settings, max_val, note


class Objective:
    """One trial: sample, price, reject or train. Called by `study.optimize`."""

    def __init__(self, cfg: NasConfig, study: optuna.Study, space: Space, data: Dataset, val: Split,
                 settings: RunSettings, device: torch.device) -> None:
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
            result = fit(
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
