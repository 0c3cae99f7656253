"""Successive halving that keeps the Pareto mode: early stopping on (accuracy at a rung, MACs), or
(accuracy at a rung, measured latency) with objective=latency.

Optuna cannot prune multi-objective studies (`Trial.report` refuses more than one direction,
optuna#3450), so the search measures validation accuracy at a few rungs of the proxy run and
decides itself, as multi-objective ASHA does (Schmucker et al. 2021, "Multi-objective
Asynchronous Successive Halving"): at a rung, the architectures measured there so far are sorted
into non-dominated fronts on (accuracy at the rung, MACs), and a trial continues while it is among
the best `keep` share of them (whole fronts first; NSGA-II's crowding distance splits the front
the cut falls in, so the most accurate and the cheapest go first). The first rung, the screening
rung, may keep a share of its own (`screen_keep`): it ranks worst, so a search may cut harder
there and keep more of the better-ranked rungs above it (docs/proxy-quality.md weighs the trade).
With `cap`, as in ASHA (Li et al. 2020), the share is also a bound: of the k searched trials
measured at a rung, at most ceil(keep * k) have gone on. Without it a sampler whose later trials
beat its first ones promotes nearly every late arrival (each is among the best when it arrives),
and the trials reaching the top, so the search's time, grow with how well the sampler learns; with
it, a later better trial takes a place as the rung's arrivals open one, but one arriving just after
the places were taken stops (docs/search-fashion-mnist.md weighs the trade). The papers' networks,
which always go on, are left out of the count.
MACs are known before training, and so is latency (timed before training), so only accuracy is
uncertain at a rung.
The rule reads every trial of the study from its storage, so workers sharing one storage share
the rungs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..attrs import TrialAttr
from ..dominance import crowding_distances, nondominated_fronts

if TYPE_CHECKING:
    from .config import HalvingConfig

__all__ = ["Halving", "expected_reach", "goes_on", "most_reaching", "promoted", "record_and_decide"]

@dataclass(frozen=True)
class Halving:
    """Where a run is checked and how much of each rung goes on."""

    rungs: tuple[float, ...]  # the search: a ladder's images seen; the sweeper: the app's report steps
    keep: float = 0.5  # share of the trials at a rung that continue (fronts best first)
    min_trials: int = 4  # trials a rung must have seen (this one included) before it stops any
    screen_keep: float | None = None  # the share at the first rung (None: keep)
    cap: bool = False  # also bound how many of a rung's searched trials go on (ASHA's places)

    @classmethod
    def of(cls, config: HalvingConfig, rungs: tuple[float, ...], pruner: Any) -> Halving | None:
        """The search's rule (`search.halving`) at `rungs` (a ladder's, below its top); None where
        the search stops no trial at them."""
        if not config.active(pruner):
            return None
        return cls(rungs, config.keep, config.min_trials, config.screen_keep, config.cap)

    def share_name(self, rung: int) -> str:
        """The field that sets the share going on at `rungs[rung]`: screen_keep or keep."""
        return "screen_keep" if rung == 0 and self.screen_keep is not None else "keep"

    def keep_at(self, rung: int) -> float:
        """The share that goes on at `rungs[rung]`."""
        return getattr(self, self.share_name(rung))


def promoted(me: Sequence[float], others: Sequence[Sequence[float]], keep: float) -> bool:
    """Whether `me` (minimized objectives) is among the best ceil(keep * all) of the points
    measured at its rung: whole fronts first, and in the front the cut falls in, the points with
    the larger crowding distance (NSGA-II's: the extremes, then the more isolated), which keeps the
    promoted set spread along the front."""
    points = [tuple(me), *map(tuple, others)]
    quota = max(1, math.ceil(keep * len(points)))
    before = 0
    for front in nondominated_fronts(points):
        if 0 in front:
            if before + len(front) <= quota:
                return True
            crowding = crowding_distances([points[i] for i in front])
            order = sorted(range(len(front)), key=lambda k: (-crowding[k], points[front[k]]))
            return front.index(0) in order[: max(0, quota - before)]
        before += len(front)
    raise AssertionError("unreachable: every point is in a front")


def expected_reach(halving: Halving, searched: int, references: int = 0) -> list[float]:
    """About how many trials reach each rung: the `references + searched` started, then the
    expected number that go on past each of `halving.rungs` under this module's rule, for trials
    arriving at a rung in the order they started, the references first (they always go on).

    It assumes the arrivals exchangeable (no trial likelier than another to be good): the k-th
    arrival at a rung, among the first k measured, is then in the best `ceil(keep * k)` with
    probability ceil(keep * k) / k whatever the objectives, independently of the arrivals before
    it (relative ranks of exchangeable draws; with a cost, exact at the first rung), and the first
    `min_trials - 1` go on regardless. The cap, where on, then holds back an arrival that finds
    the rung's places taken. A sampler whose later trials are better than its first ones promotes
    more, up to `most_reaching`."""
    arriving = {references + searched: 1.0}  # distribution of the number arriving at the rung
    reach = [float(references + searched)]
    for rung in range(len(halving.rungs)):
        keep = halving.keep_at(rung)
        going = [arriving.get(0, 0.0)]
        counts = [1.0]  # the chance of each count of the first k arrivals having gone on
        for k in range(1, max(arriving) + 1):
            free = k <= references or k < halving.min_trials
            p = 1.0 if free else math.ceil(keep * k) / k
            places = references + math.ceil(keep * (k - references))  # the cap, the references included
            stepped = [0.0] * (len(counts) + 1)
            for gone, chance in enumerate(counts):
                p_here = p if free or not halving.cap or gone < places else 0.0
                stepped[gone] += chance * (1 - p_here)
                stepped[gone + 1] += chance * p_here
            counts = stepped
            going = [g + arriving.get(k, 0.0) * c for g, c in zip([*going, 0.0], counts, strict=True)]
        arriving = {m: p for m, p in enumerate(going) if p > 0}
        reach.append(sum(m * p for m, p in arriving.items()))
    return reach


def most_reaching(halving: Halving, searched: int, references: int = 0) -> list[int]:
    """The most trials that can reach each rung, whatever the sampler: with the cap, of the s
    searched trials at a rung at most ceil(keep * s) go on, or the `min_trials - 1` that go on
    regardless where more; the references always. Without it, all of them."""
    if not halving.cap:
        return [references + searched] * (len(halving.rungs) + 1)
    reach, alive = [references + searched], searched
    for rung in range(len(halving.rungs)):
        alive = min(alive, max(halving.min_trials - 1, math.ceil(halving.keep_at(rung) * alive)))
        reach.append(references + alive)
    return reach


def goes_on(me: Sequence[float], others: Sequence[Sequence[float]], keep: float, *, min_trials: int,
            searched: int | None = None, gone_on: int = 0) -> bool:
    """The rule at one rung: `me` goes on while the rung has seen fewer than `min_trials` trials
    (`others` and `me`), then if it is `promoted` among them and, with the cap (`searched` given),
    the cap leaves a place: of the `searched` trials the sampler proposed that were measured there
    (`me` included), fewer than ceil(keep * searched) have gone on (`gone_on`)."""
    if len(others) + 1 < min_trials:
        return True
    return promoted(me, others, keep) and (searched is None or gone_on < math.ceil(keep * searched))


def _point(acc: float, cost: float | None) -> tuple[float, ...]:
    return (-acc,) if cost is None else (-acc, cost)


def record_and_decide(study: optuna.Study, trial: optuna.Trial, rung: float, val_acc: float,
                      halving: Halving, *, cost: str | None) -> bool:
    """Record the trial's accuracy at `rung`, then whether it continues (True) or stops.

    The trials compete on (accuracy, their `cost` attribute: `macs`, or `latency_ms` measured
    before training), or on accuracy alone when `cost` is None.
    """
    key = f"{rung:g}"
    index = next((i for i, r in enumerate(halving.rungs) if f"{r:g}" == key), None)
    if index is None:
        known = ", ".join(f"{r:g}" for r in halving.rungs)
        raise ValueError(f"rung {key} is not one of the rule's rungs ({known})")
    attrs: dict[str, Any] = trial.user_attrs
    trial.set_user_attr(TrialAttr.RUNG_VAL_ACC, {**attrs.get(TrialAttr.RUNG_VAL_ACC, {}), key: val_acc})
    mine = attrs.get(cost) if cost else None
    if cost and mine is None:
        raise ValueError(f"trial {trial.number} has no {cost!r} to compete on")
    trials = study.get_trials(deepcopy=False)
    others = [
        _point(t.user_attrs[TrialAttr.RUNG_VAL_ACC][key], t.user_attrs.get(cost) if cost else None)
        for t in trials
        if t.number != trial.number and key in t.user_attrs.get(TrialAttr.RUNG_VAL_ACC, {})
        and (not cost or t.user_attrs.get(cost) is not None)
    ]
    searched, gone_on = _searched_at(trials, trial.number, rung) if halving.cap else (None, 0)
    return goes_on(_point(val_acc, mine), others, halving.keep_at(index), min_trials=halving.min_trials,
                   searched=searched, gone_on=gone_on)


_COUNTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


def _searched_at(trials: Sequence[FrozenTrial], number: int, rung: float) -> tuple[int, int]:
    """How many searched trials were measured at `rung`, trial `number` included, and how many of
    the others have gone on from it: the references, which always go on, and failed trials (their
    places are trained again) left out. A trial still running there counts as gone on."""
    key, measured, gone_on = f"{rung:g}", 1, 0
    for t in trials:
        attrs = t.user_attrs
        if (t.number == number or t.state not in _COUNTED or key not in attrs.get(TrialAttr.RUNG_VAL_ACC, {})
                or attrs.get(TrialAttr.REFERENCE)):
            continue
        measured += 1
        stopped_at = attrs.get(TrialAttr.PRUNED_AT)
        gone_on += stopped_at is None or float(stopped_at) != float(rung)
    return measured, gone_on
