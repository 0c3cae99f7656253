"""The `hydra/sweeper=nas` plugin, end to end through the example app in examples/sweeper_app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.search.halving import goes_on

from search_spaces import Arch

APP = Path(__file__).resolve().parent.parent / "examples" / "sweeper_app" / "train.py"


def _sweep(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess[str], optuna.Study]:
    done = subprocess.run(
        [sys.executable, str(APP), "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=900,
    )
    storage = f"sqlite:///{tmp_path / 'sweep' / 'study.db'}"
    return done, optuna.load_study(study_name="sweeper-example", storage=storage)


# The example with Optuna's Hyperband instead (single objective). A config file rather than
# overrides: OmegaConf cannot merge a dict override into the schema's `pruner: null`.
HYPERBAND = """\
defaults:
  - config
  - _self_
hydra:
  sweeper:
    pareto: false
    halving: null
    pruner: {_target_: optuna.pruners.HyperbandPruner, min_resource: 1, max_resource: 4, reduction_factor: 2}
"""


@pytest.mark.parametrize("mode", ["pareto-halving", "hyperband"])
def test_example_app_is_searched_with_budget_and_pruning(tmp_path: Path, mode: str) -> None:
    # keep 0.1 with 8 trials: a rung's quota is one, so after the first three a job goes on only
    # with the best accuracy measured there yet. With the app's 0.5 whether any job is stopped
    # depends on the machine's arithmetic (all five later trials may land on the front).
    keep = 0.1
    extra = [f"hydra.sweeper.halving.keep={keep}"]
    if mode == "hyperband":
        (tmp_path / "conf").mkdir()
        (tmp_path / "conf" / "hyperband.yaml").write_text(HYPERBAND)
        extra = ["--config-dir", str(tmp_path / "conf"), "--config-name", "hyperband"]
    done, study = _sweep(tmp_path, "hydra.sweeper.n_trials=8", "epochs=4", "train_fraction=0.3", *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    admitted = [t for t in study.trials if t.user_attrs.get("status") == "admitted"]
    states = [t.state for t in admitted]
    assert len(admitted) == 8 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert TrialState.PRUNED in states  # stopped through the job's trial handle
    assert TrialState.COMPLETE in states
    for t in admitted:
        arch = Arch.from_yaml(t.user_attrs["arch_yaml"])
        assert t.user_attrs["macs"] <= 2.0e6 and arch.resolution == 16 and arch.num_classes == 4
        if mode == "hyperband":
            if t.state == TrialState.PRUNED:
                assert 1 <= len(t.intermediate_values) <= 4  # Hyperband may stop a job at any rung
            else:
                assert t.value == t.user_attrs["val_acc"] and len(t.intermediate_values) == 4
            continue
        # At rungs 1 and 2, measured against the trials measured there before it (the basic
        # launcher runs a batch's jobs one after another, in trial order): a stopped job was outside
        # the best `keep` of the fronts, after at least min_trials - 1 = 3 others; one that went on
        # was inside, or among the first three (the sweeper's halving has no cap).
        passed = ["1", "2"] if t.state == TrialState.COMPLETE else ["1", "2"][: t.user_attrs["pruned_at"] - 1]
        for key in t.user_attrs["rung_val_acc"]:
            me = (-t.user_attrs["rung_val_acc"][key], t.user_attrs["macs"])
            others = [(-o.user_attrs["rung_val_acc"][key], o.user_attrs["macs"]) for o in admitted
                      if o.number < t.number and key in o.user_attrs.get("rung_val_acc", {})]
            assert (key in passed) == goes_on(me, others, keep, min_trials=4), (t.number, key)
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["rung_val_acc"][str(t.user_attrs["pruned_at"])] == t.user_attrs["val_acc"]
        else:
            assert t.values == [t.user_attrs["val_acc"], t.user_attrs["macs"] / 1e6]
    rejected = [t for t in study.trials if t.user_attrs.get("status") == "rejected"]
    assert all(t.user_attrs["macs"] > 2.0e6 for t in rejected)
    assert (tmp_path / "sweep" / "pareto.csv").read_text().startswith("trial,genotype,val_acc")
    assert list((tmp_path / "sweep" / "export").glob("trial_*.yaml"))


def test_failing_jobs_are_recorded_and_bounded(tmp_path: Path) -> None:
    done, study = _sweep(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failures=2", "data.name=nothing")
    assert done.returncode == 1
    assert "2 jobs failed in a row" in done.stderr
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 2
    assert all(t.user_attrs["failure"].startswith("ConfigError: data.name: unknown dataset 'nothing'") for t in failed)


@pytest.mark.parametrize("directions", [["maximize", "minimize"], ["maximize", "maximize", "minimize"]])
def test_a_job_in_a_multi_objective_sweep_without_halving_can_report(tmp_path: Path, directions: list[str]) -> None:
    """Optuna's `Trial.report` raises NotImplementedError with several objectives; the job's
    handle takes the report and never asks to stop."""
    from omegaconf import OmegaConf

    from nas.search import current_trial

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="multi", storage=storage, directions=directions)
    trial = study.ask()
    cfg = OmegaConf.create({"nas_trial": {"study": "multi", "storage": storage, "trial_id": trial._trial_id,
                                          "pruner": None, "halving": None, "pareto": True}})
    handle = current_trial(cfg)
    for epoch in (1, 2):
        handle.report(0.5, epoch)
        assert not handle.should_prune()
    assert handle.number == trial.number


def test_a_job_in_a_single_objective_sweep_without_halving_gets_optunas_trial(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from nas.search import current_trial

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="single", storage=storage, direction="maximize")
    trial = study.ask()
    cfg = OmegaConf.create({"nas_trial": {"study": "single", "storage": storage, "trial_id": trial._trial_id,
                                          "pruner": None, "halving": None, "pareto": False}})
    handle = current_trial(cfg)
    assert isinstance(handle, optuna.Trial)
    handle.report(0.5, 1)
    assert study.trials[0].intermediate_values == {1: 0.5}


# A user's app that returns what it should not, then what it should: one job per launch, in turn.
ODD_APP = """\
import sys
from pathlib import Path

