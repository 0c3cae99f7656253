"""The fidelity ladder (nas.search.ladder), promotion up it (nas.search.halving), continuation of a
run across rungs, and zero-cost pre-screening."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from nas.data import load_dataset
from nas.attrs import StudyAttr, TrialAttr
from nas.dominance import crowding_distances, nondominated_fronts
from nas.search import Halving, promoted, record_and_decide
from nas.errors import ConfigError
from nas.search.config import HalvingConfig
from nas.search.halving import expected_reach, goes_on, late_promotion, most_reaching
from nas.search.ladder import ladder_for
from nas.search.sampling import RungTPESampler, seen_at_their_rungs
from nas.training import RunSettings, Training, lr_at
from nas.apps import run_search


def test_fronts_of_a_hand_drawn_set() -> None:
    # Minimized (error, MMACs). Worked out on paper:
    #   a(1,5) b(2,2) c(4,1) are mutually non-dominated; d(3,4) is dominated by b only;
    #   e(5,5) is dominated by a, b, c and d; f(2,2) equals b.
    points = [(1, 5), (2, 2), (4, 1), (3, 4), (5, 5), (2, 2)]
    assert nondominated_fronts(points) == [[0, 1, 2, 5], [3], [4]]


def test_promotion_fills_the_quota_front_by_front_and_splits_the_last_by_crowding() -> None:
    others = [(1, 5), (2, 2), (4, 1), (3, 4), (5, 5)]  # fronts {a, b, c}, {d}, {e}
    # 6 points, keep 0.5: quota 3. (0.5, 9) joins the first front, which then holds 4 points:
    # crowding distances (worked out by hand) me inf, a 1.30, b 1.36, c inf: me, c and b go on.
    assert promoted((0.5, 9), others, keep=0.5)
    # The same set seen from a: first front, but the smallest crowding distance, so it stops.
    assert not promoted((1, 5), [(0.5, 9), (2, 2), (4, 1), (3, 4), (5, 5)], keep=0.5)
    # Behind three fronts holding 4 points (dominated by b and d): stopped.
    assert not promoted((3.5, 4.5), others, keep=0.5)
    # keep 1.0 never stops; a point dominating all goes on at any keep.
    assert promoted((6, 6), others, keep=1.0)
    assert promoted((0.1, 0.1), others, keep=0.01)


def test_crowding_distance_of_a_hand_worked_front() -> None:
    # me (0.5, 9), a (1, 5), b (2, 2), c (4, 1); ranges 3.5 and 8.
    # a: (2 - 0.5) / 3.5 + (9 - 2) / 8; b: (4 - 1) / 3.5 + (5 - 1) / 8; the extremes infinite.
    got = crowding_distances([(0.5, 9), (1, 5), (2, 2), (4, 1)])
    assert got[0] == got[3] == math.inf
    assert got[1] == pytest.approx(1.5 / 3.5 + 7 / 8) and got[2] == pytest.approx(3 / 3.5 + 4 / 8)


def _done(study: optuna.Study, acc_at_rung: float, macs: float) -> None:
    """A trial stopped at rung 0.5 (so it takes none of the places above it)."""
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={
        "macs": macs, TrialAttr.RUNG_VAL_ACC: {"0.5": acc_at_rung}, TrialAttr.PRUNED_AT: 0.5}))


def test_a_second_worker_reads_the_rungs_of_the_first(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"])
    for acc, macs in [(0.9, 2e6), (0.8, 1e6), (0.7, 3e6)]:
        _done(first, acc, macs)
    # Another process on the same storage.
    second = optuna.load_study(study_name="s", storage=url)
    halving = Halving(rungs=(0.5,), keep=0.5, min_trials=4)
    weak = second.ask()
    weak.set_user_attr("macs", 2.5e6)
    # (0.6, 2.5M) is dominated by (0.9, 2M) and (0.8, 1M); 4 points, quota 2: stopped.
    assert not record_and_decide(second, weak, 0.5, 0.6, halving, cost="macs")
    assert second.trials[weak.number].user_attrs[TrialAttr.RUNG_VAL_ACC] == {"0.5": 0.6}
    small = second.ask()
    small.set_user_attr("macs", 0.5e6)
    # The cheapest architecture is never dominated on (accuracy, MACs): it goes on...
    assert record_and_decide(second, small, 0.5, 0.3, halving, cost="macs")
    # ... but not when accuracy alone decides (5 points, quota 3, it is the worst).
    assert not record_and_decide(second, small, 0.5, 0.3, halving, cost=None)


def test_on_the_latency_axis_the_rungs_weigh_measured_milliseconds_not_macs() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, macs, ms in [(0.9, 1e6, 0.9), (0.8, 0.5e6, 0.8), (0.7, 0.8e6, 0.5)]:  # stopped there
        study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={
            "macs": macs, TrialAttr.LATENCY_MS: ms, TrialAttr.RUNG_VAL_ACC: {"0.5": acc},
            TrialAttr.PRUNED_AT: 0.5}))
    trial = study.ask()
    trial.set_user_attr("macs", 2e6)
    trial.set_user_attr(TrialAttr.LATENCY_MS, 0.2)
    halving = Halving((0.5,), keep=0.5, min_trials=4)
    # (0.6, 0.2 ms) is the fastest: the four form one front on latency, the quota of 2 goes to its
    # ends (infinite crowding distance), and it is one of them.
    assert record_and_decide(study, trial, 0.5, 0.6, halving, cost=TrialAttr.LATENCY_MS)
    # On MACs it is dominated by all three, and (0.9, 1M), (0.8, 0.5M) fill the quota.
    assert not record_and_decide(study, trial, 0.5, 0.6, halving, cost=TrialAttr.MACS)


def test_no_trial_is_stopped_before_a_rung_has_seen_min_trials(tmp_path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    _done(study, 0.9, 1e6)
    trial = study.ask()
    trial.set_user_attr("macs", 5e6)
    assert record_and_decide(study, trial, 0.5, 0.1, Halving((0.5,), keep=0.5, min_trials=3), cost="macs")


def test_the_ladder_estimate_counts_min_trials_the_cap_and_the_references() -> None:
    # keep 0.5, min_trials 3, 6 trials: the first two go on regardless, and fill the places of
    # the 3rd and 4th arrivals (ceil(3/2) = ceil(4/2) = 2). The 5th is in the best 3 of 5 with
    # probability 3/5 and finds a third place; the 6th (best 3 of 6: 1/2) finds one only if the
    # 5th did not: 2 + 3/5 + (2/5)(1/2) = 2.8.
    one_rung = Halving((1,), keep=0.5, min_trials=3, cap=True)
    assert expected_reach(one_rung, 6) == pytest.approx([6, 2 + 3 / 5 + 2 / 5 * 1 / 2])
    # Three references of the six always go on and take no place: the 4th arrival (first searched)
    # goes on with 2/4, the 5th with 3/5 unless the 4th took the one place of two searched, the 6th
    # with 3/6 (two places of three): 3 + 1/2 + (1/2)(3/5) + 1/2.
    assert expected_reach(one_rung, 3, 3) == pytest.approx([6, 3 + 1 / 2 + 1 / 2 * 3 / 5 + 1 / 2])
    # Fewer trials than min_trials: nothing is stopped anywhere.
    assert expected_reach(Halving((1, 2), keep=0.33, min_trials=4), 3) == [3, 3, 3]
    settings = RunSettings(epochs=1, batch_size=32, max_train_images=20000)
    ladder = ladder_for(settings, 54000, eta=3, screen_images=None, restart=True)
    halving = Halving(ladder.images[:-1], keep=0.33, min_trials=4, cap=True)
    line = ladder.describe(20, halving, references=2)
    reach = expected_reach(halving, 18, 2)
    # At most: ceil(0.33 * 18) = 6 searched past the screening rung, then max(3, ceil(0.33 * 6)) = 3.
    assert f"about 20, {reach[1]:.0f}, {reach[2]:.0f} reach each rung, at most 20, 8, 5 " in line
    images = 20 * 2240 + reach[1] * (6688 - 2240) + reach[2] * (20000 - 6688)
    most = 20 * 2240 + 8 * (6688 - 2240) + 5 * (20000 - 6688)
    assert f"about {images:,.0f} training images in all, at most {most:,.0f}" in line
    assert "all 20 reach each rung; 400,000 training images in all" in ladder.describe(20, None, references=2)
    # Without the cap (the default) the plan has no bound to print, and more climb than without it.
    uncapped = Halving(ladder.images[:-1], keep=0.33, min_trials=4)
    assert "at most" not in ladder.describe(20, uncapped, references=2)
    assert most_reaching(uncapped, 18, 2) == [20, 20, 20]
    assert expected_reach(uncapped, 18, 2)[2] > reach[2]


def test_the_most_reaching_each_rung_worked_by_hand() -> None:
    # 18 searched: ceil(0.25 * 18) = 5 past the screening rung, then ceil(0.5 * 5) = 3, which the
    # min_trials - 1 = 3 that go on regardless equal; the 2 references on top.
    capped = Halving((1, 2), keep=0.5, min_trials=4, screen_keep=0.25, cap=True)
    assert most_reaching(capped, 18, 2) == [20, 7, 5]
    # min_trials decides where the shares would keep fewer: max(3, ceil(0.1 * 10)) at each rung.
    assert most_reaching(Halving((1, 2), keep=0.1, min_trials=4, cap=True), 10) == [10, 3, 3]
    # Never more than arrive.
    assert most_reaching(Halving((1,), keep=0.5, min_trials=6, cap=True), 2, 1) == [3, 3]


def _climb_one_rung(study: optuna.Study, acc: float, halving: Halving, **attrs) -> bool:
    """A trial measured at rung 0.5 as the search does it: stopped ones marked and told pruned."""
    trial = study.ask()
    for key, value in {"macs": 1e6, **attrs}.items():
        trial.set_user_attr(key, value)
    go_on = record_and_decide(study, trial, 0.5, acc, halving, cost="macs")
    if not go_on:
        trial.set_user_attr(TrialAttr.PRUNED_AT, 0.5)
        study.tell(trial, state=TrialState.PRUNED)
    return go_on


def test_the_share_caps_how_many_go_on_when_later_trials_are_better() -> None:
    # Each arrival beats every one before it (same MACs), so each is the best when it arrives; the
    # rule without its cap would let all six on. keep 0.5, no trial going on regardless: the k-th
    # goes on only while fewer than ceil(k/2) have: places 1, 1, 2, 2, 3, 3.
    study = optuna.create_study(directions=["maximize", "minimize"])
    halving = Halving((0.5,), keep=0.5, min_trials=1, cap=True)
    decisions = [_climb_one_rung(study, acc, halving) for acc in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)]
    assert decisions == [True, False, True, False, True, False]
    # Without the cap (the default), all six go on.
    study = optuna.create_study(directions=["maximize", "minimize"])
    uncapped = Halving((0.5,), keep=0.5, min_trials=1)
    assert all(_climb_one_rung(study, acc, uncapped) for acc in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9))
    assert all(promoted((-acc, 1e6), [(-a, 1e6) for a in (0.5, 0.6, 0.7, 0.8, 0.85)][:k], 0.5)
               for k, acc in enumerate((0.5, 0.6, 0.7, 0.8, 0.85, 0.9)))
    # The pure rule agrees: the 6th, promoted, with 3 of 6 places taken, and with 2.
    assert not goes_on((-0.9,), [(-0.5,)] * 5, 0.5, min_trials=1, searched=6, gone_on=3)
    assert goes_on((-0.9,), [(-0.5,)] * 5, 0.5, min_trials=1, searched=6, gone_on=2)


def test_references_and_failed_trials_take_no_place_but_running_ones_do() -> None:
    halving = Halving((0.5,), keep=0.5, min_trials=1, cap=True)

    def study_with(*others: tuple[TrialState, dict]) -> optuna.Study:
        study = optuna.create_study(directions=["maximize", "minimize"])
        for state, attrs in others:
            study.add_trial(optuna.trial.create_trial(
                state=state, values=[0.4, 1.0] if state == TrialState.COMPLETE else None,
                user_attrs={"macs": 1e6, TrialAttr.RUNG_VAL_ACC: {"0.5": 0.4}, **attrs}))
        return study

    reference = (TrialState.COMPLETE, {TrialAttr.REFERENCE: "shufflenet_v1_g3_0.5x"})
    failed = (TrialState.FAIL, {})
    # A weaker reference (gone on: it always does) and a weaker failed trial: 0.9 leads the three
    # (quota 2) and is the only searched trial measured, so its place (ceil(0.5 * 1)) is free.
    assert _climb_one_rung(study_with(reference, failed), 0.9, halving)
    # A searched trial that went on (complete, not stopped there) takes the one place of two.
    assert not _climb_one_rung(study_with((TrialState.COMPLETE, {})), 0.9, halving)
    # So does one still running there (gone on, or deciding now); one stopped there does not.
    assert not _climb_one_rung(study_with((TrialState.RUNNING, {})), 0.9, halving)
    assert _climb_one_rung(study_with((TrialState.PRUNED, {TrialAttr.PRUNED_AT: 0.5})), 0.9, halving)


def test_the_screening_rung_keeps_its_own_share() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for acc, macs in [(0.9, 1e6), (0.8, 1e6), (0.7, 1e6), (0.6, 1e6), (0.5, 1e6)]:  # stopped at 300
        study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={
            "macs": macs, TrialAttr.RUNG_VAL_ACC: {"100": acc, "300": acc}, TrialAttr.PRUNED_AT: 300}))
    halving = Halving((100, 300), keep=0.5, min_trials=4, screen_keep=0.2)
    config = HalvingConfig(keep=0.5, screen_keep=0.2, late=False)
    assert Halving.of(config, (100, 300), pruner=None) == halving
    # Equal MACs, so accuracy decides: the new trial at 0.75 is third of 6. At the screening rung
    # (100 images) the quota is ceil(0.2 * 6) = 2: stopped; at the rung above, ceil(0.5 * 6) = 3: on.
    trial = study.ask()
    trial.set_user_attr("macs", 1e6)
    assert not record_and_decide(study, trial, 100, 0.75, halving, cost="macs")
    other = study.ask()
    other.set_user_attr("macs", 1e6)
    assert record_and_decide(study, other, 300, 0.75, halving, cost="macs")
    # The estimate uses each rung's share, with the cap: 8 trials, min_trials 3 (2 go on
    # regardless and fill the screening rung's places up to the 8th arrival's, ceil(0.25 * 8) = 2);
    # above it, at keep 1.0, both go on.
    two_shares = Halving((1, 2), keep=1.0, min_trials=3, screen_keep=0.25, cap=True)
    assert expected_reach(two_shares, 8) == pytest.approx([8, 2, 2])
    # With 9 arrivals a third place opens for the 9th, in the best ceil(0.25 * 9) = 3 of 9: 1/3.
    assert expected_reach(two_shares, 9) == pytest.approx([9, 2 + 1 / 3, 2 + 1 / 3])
    # A rung the rule does not know is a caller's mistake, not a decision.
    with pytest.raises(ValueError, match="rung 200 is not one of the rule's rungs"):
        record_and_decide(study, other, 200, 0.75, halving, cost="macs")


@pytest.mark.parametrize("screen_keep", [None, 0.15])
def test_the_ladder_estimate_agrees_with_the_rule_played_out(screen_keep: float | None) -> None:
    # Play the promotion rule itself on random searches: 2 references first, then 16 searched
    # trials, arriving at each rung in the order they started, a fresh accuracy at each rung.
    halving, draws = Halving((1, 2), keep=0.33, min_trials=4, screen_keep=screen_keep, cap=True), 3000
    rng = random.Random(0)
    totals = [0, 0]
    for _ in range(draws):
        alive = list(range(18))
        for rung in range(2):
            measured, going = [], []
            for i in alive:
                me = (-rng.random(),)
                searched = sum(j >= 2 for j in alive[:len(measured)]) + 1  # measured here, me included
                gone_on = sum(j >= 2 for j in going)
                if i < 2 or goes_on(me, measured, halving.keep_at(rung), min_trials=halving.min_trials,
                                    searched=searched, gone_on=gone_on):
                    going.append(i)
                measured.append(me)
            alive = going
            totals[rung] += len(alive)
    played = [t / draws for t in totals]
    assert expected_reach(halving, 16, 2)[1:] == pytest.approx(played, abs=0.1)
    assert max(most_reaching(halving, 16, 2)[1:]) <= 16


def _at_rungs(number: int, state: TrialState, rungs: dict[str, float], **attrs) -> optuna.trial.FrozenTrial:
    """A searched trial as the rule reads it: 1 MMAC, its accuracy at each rung reached."""
    values = [0.0, 1.0] if state == TrialState.COMPLETE else None
    trial = optuna.trial.create_trial(state=state, values=values, user_attrs={
        "macs": 1e6, TrialAttr.STATUS: "admitted", TrialAttr.RUNG_VAL_ACC: rungs, **attrs})
    trial.number = number
    return trial


def test_a_stopped_trial_is_promoted_later_once_its_rung_has_filled() -> None:
    halving = Halving((100, 300), keep=0.5, min_trials=2, late=True)
    stopped = TrialState.PRUNED
    trials = [
        # At rung 100, equal MACs: trial 0 went on; trial 1 came second of two (quota ceil(0.5 * 2) = 1)
        # and was stopped; trials 2 and 3 came later and were stopped too.
        _at_rungs(0, TrialState.COMPLETE, {"100": 0.9, "300": 0.9, "900": 0.9}),
        _at_rungs(1, stopped, {"100": 0.6}, pruned_at=100),
        _at_rungs(2, stopped, {"100": 0.5}, pruned_at=100),
        _at_rungs(3, stopped, {"100": 0.4}, pruned_at=100),
    ]
    # Now the rung has seen four: quota ceil(0.5 * 4) = 2, and trial 1 is second.
    assert late_promotion(trials, halving, cost="macs") is trials[1]
    # Trained again (running, or finished higher up): not promoted twice, and trial 2 is third of the four.
    again = _at_rungs(4, TrialState.RUNNING, {"100": 0.6}, promoted_from=1, status="promoted")
    assert late_promotion([*trials, again], halving, cost="macs") is None
    # A fifth network (0.3) opens a third place, trial 2's: the network trained again counts once at
    # rung 100 (counted twice, six points, quota 3, and trial 2 would be fourth).
    fifth = _at_rungs(5, stopped, {"100": 0.3}, pruned_at=100)
    assert late_promotion([*trials, again, fifth], halving, cost="macs") is trials[2]
    # A failed one gives the place back.
    failed = _at_rungs(4, TrialState.FAIL, {"100": 0.6}, promoted_from=1, status="promoted")
    assert late_promotion([*trials, failed], halving, cost="macs") is trials[1]
    # The highest rung first: trial 6, stopped at rung 300 behind trial 0 (second of two), is promoted
    # there once a third trial (trial 7, 0.3) was measured: quota ceil(0.5 * 3) = 2; trial 1, second
    # of six at rung 100 (quota 3), waits.
    upper = [_at_rungs(6, stopped, {"100": 0.55, "300": 0.8}, pruned_at=300),
             _at_rungs(7, stopped, {"100": 0.52, "300": 0.3}, pruned_at=300)]
    assert late_promotion([*trials, *upper], halving, cost="macs") is upper[0]
    assert late_promotion([*trials, *upper[1:]], halving, cost="macs") is trials[1]
    assert not Halving.of(HalvingConfig(late=False), (100, 300), pruner=None).late  # off: at arrival only


def test_the_ladder_estimate_with_late_promotion_agrees_with_the_rule_played_out() -> None:
    # By hand, keep 0.5, min_trials 2, 3 arrivals: the 1st goes on regardless; the 2nd at arrival
    # if best of 2 (1/2), else later if the 3rd does not beat it (1/3), so 1/2 + 1/2 * 1/3; the 3rd
    # if in the best ceil(3/2) = 2 of 3: 2/3. At arrival alone the 2nd goes on with 1/2.
    one_rung = Halving((1,), keep=0.5, min_trials=2)
    late = dataclasses.replace(one_rung, late=True)
    assert expected_reach(late, 3) == pytest.approx([3, 1 + 2 / 3 + 2 / 3])
    assert expected_reach(one_rung, 3) == pytest.approx([3, 1 + 1 / 2 + 2 / 3])
    # As above, and each trial stopped at a rung is judged again after every later arrival there
    # (a worker frees about that often), going on once the rule promotes it among all measured.
    halving, draws = Halving((1, 2), keep=0.25, min_trials=4, screen_keep=0.15, late=True), 600
    rng = random.Random(0)
    totals = [0, 0]
    for _ in range(draws):
        alive = list(range(18))
        for rung in range(2):
            keep = halving.keep_at(rung)
            measured, going, waiting = [], [], []
            for i in alive:
                me = (-rng.random(),)
                if i < 2 or goes_on(me, measured, keep, min_trials=halving.min_trials):
                    going.append(i)
                else:
                    waiting.append((i, me))
                measured.append(me)
                for j, point in list(waiting):
                    if promoted(point, [p for p in measured if p is not point], keep):
                        waiting.remove((j, point))
                        going.append(j)
            alive = going
            totals[rung] += len(alive)
    played = [t / draws for t in totals]
    late = expected_reach(halving, 16, 2)
    assert late[1:] == pytest.approx(played, abs=0.15), (late, played)
    at_arrival = expected_reach(Halving((1, 2), keep=0.25, min_trials=4, screen_keep=0.15), 16, 2)
    assert late[2] > at_arrival[2]


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 14 * 14, 4))


@pytest.mark.parametrize("rewarm", [True, False], ids=["restart", "restart_no_warmup"])
def test_a_run_continued_rung_by_rung_is_the_run_made_in_one_go(rewarm: bool) -> None:
    data = load_dataset("synthetic", resolution=16)
    settings = RunSettings(epochs=3, batch_size=16, lr=0.1, max_train_images=160, seed=5)  # 10 steps an epoch
    ladder = (4, 11, 30)  # rungs inside epochs, across an epoch's end, and at the end
    climbed, whole = _net(), _net()
    run = Training(climbed, data.train, settings, mean=data.mean, std=data.std, device="cpu", restarts=ladder[:-1],
                   rewarm=rewarm)
    accuracies = []
    for steps in ladder:
        run.run_to(steps)
        accuracies.append(run.evaluate(data.val))  # evaluating between rungs changes nothing
    one_go = Training(whole, data.train, settings, mean=data.mean, std=data.std, device="cpu", restarts=ladder[:-1],
                      rewarm=rewarm)
    one_go.run_to(30)
    assert run.step == one_go.step == 30 and run.images_seen == 480
    assert all(torch.equal(a, b) for a, b in zip(climbed.state_dict().values(), whole.state_dict().values(), strict=True))
    assert run.loss_sum == one_go.loss_sum and all(0.0 <= a <= 1.0 for a in accuracies)


def test_the_schedule_restarts_at_each_rung() -> None:
    s = RunSettings(lr=0.1, schedule="onecycle", warmup=0.2)
    # Worked out by hand: one-cycle over a segment of n steps is lr * p / 0.2 while p = k / n < 0.2,
    # then lr * (1 - p) / 0.8. Rungs at steps 10 and 30 of 90: segments of 10, 20 and 60 steps.
    assert lr_at(1, 90, s, (10, 30)) == pytest.approx(0.1 * 0.1 / 0.2)
    assert lr_at(9, 90, s, (10, 30)) == pytest.approx(0.1 * 0.1 / 0.8)  # annealed at the first rung
    assert lr_at(10, 90, s, (10, 30)) == 0.0  # warm restart
    assert lr_at(11, 90, s, (10, 30)) == pytest.approx(0.1 * 0.05 / 0.2)
    assert lr_at(30 + 30, 90, s, (10, 30)) == pytest.approx(0.1 * 0.5 / 0.8)
    assert lr_at(45, 90, s) == pytest.approx(0.1 * 0.5 / 0.8)  # no restarts: one schedule over the run
    # Without a second warm-up, the first segment is the same and the later ones decay linearly
    # from the peak: lr * (1 - k / n) at step k of a segment of n.
    assert lr_at(1, 90, s, (10, 30), rewarm=False) == pytest.approx(0.1 * 0.1 / 0.2)
    assert lr_at(10, 90, s, (10, 30), rewarm=False) == pytest.approx(0.1)  # restarts at the peak
    assert lr_at(11, 90, s, (10, 30), rewarm=False) == pytest.approx(0.1 * (1 - 1 / 20))
    assert lr_at(30, 90, s, (10, 30), rewarm=False) == pytest.approx(0.1)
    assert lr_at(30 + 45, 90, s, (10, 30), rewarm=False) == pytest.approx(0.1 * (1 - 45 / 60))


def test_restarts_without_warm_up_reach_each_trials_training(make_cfg, monkeypatch) -> None:
    from nas.search import objective

    seen = []

    def spy(*args, **kwargs):
        run = Training(*args, **kwargs)
        seen.append((run.restarts, run.rewarm))
        return run

    monkeypatch.setattr(objective, "Training", spy)
    cfg = make_cfg("search.n_trials=1", "sampler=random", "proxy.rung_schedule=restart_no_warmup")
    run_search(cfg, progress=False)
    # Synthetic at FAST: 324 training images, batch 64, 5 steps an epoch, 3 epochs: a top of 15
    # steps, rungs at ceil(15 / 3) = 5 and ceil(5 / 3) = 2 steps.
    assert seen == [((2, 5), False)]


def test_the_ladder_divides_the_top_rung_by_eta() -> None:
    settings = RunSettings(epochs=3, batch_size=32, max_train_images=20000)
    ladder = ladder_for(settings, 54000, eta=3, screen_images=None, restart=True)
    top = 3 * (20000 // 32)  # 1875 steps: 60,000 images
    assert ladder.steps == (math.ceil(math.ceil(top / 3) / 3), math.ceil(top / 3), top) == (209, 625, 1875)
    assert ladder.images == (209 * 32, 625 * 32, 60000) and ladder.restarts == (209, 625) and ladder.rewarm
    peak = ladder_for(settings, 54000, eta=3, screen_images=None, restart=True, rewarm=False)
    assert peak.restarts == (209, 625) and not peak.rewarm
    deeper = ladder_for(settings, 54000, eta=3, screen_images=2000, restart=False)
    assert deeper.steps == (70, 209, 625, 1875) and deeper.restarts == ()  # 70 steps = 2,240 >= 2,000 images
    with pytest.raises(ConfigError) as info:
        ladder_for(settings, 54000, eta=3, screen_images=70000, restart=True)
    assert info.value.field == "proxy.screen_images" and "above the top rung (60000" in str(info.value)


@pytest.mark.parametrize("cap", [False, True])
def test_search_with_halving_stops_dominated_trials_and_fronts_only_finished_ones(
        make_cfg, cap: bool) -> None:
    cfg = make_cfg("search.n_trials=8", "search.halving.enabled=true", "search.halving.min_trials=2",
                   "search.halving.keep=0.3", "search.halving.screen_keep=null", "search.halving.late=false",
                   "sampler=random", f"search.halving.cap={cap}")  # decided at arrival (the next test: later)
    result = run_search(cfg, progress=False)
    study = optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)
    admitted = [t for t in study.trials if t.user_attrs.get("status") == "admitted"]
    pruned = [t for t in admitted if t.state == TrialState.PRUNED]
    assert len(admitted) == 8 == result.trained and len(pruned) == result.pruned > 0
    for t in pruned:
        assert t.user_attrs["pruned_at"] in (128, 320) and t.user_attrs["train_s"] > 0  # the rungs below the top
        assert t.user_attrs["val_acc"] == t.user_attrs[TrialAttr.RUNG_VAL_ACC][f"{t.user_attrs['pruned_at']:g}"]
        # It really was behind the quota at that rung, or (cap) found its places taken, recomputed from
        # the stored rungs (one worker: the trials before it were decided before it).
        key = f"{t.user_attrs['pruned_at']:g}"
        before = [o for o in admitted if o.number < t.number and key in o.user_attrs.get(TrialAttr.RUNG_VAL_ACC, {})]
        me = (-t.user_attrs["val_acc"], t.user_attrs["macs"])
        others = [(-o.user_attrs[TrialAttr.RUNG_VAL_ACC][key], o.user_attrs["macs"]) for o in before]
        searched = [o for o in before if not o.user_attrs.get(TrialAttr.REFERENCE)]
        gone_on = sum(o.user_attrs.get("pruned_at") != t.user_attrs["pruned_at"] for o in searched)
        assert len(others) + 1 >= 2
        assert not goes_on(me, others, 0.3, min_trials=2, searched=len(searched) + 1 if cap else None,
                           gone_on=gone_on)
    front_numbers = {c.trial for c in result.front}
    assert front_numbers and front_numbers <= {t.number for t in admitted if t.state == TrialState.COMPLETE}


def test_search_trains_again_the_stopped_networks_its_rungs_promote_later(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=8", "search.halving.enabled=true", "search.halving.min_trials=2",
                   "search.halving.keep=0.5", "search.halving.screen_keep=null", "sampler=random",
                   "search.seed=4")
    result = run_search(cfg, progress=False)
    study = optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)
    trials = study.trials
    again = [t for t in trials if TrialAttr.PROMOTED_FROM in t.user_attrs]
    assert again, "this seed's search promotes a stopped trial later"
    assert result.trained == 8 == sum(t.user_attrs.get("status") == "admitted" for t in trials)  # no slot
    assert len({t.user_attrs[TrialAttr.PROMOTED_FROM] for t in again}) == len(again)  # none twice
    for t in again:
        first = trials[t.user_attrs[TrialAttr.PROMOTED_FROM]]
        stopped_at = f"{first.user_attrs['pruned_at']:g}"
        assert first.state == TrialState.PRUNED and t.user_attrs["status"] == "promoted"
        assert t.user_attrs["genotype"] == first.user_attrs["genotype"]
        # The same network trained again with the same seed: the same accuracy at every rung both reached.
        rungs = first.user_attrs[TrialAttr.RUNG_VAL_ACC]
        assert {k: t.user_attrs[TrialAttr.RUNG_VAL_ACC][k] for k in rungs} == rungs
        assert len(t.user_attrs[TrialAttr.RUNG_VAL_ACC]) > len(rungs)  # and it climbed past where it stopped
        # When it was queued (one worker: just before its trial began) the rule promoted it among the
        # networks measured at that rung by then, each once: recomputed from the stored rungs.
        seen = [o for o in trials if o.number < t.number and o.number != first.number
                and stopped_at in o.user_attrs.get(TrialAttr.RUNG_VAL_ACC, {})
                and o.user_attrs.get(TrialAttr.PROMOTED_FROM) is None]
        others = [(-o.user_attrs[TrialAttr.RUNG_VAL_ACC][stopped_at], o.user_attrs["macs"]) for o in seen]
        assert promoted((-rungs[stopped_at], first.user_attrs["macs"]), others, 0.5)
    # The ones that reached the top are trained networks like any other: weights kept, on the front if
    # they belong there; the stopped first trials never are.
    for t in again:
        if t.state == TrialState.COMPLETE:
            assert (Path(cfg.output_dir) / t.user_attrs["weights"]).is_file()
    assert not {c.trial for c in result.front} & {t.user_attrs[TrialAttr.PROMOTED_FROM] for t in again}


def _rung_trial(state: TrialState, rungs: dict[str, float], macs: float, x: float | None = None,
                values: list[float] | None = None, **attrs: object) -> optuna.trial.FrozenTrial:
    """A finished trial as the search records it: accuracy at each rung reached, its MACs."""
    return optuna.trial.create_trial(
        state=state, values=values, params={} if x is None else {"x": x},
        distributions={} if x is None else {"x": optuna.distributions.FloatDistribution(0, 1)},
        user_attrs={TrialAttr.RUNG_VAL_ACC: rungs, TrialAttr.MACS: macs, **attrs},
    )


def test_the_sampler_sees_each_trial_at_its_highest_rung_and_not_the_references() -> None:
    rungs3 = {"4448": 0.70, "13344": 0.80, "40000": 0.86}
    trials = [
        _rung_trial(TrialState.COMPLETE, {**rungs3, "40000": 0.88}, 4.46e6, values=[0.88, 4.46],
                    reference="shufflenet_v1_g3_0.37x"),
        _rung_trial(TrialState.PRUNED, {"4448": 0.81}, 1.2e6, x=0.1, latency_ms=0.5),  # stopped at rung 0
        _rung_trial(TrialState.PRUNED, {"4448": 0.70, "13344": 0.79}, 3.0e6, x=0.2, latency_ms=0.9),  # rung 1
        _rung_trial(TrialState.COMPLETE, rungs3, 2.0e6, x=0.3, values=[0.86, 2.0], latency_ms=0.7),  # the top
        optuna.trial.create_trial(state=TrialState.PRUNED, params={"x": 0.4}, user_attrs={TrialAttr.MACS: 1e6},
                                  distributions={"x": optuna.distributions.FloatDistribution(0, 1)}),  # no rung
    ]
    for number, t in enumerate(trials):
        t.number = number
    seen = seen_at_their_rungs(trials, "pareto")
    # Hand-computed: (rung number + accuracy at the highest rung, MMACs); the reference left out, the
    # trial without rungs (pre-screened) left as it was.
    assert [t.number for t in seen] == [1, 2, 3, 4]
    assert [t.state for t in seen] == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    assert [t.values for t in seen[:3]] == [pytest.approx([0.81, 1.2]), pytest.approx([1.79, 3.0]),
                                            pytest.approx([2.86, 2.0])]
    assert seen[3] is trials[4] and seen[3].values is None
    assert trials[1].state == TrialState.PRUNED and trials[3].values == [0.86, 2.0]  # the study's own untouched
    assert [t.values for t in seen_at_their_rungs(trials, "latency")[:3]] == [
        pytest.approx([0.81, 0.5]), pytest.approx([1.79, 0.9]), pytest.approx([2.86, 0.7])]
    assert [t.values for t in seen_at_their_rungs(trials, "accuracy")[:3]] == [
        pytest.approx([0.81]), pytest.approx([1.79]), pytest.approx([2.86])]
    assert seen_at_their_rungs(trials, None) is trials  # not a search's study: plain TPE


def test_the_sampler_sees_a_network_promoted_later_once_at_its_highest_rung() -> None:
    stopped = _rung_trial(TrialState.PRUNED, {"4448": 0.80}, 1.0e6, x=0.1, pruned_at=4448)
    again = _rung_trial(TrialState.RUNNING, {"4448": 0.80}, 1.0e6, x=0.1, promoted_from=0)
    stopped.number, again.number = 0, 1
    # Still climbing: TPE sees the stopped trial (and ignores the running one, as Optuna does).
    assert [(t.number, t.values) for t in seen_at_their_rungs([stopped, again], "pareto")] == [
        (0, pytest.approx([0.80, 1.0])), (1, None)]
    # Finished higher up: only the trial trained again, at its rung 1.
    done = _rung_trial(TrialState.PRUNED, {"4448": 0.80, "13344": 0.85}, 1.0e6, x=0.1, promoted_from=0)
    done.number = 1
    assert [(t.number, t.values) for t in seen_at_their_rungs([stopped, done], "pareto")] == [
        (1, pytest.approx([1.85, 1.0]))]


@pytest.mark.parametrize("sampler_class", [optuna.samplers.TPESampler, RungTPESampler])
def test_tpe_learns_from_the_trials_that_climbed_higher(sampler_class) -> None:
    # Ten stopped trials at the same MACs: eight with x near 0.1 stopped at the screening rung, two
    # with x near 0.9 one rung higher (and less accurate there); and the reference at the top. The
    # good set (2 of the 10 searched) should be the two that climbed higher, and the draws follow
    # them. Optuna's own split ties every stopped trial of a multi-objective study and takes the
    # reference and the first-numbered stopped trial (x = 0.05): the control, which draws between.
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=sampler_class(seed=0, n_startup_trials=5, multivariate=True, group=True))
    study.set_user_attr(StudyAttr.OBJECTIVE, "pareto")
    study.add_trial(_rung_trial(TrialState.COMPLETE, {"1": 0.6, "3": 0.7, "9": 0.8}, 2e6, values=[0.8, 2.0],
                                reference="shufflenet_v1_g3_0.37x"))
    for i in range(8):
        study.add_trial(_rung_trial(TrialState.PRUNED, {"1": 0.65 + 0.01 * i}, 2e6, x=0.05 + 0.02 * i))
    for i in range(2):
        study.add_trial(_rung_trial(TrialState.PRUNED, {"1": 0.5, "3": 0.55 + 0.01 * i}, 2e6, x=0.85 + 0.05 * i))
    drawn = []
    for _ in range(20):
        trial = study.ask()
        drawn.append(trial.suggest_float("x", 0, 1))
        study.tell(trial, state=TrialState.FAIL)  # out of the next draws' model
    near_the_climbers = sum(x >= 0.75 for x in drawn) / len(drawn)
    if sampler_class is RungTPESampler:
        assert near_the_climbers >= 0.9, drawn
    else:
        assert near_the_climbers <= 0.1, drawn


def test_prescreen_trains_the_best_scored_candidate(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=2", "search.prescreen=naswot", "search.prescreen_candidates=3",
                   "sampler=random")
    result = run_search(cfg, progress=False)
    study = optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)
    trained = [t for t in study.trials if t.user_attrs.get("status") == "admitted"]
    assert len(trained) == 2 == result.trained and result.prescreened == 6
    for t in trained:
        group = [study.trials[n] for n in t.user_attrs["prescreened_from"]]
        assert len(group) == 3 and all(g.state == TrialState.PRUNED for g in group)
        best = max(group, key=lambda g: g.user_attrs["zc_naswot"])
        assert t.params == best.params and t.user_attrs["genotype"] == best.user_attrs["genotype"]
        assert all(math.isfinite(g.user_attrs["zc_naswot"]) for g in group)
