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
With `late` (ASHA's own promotion), a stopped trial is not stopped for good: a rung's share
grows with its arrivals, and a worker about to start a new trial first takes a stopped one that
the rule now promotes (`late_promotion`), from the highest rung down; its network is trained again
from the start (the same seed, so the same network) in a trial of its own (`promoted_from`), and
its climb goes on above the rung it was stopped at. A decision at arrival depends on who arrived
first: the first trials at a rung, judged against few, face a quota of one, which in two
objectives goes to the most accurate, so a cheap network stopped then stays stopped however the
rung fills (docs/search-fashion-mnist.md).
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

from ..attrs import Status, TrialAttr
from ..dominance import crowding_distances, nondominated_fronts

if TYPE_CHECKING:
    from .config import HalvingConfig

__all__ = ["Halving", "expected_reach", "goes_on", "late_promotion", "most_reaching", "promoted",
           "record_and_decide"]

@dataclass(frozen=True)
class Halving:
    """Where a run is checked and how much of each rung goes on."""

    rungs: tuple[float, ...]  # the search: a ladder's images seen; the sweeper: the app's report steps
    keep: float = 0.5  # share of the trials at a rung that continue (fronts best first)
    min_trials: int = 4  # trials a rung must have seen (this one included) before it stops any
    screen_keep: float | None = None  # the share at the first rung (None: keep)
    cap: bool = False  # also bound how many of a rung's searched trials go on (ASHA's places)
    late: bool = False  # stopped trials go on later once the rule promotes them (`late_promotion`)

    @classmethod
    def of(cls, config: HalvingConfig, rungs: tuple[float, ...], pruner: Any) -> Halving | None:
        """The search's rule (`search.halving`) at `rungs` (a ladder's, below its top); None where
        the search stops no trial at them."""
        if not config.active(pruner):
            return None
        return cls(rungs, config.keep, config.min_trials, config.screen_keep, config.cap, config.late)

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
    the rung's places taken. With late promotion a trial stopped at arrival goes on when a later
    arrival's judgement puts it in the best share (`_late_going`). A sampler
    whose later trials are better than its first ones promotes more, up to `most_reaching`."""
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
        if halving.late:
            going, table = [0.0] * (max(arriving) + 1), _late_going(max(arriving), keep, references,
                                                                   halving.min_trials, halving.cap)
            for n, chance in arriving.items():
                mean = table[n]
                below = math.floor(mean)  # the mean as two neighbouring counts, for the next rung
                going[below] += chance * (1 - (mean - below))
                if mean > below:
                    going[below + 1] += chance * (mean - below)
        arriving = {m: p for m, p in enumerate(going) if p > 0}
        reach.append(sum(m * p for m, p in arriving.items()))
    return reach


def _late_going(arrivals: int, keep: float, references: int, min_trials: int, cap: bool) -> list[float]:
    """The expected number that go on from a rung when stopped trials are promoted later, for
    each count of arrivals there from 0 to `arrivals` (the `references` first).

    Each trial is judged when it arrives, as `expected_reach` says, and again at each later arrival
    while it waits (a worker frees about as often as a trial arrives somewhere): it goes on once
    it is in the best ceil(keep * m) of the first m measured. For exchangeable arrivals its rank
    among the first m only grows, by one with probability rank / (m + 1) at each arrival (the
    newcomer's rank is uniform), which a small chain over ranks follows. With the cap, every place
    of the rung (the references, then ceil(keep * searched)) is filled by the end, and no more."""
    free = max(references, min_trials - 1)  # they go on regardless
    if cap:
        return [float(min(n, max(free, references + math.ceil(keep * (n - references)))))
                for n in range(arrivals + 1)]
    gone_by = [0.0] * (arrivals + 1)  # expected number gone on once m have arrived
    for k in range(1, arrivals + 1):
        if k <= free:
            for m in range(k, arrivals + 1):
                gone_by[m] += 1.0
            continue
        ranks = [0.0] + [1.0 / k] * k  # its rank among the first k: uniform
        gone = 0.0
        for m in range(k, arrivals + 1):
            if m > k:  # the m-th arrival beats it with chance rank / m
                ranks = [0.0] + [ranks[r] * (1 - r / m) + (ranks[r - 1] * (r - 1) / m if r > 1 else 0.0)
                                 for r in range(1, m)] + [ranks[m - 1] * (m - 1) / m]
            for r in range(1, min(m, math.ceil(keep * m)) + 1):
                gone, ranks[r] = gone + ranks[r], 0.0
            gone_by[m] += gone
    return gone_by


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
    points = _points_at(trials, key, cost)
    others = [p for number, p in points.items() if number != trial.number]
    searched, gone_on = _searched_at(trials, trial.number, rung) if halving.cap else (None, 0)
    return goes_on(_point(val_acc, mine), others, halving.keep_at(index), min_trials=halving.min_trials,
                   searched=searched, gone_on=gone_on)


def late_promotion(trials: Sequence[FrozenTrial], halving: Halving, *,
                   cost: str | None) -> FrozenTrial | None:
    """A stopped trial that the rule promotes now, judged among every trial measured at the rung
    it was stopped at (ASHA's promotion: the highest rung first, then the lowest trial number);
    None if there is none. A trial already promoted this way (`promoted_from`, not failed) is not
    promoted again; a trial trained again stands for its first trial at the rungs both reached."""
    again = _promoted_again(trials)
    for index in reversed(range(len(halving.rungs))):
        rung = halving.rungs[index]
        points = _points_at(trials, f"{rung:g}", cost)
        for t in trials:
            attrs = t.user_attrs
            stopped_at = attrs.get(TrialAttr.PRUNED_AT)
            if (t.state != TrialState.PRUNED or t.number in again or t.number not in points
                    or attrs.get(TrialAttr.STATUS) not in (Status.ADMITTED, Status.PROMOTED)
                    or stopped_at is None or float(stopped_at) != float(rung)):
                continue
            others = [p for number, p in points.items() if number != t.number]
            searched, gone_on = _searched_at(trials, t.number, rung) if halving.cap else (None, 0)
            if goes_on(points[t.number], others, halving.keep_at(index), min_trials=halving.min_trials,
                       searched=searched, gone_on=gone_on):
                return t
    return None


def _promoted_again(trials: Sequence[FrozenTrial]) -> dict[int, FrozenTrial]:
    """{stopped trial number: the trial training its network again}, failed ones left out."""
    return {t.user_attrs[TrialAttr.PROMOTED_FROM]: t for t in trials
            if TrialAttr.PROMOTED_FROM in t.user_attrs and t.state != TrialState.FAIL}


def _points_at(trials: Sequence[FrozenTrial], key: str, cost: str | None) -> dict[int, tuple[float, ...]]:
    """{trial number: (-accuracy, cost)} of the trials measured at rung `key`; a trial trained
    again left out where its first trial was measured too (one network, one point)."""
    by_number = {t.number: t for t in trials}
    points = {}
    for t in trials:
        attrs = t.user_attrs
        first = by_number.get(attrs.get(TrialAttr.PROMOTED_FROM, -1))
        if (key not in attrs.get(TrialAttr.RUNG_VAL_ACC, {}) or (cost and attrs.get(cost) is None)
                or (first is not None and key in first.user_attrs.get(TrialAttr.RUNG_VAL_ACC, {}))):
            continue
        points[t.number] = _point(attrs[TrialAttr.RUNG_VAL_ACC][key], attrs.get(cost) if cost else None)
    return points


_COUNTED = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


def _searched_at(trials: Sequence[FrozenTrial], number: int, rung: float) -> tuple[int, int]:
    """How many searched trials were measured at `rung`, trial `number` included, and how many of
    the others have gone on from it: the references, which always go on, and failed trials (their
    places are trained again) left out. A trial still running there counts as gone on, and so does
    a stopped one promoted later; its network trained again counts once."""
    key, measured, gone_on = f"{rung:g}", 1, 0
    points, again = _points_at(trials, key, None), _promoted_again(trials)
    for t in trials:
        attrs = t.user_attrs
        if (t.number == number or t.state not in _COUNTED or t.number not in points
                or attrs.get(TrialAttr.REFERENCE)):
            continue
        measured += 1
        stopped_at = attrs.get(TrialAttr.PRUNED_AT)
        gone_on += stopped_at is None or float(stopped_at) != float(rung) or t.number in again
    return measured, gone_on
