"""One trial of the search: sample and price an architecture, reject it or claim a training slot,
train it up the fidelity ladder (`nas.search.ladder`) while it keeps winning at the rungs, and
record what it scored; a trial that reaches the top keeps its weights. Called by
`study.optimize`; the loop around it is `nas.search.study`."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from search_spaces import Arch, Budget, Space

from ..attrs import Status, TrialAttr, zero_cost_attr
from ..complexity import Complexity
from ..data import Dataset, Split
from ..files import atomic_write
from ..model import build_model
from ..timing import latency
from ..training import RunSettings, Training, zero_cost_scores
from .config import LatencyConfig, NasConfig
from .halving import Halving, late_promotion, record_and_decide
from .ladder import Ladder
from .liveness import this_process
from .storage import artifact_store, upload_text
from .trials import admit, claim_promotion, fixed_arch, record_arch, rejected_values, sample_and_price

__all__ = ["WEIGHTS_DIR", "Objective", "ProxyRun", "record_latency", "record_zero_cost", "run_settings",
           "training_seed"]

WEIGHTS_DIR = "weights"  # top-rung weights, under the study's folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxyRun:
    """The proxy as it runs on this device: the top rung's settings, the validation images scored
    at each rung below the top and at the top (None: all), the screening rung, and a note when
    reduced for the CPU."""

    settings: RunSettings
    max_val_images: int | None
    screen_images: int | None
    note: str = ""
    screen_field: str = "proxy.screen_images"  # where `screen_images` was set, for errors
    top_val_images: int | None = None


def run_settings(cfg: NasConfig, device: torch.device, seed: int) -> ProxyRun:
    """The proxy's settings for this device (`proxy.on_cpu` when it is the CPU)."""
    p = cfg.proxy
    max_train, max_val, screen, note = p.max_train_images, p.max_val_images, p.screen_images, ""
    top_val = max_val
    screen_field = "proxy.screen_images"
    batch_size, lr, epochs = p.batch_size, p.lr, p.epochs
    flip, pad_crop = cfg.data.flip, cfg.data.pad_crop
    if device.type == "cpu" and p.on_cpu is not None:
        c = p.on_cpu
        max_train = min(max_train or c.max_train_images, c.max_train_images)
        max_val = min(max_val or c.max_val_images, c.max_val_images)
        top_val = min((n for n in (p.max_val_images, c.top_val_images) if n), default=None)
        batch_size, lr, epochs = c.batch_size or batch_size, c.lr or lr, c.epochs or epochs
        if not c.augment:
            flip, pad_crop = False, 0
        if c.screen_images:
            screen, screen_field = c.screen_images, "proxy.on_cpu.screen_images"
        note = (
            f"no GPU found: a smaller ladder on the CPU (top rung {epochs} epoch(s) of at most {max_train} "
            f"training images, batch {batch_size}, lr {lr:g}{'' if c.augment else ', no augmentation'}; "
            f"{max_val} validation images at each rung below the top, {top_val or 'all'} at the top); "
            "set proxy.on_cpu=null for the full ladder"
        )
    settings = RunSettings.of(p, epochs=epochs, batch_size=batch_size, lr=lr, max_train_images=max_train,
                              flip=flip, pad_crop=pad_crop, seed=seed)
    return ProxyRun(settings, max_val, screen, note, screen_field, top_val)


