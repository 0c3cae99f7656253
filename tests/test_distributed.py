"""Hydra multirun and many workers on one study, with real PostgreSQL and Redis servers."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nas.apps import run_search
from nas.errors import ConfigError

from .conftest import FAST

SEARCH = ["-m", "nas", "search"]


def _search(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, *SEARCH, *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=900, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _check_complete(study: optuna.Study, n_trials: int, pareto_csv: Path) -> list[optuna.trial.FrozenTrial]:
    """Exactly n trained trials, none running, and pareto.csv equal to their non-dominated set."""
    trained = [t for t in study.trials
               if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.user_attrs.get("status") == "admitted"]
    assert len(trained) == n_trials
    assert len({t.number for t in trained}) == n_trials
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    # The front is made of the trials trained to the end; those stopped at a rung are not in it.
    points = {t.number: (t.user_attrs["val_acc"], t.user_attrs["macs"]) for t in trained if t.state == TrialState.COMPLETE}
    front = {n for n, (a, m) in points.items()
             if not any(a2 >= a and m2 <= m and (a2 > a or m2 < m) for a2, m2 in points.values())}
    with open(pareto_csv) as f:
        rows = list(csv.DictReader(f))
    assert {int(r["trial"]) for r in rows if r["on_front"] == "true"} == front
    for r in rows:
        acc, macs = points[int(r["trial"])]
        assert float(r["val_acc"]) == pytest.approx(acc, abs=5e-5)
        assert float(r["mmacs"]) == pytest.approx(macs / 1e6, abs=5e-4)
    return trained


def test_four_workers_on_postgres_train_exactly_n(tmp_path: Path, postgres_url: str) -> None:
    out = tmp_path / "runs" / "pg"
    _search("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4", "search.worker=0,1,2,3",
            *FAST, "search.n_trials=12", "storage=postgres", f"storage.url={postgres_url}",
            "study.name=pg", f"output_dir={out}", cwd=tmp_path)
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    trained = _check_complete(study, 12, out / "pareto.csv")
    assert len({t.user_attrs["worker"] for t in study.trials}) == 4  # every worker sampled
    assert len({t.user_attrs["worker"] for t in trained}) >= 2  # and the training was shared
    assert sorted(p.name for p in out.glob("config-worker*.yaml")) == [f"config-worker{i}.yaml" for i in range(4)]


def test_multirun_over_two_budgets_gives_two_studies_each_within_its_budget(tmp_path: Path) -> None:
    done = _search("-m", *FAST, "budget.mflops=0.6,1.2", "search.n_trials=2", cwd=tmp_path)
    for budget in (0.6, 1.2):
        name = f"hybrid-synthetic-{budget}M"
        study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'runs' / name / 'study.db'}")
        trained = _check_complete(study, 2, tmp_path / "runs" / name / "pareto.csv")
        assert all(t.user_attrs["macs"] <= budget * 1e6 for t in trained)
        assert study.user_attrs["budget_mflops"] == budget
    (summary,) = (tmp_path / "runs" / "multirun").glob("*/summary.md")
    text = summary.read_text()
    assert "| hybrid-synthetic-0.6M | hybrid | 0.6 | 2 |" in text and "| hybrid-synthetic-1.2M | hybrid | 1.2 | 2 |" in text
    assert "summary.md" in done.stdout


def test_two_workers_on_a_journal_file(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "j"
    _search("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "search.worker=0,1", *FAST,
            "search.n_trials=4", "storage=journal", "study.name=j", f"output_dir={out}", cwd=tmp_path)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(out / "journal.log")))
    _check_complete(optuna.load_study(study_name="j", storage=storage), 4, out / "pareto.csv")


def test_journal_on_redis(make_cfg, redis_url: str) -> None:
    cfg = make_cfg("search.n_trials=2", "storage=journal", f"storage.url={redis_url}", name="r")
    assert run_search(cfg, progress=False).trained == 2
    from optuna.storages.journal import JournalRedisBackend, JournalStorage

    study = optuna.load_study(study_name="r", storage=JournalStorage(JournalRedisBackend(redis_url)))
    _check_complete(study, 2, Path(cfg.output_dir) / "pareto.csv")


def test_an_unreachable_redis_or_a_refused_password_is_one_line_naming_the_url(make_cfg, redis_url: str) -> None:
    import redis

    from .conftest import _free_port

    closed = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    host = redis_url.removeprefix("redis://")
    redis.Redis.from_url(redis_url).config_set("requirepass", "right")  # the (shared) server wants a password now
    try:
        for url, reason in ((closed, "Connection refused"), (f"redis://:s3cret@{host}", "invalid username-password")):
            cfg = make_cfg("search.n_trials=1", "storage=journal", f"storage.url={url}", name="r")
            with pytest.raises(ConfigError) as info:
                run_search(cfg, progress=False)
            shown = url.replace(":s3cret@", ":***@")
            assert str(info.value).startswith(f"storage.url: cannot open {shown}: "), info.value
            assert reason in str(info.value) and "s3cret" not in str(info.value), info.value
            assert not Path(cfg.output_dir).exists()  # refused before anything was written
    finally:
        redis.Redis.from_url(f"redis://:right@{host}").config_set("requirepass", "")


def _open_storage(url: str, barrier: Any, errors: Any) -> None:
    from types import SimpleNamespace

    from nas.search import StorageConfig
    from nas.search import make_storage

    barrier.wait()
    try:
        make_storage(SimpleNamespace(storage=StorageConfig(url=url), output_dir="unused"))  # type: ignore[arg-type]
    except Exception as err:  # reported to the parent, which fails the test with it
        errors.put(f"{type(err).__name__}: {err}")


def test_workers_opening_an_empty_postgres_database_at_once_all_get_the_storage(postgres_url: str) -> None:
    """Four processes released together create Optuna's tables on a fresh database: PostgreSQL
    refuses the losers with a unique violation or "already exists" (seen on CI); all must open it."""
    import multiprocessing

    import psycopg

    ctx = multiprocessing.get_context("spawn")
    errors = ctx.Queue()
    for round_ in range(4):
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE race{round_}")
        url = postgres_url.rsplit("/", 1)[0] + f"/race{round_}"
        barrier = ctx.Barrier(4)
        workers = [ctx.Process(target=_open_storage, args=(url, barrier, errors)) for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        assert [w.exitcode for w in workers] == [0] * 4
        assert errors.empty(), errors.get()
        assert optuna.storages.RDBStorage(url).get_all_studies() == []


@pytest.mark.parametrize("error", ["IntegrityError", "ProgrammingError", "OperationalError"])
def test_a_storage_whose_tables_another_worker_is_creating_is_opened_again(monkeypatch, error: str) -> None:
    """The errors PostgreSQL and SQLite give the loser of that race (the real race is timing-dependent)."""
    from types import SimpleNamespace

    import sqlalchemy.exc

    from nas.search import StorageConfig
    from nas.search import make_storage

    calls = []

    def racing_storage(url: str, **kwargs: Any) -> str:
        calls.append(url)
        if len(calls) == 1:
            orig = Exception('relation "studies" already exists')
            raise getattr(sqlalchemy.exc, error)("CREATE TABLE studies", {}, orig)
        return "storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing_storage)
    monkeypatch.setattr("nas.search.storage.time.sleep", lambda s: None)
    cfg = SimpleNamespace(storage=StorageConfig(url="postgresql://nas@db/x"), output_dir="unused")
    assert make_storage(cfg) == "storage" and len(calls) == 2  # type: ignore[arg-type]


def test_a_worker_killed_before_its_trial_had_a_status_does_not_stall_the_others(make_cfg, monkeypatch) -> None:
    """A worker killed while pre-screening leaves a RUNNING trial with no status. It holds no slot
    that counts as running, so the search only met it at each admission, which waited for it and
    withdrew, forever. Now it is failed, with the reason, as soon as its process is seen gone."""
    import socket
    import threading

    import nas.search.objective
    from nas.search import this_process

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead = {**this_process(), "pid": int(gone.stdout), "start": None, "host": socket.gethostname()}
    cfg = make_cfg("search.n_trials=2")
    real_training, planted = nas.search.objective.Training, []

    def fit_then_plant(*args, **kwargs):
        if not planted:  # during the first trial, the other worker starts a trial and is killed
            study = optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)
            trial = study.ask()
            study._storage.set_trial_user_attr(trial._trial_id, "process", dead)
            planted.append(trial.number)
        return real_training(*args, **kwargs)

    monkeypatch.setattr(nas.search.objective, "Training", fit_then_plant)
    search = threading.Thread(target=run_search, args=(cfg,), kwargs={"progress": False}, daemon=True)
    search.start()
    search.join(timeout=300)
    assert not search.is_alive(), "the search stalled on the dead worker's trial"
    study = optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)
    (trial,) = [t for t in study.trials if t.number == planted[0]]
    assert trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs["failure"].startswith("killed: its process")
    assert not [t for t in study.trials if t.user_attrs.get("status") == "withdrawn"]


# -- workers started by the search itself (search.workers) -----------------------------------------

#: Slows every training step in every interpreter that starts with it on its path, the search's
#: spawned workers included, so that a test can catch a trial while it trains.
SLOW_SITE = ("import time\nimport nas.training.loop as loop\naugment = loop._augment\n"
             "loop._augment = lambda *a, **k: (time.sleep(0.2), augment(*a, **k))[1]\n")


def _start_search(tmp_path: Path, *args: str, slow: bool = True, new_group: bool = False) -> subprocess.Popen[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SLOW_SITE if slow else "")
    return subprocess.Popen([sys.executable, *SEARCH, *FAST, "study.name=w", f"output_dir={tmp_path / 'runs' / 'w'}",
                             "search.workers=2", "storage.heartbeat_s=1", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=new_group,
                            env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{Path.cwd()}"})


def _running_trials(tmp_path: Path, search: subprocess.Popen[str], count: int = 1) -> list[optuna.trial.FrozenTrial]:
    """Once `count` admitted trials train at once, those trials."""
    url = f"sqlite:///{tmp_path / 'runs' / 'w' / 'study.db'}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert search.poll() is None, search.communicate()
        try:
            running = [t for t in optuna.load_study(study_name="w", storage=url).trials
                       if t.state == TrialState.RUNNING and t.user_attrs.get("status") == "admitted"]
        except Exception:  # not created yet
            running = []
        if len(running) >= count:
            return running
        time.sleep(0.1)
    raise AssertionError(f"{count} trials never trained at once")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_built_in_workers_train_exactly_n_together_and_survive_a_killed_worker(tmp_path: Path) -> None:
    search = _start_search(tmp_path, "search.n_trials=5")
    try:
        both = _running_trials(tmp_path, search, count=2)  # two workers train at once
        pids = {t.user_attrs["process"]["pid"] for t in both}
        assert len(pids) == 2 and search.pid not in pids  # in two worker processes, not the parent
        victim = both[0]
        os.kill(victim.user_attrs["process"]["pid"], signal.SIGKILL)
        stdout, stderr = search.communicate(timeout=600)
    finally:
        if search.poll() is None:
            search.kill()
    assert search.returncode == 0, stderr[-3000:]
    assert "starting it again" in stdout  # the parent replaced the killed worker
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr
    study = optuna.load_study(study_name="w", storage=f"sqlite:///{tmp_path / 'runs' / 'w' / 'study.db'}")
    trained = _check_complete(study, 5, tmp_path / "runs" / "w" / "pareto.csv")
    assert victim.number not in {t.number for t in trained}
    assert study.trials[victim.number].state == TrialState.FAIL
    assert {t.user_attrs["worker"] for t in trained} == {0, 1}  # each worker its own index (and sampler seed)


def test_killing_the_parent_stops_its_workers_and_the_same_command_resumes(tmp_path: Path) -> None:
    search = _start_search(tmp_path, "search.n_trials=4")
    try:
        running = _running_trials(tmp_path, search, count=2)
        search.send_signal(signal.SIGKILL)
        search.wait(timeout=30)
    finally:
        if search.poll() is None:
            search.kill()
    workers = {t.user_attrs["process"]["pid"] for t in running}
    deadline = time.monotonic() + 60
    while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert all(_gone(pid) for pid in workers), "workers went on training without their parent"
    url = f"sqlite:///{tmp_path / 'runs' / 'w' / 'study.db'}"
    after = optuna.load_study(study_name="w", storage=url).trials
    # Each trial the workers held was interrupted, or finished in the second before they noticed; none is left running.
    assert not [t for t in after if t.state == TrialState.RUNNING]
    for t in (after[r.number] for r in running):
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED) or t.user_attrs["failure"] == "interrupted"
    assert any(after[r.number].state == TrialState.FAIL for r in running)
    resumed = _start_search(tmp_path, "search.n_trials=4", slow=False)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-3000:]
    _check_complete(optuna.load_study(study_name="w", storage=url), 4, tmp_path / "runs" / "w" / "pareto.csv")


@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c at a terminal", "sigint to the parent alone"])
def test_ctrl_c_stops_every_worker_cleanly_and_the_same_command_resumes(tmp_path: Path, group: bool) -> None:
    # Ctrl-C at a terminal interrupts the whole foreground process group: the parent and its workers at once.
    search = _start_search(tmp_path, "search.n_trials=4", new_group=True)
    try:
        running = _running_trials(tmp_path, search, count=2)
        if group:
            os.killpg(search.pid, signal.SIGINT)
        else:
            search.send_signal(signal.SIGINT)
        _, stderr = search.communicate(timeout=90)
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    assert search.returncode == 130 and stderr.rstrip().endswith("interrupted"), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert all(_gone(t.user_attrs["process"]["pid"]) for t in running), "a worker outlived the interrupted search"
    url = f"sqlite:///{tmp_path / 'runs' / 'w' / 'study.db'}"
    after = optuna.load_study(study_name="w", storage=url).trials
    assert not [t for t in after if t.state == TrialState.RUNNING]
    for t in (after[r.number] for r in running):
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED) or t.user_attrs["failure"] == "interrupted"
    resumed = _start_search(tmp_path, "search.n_trials=4", slow=False)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr[-3000:]
    _check_complete(optuna.load_study(study_name="w", storage=url), 4, tmp_path / "runs" / "w" / "pareto.csv")


def test_a_second_search_with_a_worker_index_in_use_is_refused(tmp_path: Path, make_cfg) -> None:
    # Worker k's sampler seed is derived from k: two live workers of one index draw the same architectures.
    search = _start_search(tmp_path, "search.n_trials=4", "proxy.train_fraction=1.0")  # trials of 10 s and more
    try:
        _running_trials(tmp_path, search, count=2)  # workers 0 and 1 train
        recorded = tmp_path / "runs" / "w" / "config-worker0.yaml"
        first = recorded.read_text()
        with pytest.raises(ConfigError) as info:
            run_search(make_cfg("search.n_trials=4", "proxy.train_fraction=1.0", "storage.heartbeat_s=1", name="w"),
                       progress=False)
    finally:
        os.kill(search.pid, signal.SIGINT)
        search.communicate(timeout=90)
    assert recorded.read_text() == first  # the live worker's record is left as it was
    assert re.fullmatch(r"search\.worker: worker 0 already searches study w \(process \d+ on .+\), and a second "
                        r"with its index would draw the same architectures \(allowed: search\.worker=2 or above for "
                        r"another search on this study\)", str(info.value)), info.value