import hydra

RETURNS = [None, "high", {"val_acc": 0.5}, "exit", 0.5, 0.6, 0.7]


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    turn = Path("turns")
    n = len(turn.read_text()) if turn.exists() else 0
    turn.write_text("x" * (n + 1))
    value = RETURNS[min(n, len(RETURNS) - 1)]
    if value == "exit":
        sys.exit(3)
    return value


if __name__ == "__main__":
    main()
"""
ODD_CONFIG = """\
defaults:
  - override hydra/sweeper: nas
  - _self_
hydra:
  sweeper:
    data_shape: {in_channels: 1, resolution: 16, num_classes: 4}
    budget: {mflops: 2.0}
    n_trials: 2
    study_name: odd
"""


def test_jobs_that_return_no_number_or_exit_fail_with_the_reason_and_the_sweep_goes_on(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(ODD_CONFIG)
    (tmp_path / "app.py").write_text(ODD_APP)
    done = subprocess.run([sys.executable, "app.py", "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=900)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    study = optuna.load_study(study_name="odd", storage=f"sqlite:///{tmp_path / 'sweep' / 'study.db'}")
    failures = [t.user_attrs["failure"] for t in study.trials if t.state == TrialState.FAIL]
    assert failures == [
        "job returned None; expected 1 finite number(s)",
        "job returned 'high'; expected 1 finite number(s)",
        "job returned {'val_acc': 0.5}; expected 1 finite number(s)",
        "the job exited (SystemExit: 3) instead of returning its objective(s)",
    ]
    assert [t.values[0] for t in study.trials if t.state == TrialState.COMPLETE and t.values[0] > 0] == [0.5, 0.6]
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert (tmp_path / "sweep" / "pareto.csv").is_file()


def test_a_sweep_resumed_with_another_budget_is_refused(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(ODD_CONFIG)
    (tmp_path / "app.py").write_text(ODD_APP.replace('RETURNS = [None, "high", {"val_acc": 0.5}, "exit", ', "RETURNS = ["))
    command = [sys.executable, "app.py", "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    again = subprocess.run([*command, "hydra.sweeper.budget.mflops=3"], cwd=tmp_path, capture_output=True, text=True,
                           check=False, timeout=900)
    assert "error: hydra.sweeper.study_name: study 'odd' already holds a different search (budget_mflops=2.0)" \
        in again.stderr, again.stderr[-3000:]


def test_a_sweep_started_in_the_background_stops_on_sigint(tmp_path: Path) -> None:
    """A non-interactive shell starts `&` jobs with SIGINT ignored; `kill -INT` still ends the sweep
    as Ctrl-C does (exit 130, "interrupted")."""
    import os
    import signal
    import time

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(ODD_CONFIG)
    (tmp_path / "app.py").write_text(ODD_APP.replace("    value = RETURNS", "    Path('started').touch()\n"
                                                     "    import time; time.sleep(120)\n    value = RETURNS"))
    command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", sys.executable, "app.py", "-m",
               f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    sweep = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists():
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.2)
    os.kill(sweep.pid, signal.SIGINT)
    try:
        _, stderr = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 130 and stderr.strip().splitlines()[-1] == "interrupted", stderr[-2000:]