class Objective:
    """One trial: sample, price, reject or train. Called by `study.optimize`."""

    def __init__(self, cfg: NasConfig, study: optuna.Study, space: Space, data: Dataset, val: Split,
                 settings: RunSettings, ladder: Ladder, device: torch.device,
                 top_val: Split | None = None) -> None:
        """`val`: the validation images scored at the rungs below the top; `top_val` at the top
        (None: the same)."""
        self.cfg, self.study, self.space, self.data, self.val = cfg, study, space, data, val
        self.top_val = val if top_val is None else top_val
        self.artifacts = artifact_store(cfg.artifact_dir)
        self.settings, self.ladder, self.device = settings, ladder, device
        self.budget = Budget(cfg.budget.mflops, cfg.budget.mparams)
        self.pareto = cfg.objective.name == "pareto"
        self.cost_attr = cfg.objective.cost_attr  # weighed against accuracy at the rungs (None: accuracy alone)
        self.timed = cfg.objective.name == "latency"
        self.process = this_process()
        self.halving = Halving.of(cfg.search.halving, ladder.images[:-1], cfg.objective.pruner)
        self.weights_dir = Path(cfg.output_dir) / WEIGHTS_DIR

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float] | list[float]:
        trial.set_user_attr(TrialAttr.PROCESS, self.process)
        reference = trial.user_attrs.get(TrialAttr.REFERENCE)
        if reference:
            arch, cost = fixed_arch(trial, Arch.from_yaml(trial.user_attrs[TrialAttr.ARCH_YAML]), self.budget,
                                    self.cfg.search.worker)
        else:  # (a trial promoted later: the stopped trial's parameters, queued)
            arch, cost = sample_and_price(trial, self.space, self.data.shape, self.budget, self.cfg.search.worker,
                                          self.cfg.search.budget_aware)
        if not self.budget.admits(cost):
            return self._rejected(cost)
        try:  # from admission on: an interrupt while waiting for a slot or recording the spec too
            return self._admitted(trial, arch, cost, bool(reference))
        except KeyboardInterrupt:
            trial.set_user_attr(TrialAttr.FAILURE, "interrupted")
            raise

    def _admitted(self, trial: optuna.Trial, arch: Arch, cost: Complexity,
                  reference: bool) -> float | tuple[float, float]:
        """Claim a training slot (or a stopped trial's network, promoted later), then train up the
        ladder and record the result."""
        promoted_at = None
        if TrialAttr.PROMOTED_FROM in trial.user_attrs:
            promoted_at = claim_promotion(self.study, trial, arch.genotype())
        else:
            admit(self.study, trial, self.cfg.search.n_trials)
        record_arch(trial, arch, self.artifacts)
        seed = training_seed(self.cfg.search.seed, arch)
        torch.manual_seed(seed)
        model = None
        try:
            model = build_model(arch, max_mparams=self.cfg.limits.max_mparams)
            if self.timed:
                record_latency(trial, model, self.cfg.objective.latency)
            if self.cfg.proxy.zero_cost:
                record_zero_cost(trial, model, self.data, self.device, seed)
            val_acc, run = self._climb(trial, model, seed, always_to_top=reference, promoted_at=promoted_at)
            self._keep_weights(trial, model)
        except Exception as err:
            trial.set_user_attr(TrialAttr.FAILURE, f"{type(err).__name__}: {err}"[:500])
            raise
        finally:
            del model
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        result = run.result(val_acc)
        for key, value in ((TrialAttr.VAL_ACC, val_acc), (TrialAttr.TRAIN_S, round(result.train_s, 3)),
                           (TrialAttr.SETUP_S, round(result.setup_s, 3)), (TrialAttr.IMG_S, round(result.img_s, 1)),
                           (TrialAttr.DEVICE, result.device), (TrialAttr.EPOCHS, result.epochs),
                           (TrialAttr.LOSS_SUM, round(result.loss_sum, 4))):
            trial.set_user_attr(key, value)
        if self.timed:
            return val_acc, trial.user_attrs[TrialAttr.LATENCY_MS]
        return (val_acc, cost.mmacs) if self.pareto else val_acc

    def _rejected(self, cost: Complexity) -> list[float]:
        """A sample over the budget: never trained, nor timed (its latency is told as +inf)."""
        return rejected_values(cost, ["maximize", "minimize"] if self.timed else ["maximize"], self.pareto)

    def _climb(self, trial: optuna.Trial, model: torch.nn.Module, seed: int, *, always_to_top: bool,
               promoted_at: float | None = None) -> tuple[float, Training]:
        """Train `model` rung by rung, measuring its accuracy on the validation images of the rungs
        below the top (`proxy.max_val_images`) and of the top (`proxy.on_cpu.top_val_images`); at
        each rung below the top, stop it (`optuna.TrialPruned`) unless it is promoted (a network
        promoted later goes on regardless up to `promoted_at`, the rung that promoted it)."""
        ladder = self.ladder
        run = Training(model, self.data.train, dataclasses.replace(self.settings, seed=seed), mean=self.data.mean,
                       std=self.data.std, device=self.device, restarts=ladder.restarts, rewarm=ladder.rewarm)
        val_acc = math.nan
        for rung, steps in enumerate(ladder.steps):
            run.run_to(steps)
            top = rung == len(ladder.steps) - 1
            val_acc = run.evaluate(self.top_val if top else self.val)
            key = ladder.key(rung)
            trial.set_user_attr(TrialAttr.RUNG_VAL_ACC, {**trial.user_attrs.get(TrialAttr.RUNG_VAL_ACC, {}), key: val_acc})
            if (top or always_to_top or (self.halving is None and self.cost_attr)
                    or (promoted_at is not None and ladder.images[rung] <= promoted_at)):
                continue  # (halving off in a multi-objective study: nothing stops a trial; Optuna's
                # pruners, told by trial.report, are single-objective)
            if self.halving is not None:
                go_on = record_and_decide(self.study, trial, ladder.images[rung], val_acc, self.halving,
                                          cost=self.cost_attr)
                share = f"search.halving.{self.halving.share_name(rung)}={self.halving.keep_at(rung):g}"
                why = f"dominated at rung {key} (val_acc {val_acc:.4f}; {share})"
            else:
                trial.report(val_acc, ladder.images[rung])
                go_on = not trial.should_prune()
                why = f"pruned at rung {key} at val_acc {val_acc:.4f}"
            if not go_on:
                trial.set_user_attr(TrialAttr.VAL_ACC, val_acc)
                trial.set_user_attr(TrialAttr.PRUNED_AT, ladder.images[rung])
                trial.set_user_attr(TrialAttr.TRAIN_S, round(run.train_s, 3))
                raise optuna.TrialPruned(why)
        return val_acc, run

    def _keep_weights(self, trial: optuna.Trial, model: torch.nn.Module) -> None:
        """A top-rung network's weights: `weights/trial_NNNN.pt` beside the study, and an artifact."""
        import io

        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
        name = f"trial_{trial.number:04d}.pt"
        atomic_write(self.weights_dir / name, buffer.getvalue())
        trial.set_user_attr(TrialAttr.WEIGHTS, f"{WEIGHTS_DIR}/{name}")
        upload_text(self.artifacts, trial, name, buffer.getvalue(), "application/octet-stream")

    def queue_late_promotion(self) -> bool:
        """ASHA's promotion (`search.halving.late`): queue a trial that trains again the network of
        a stopped trial that the rule now promotes, to climb on from there; whether one was queued."""
        if self.halving is None or not self.halving.late:
            return False
        stopped = late_promotion(self.study.get_trials(deepcopy=False), self.halving, cost=self.cost_attr)
        if stopped is None:
            return False
        attrs = stopped.user_attrs
        log.info("promoted later: trial %d (%s, %.2f MMACs, val_acc %.4f where it was stopped at rung %s) "
                 "is trained again to climb on", stopped.number, attrs[TrialAttr.GENOTYPE],
                 attrs[TrialAttr.MACS] / 1e6, attrs[TrialAttr.VAL_ACC], attrs[TrialAttr.PRUNED_AT])
        self.study.enqueue_trial(stopped.params, user_attrs={TrialAttr.PROMOTED_FROM: stopped.number})
        return True

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
                self.study.tell(trial, self._rejected(cost))
                continue
            seed = training_seed(self.cfg.search.seed, arch)  # the network the trial would train, as it starts
            torch.manual_seed(seed)
            try:
                model = build_model(arch, max_mparams=self.cfg.limits.max_mparams)
                score = zero_cost_scores(model, self.data.train, mean=self.data.mean, std=self.data.std,
                                         seed=seed, device=self.device, scores=(name,))[name]
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


def training_seed(search_seed: int, arch: Arch) -> int:
    """The seed of a network's training (its initialisation, the images drawn and their order):
    from `search.seed` and the architecture itself, so that one architecture trains alike
    whichever trial number it gets (two workers number their trials in the order they ask for
    them) and in every study of that seed. Another look at an architecture takes another
    `search.seed`."""
    digest = hashlib.sha256(f"{search_seed}\n{arch.to_yaml()}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def record_latency(trial: optuna.Trial, model: torch.nn.Module, timing: LatencyConfig) -> None:
    """The untrained network's measured CPU latency (`nas.latency`, as `objective.latency` says),
    as the trial attributes `latency_ms` (the median) and `latency_spread`; before training, so
    that the rungs weigh it against accuracy as they weigh MACs."""
    measured = latency(model, batch_size=timing.batch_size, threads=timing.threads, repeats=timing.repeats,
                       warmup=timing.warmup)
    trial.set_user_attr(TrialAttr.LATENCY_MS, measured.median_ms)
    trial.set_user_attr(TrialAttr.LATENCY_SPREAD, round(measured.spread, 4))


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
