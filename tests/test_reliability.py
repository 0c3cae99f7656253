"""Faults and bad input: one clear line for mistakes, failed trials recorded and skipped, killed
and interrupted workers resumed to exactly n_trials, untrusted files refused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

import nas.training.loop
import nas.search
import nas.search.objective
from nas.secrets import redact
from nas.errors import ConfigError, SearchAborted
from nas.model import MAX_MPARAMS
from nas.files import atomic_write
from nas.apps import run_search
from nas.attrs import TrialAttr
from nas.search import fail_dead_trials, this_process
from search_spaces import Arch, ShuffleStage, Stem, reference

from .conftest import FAST

SEARCH = ["-m", "nas", "search"]
TRAIN = ["-m", "nas", "train"]
COMPLEXITY = ["-m", "nas", "complexity"]


def _run(command: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *command, *args], cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=300, env={**os.environ, "PYTHONPATH": str(Path.cwd())})


def _study(cfg) -> optuna.Study:
    return optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)


def _trained_numbers(study: optuna.Study) -> list[int]:
    return [t.number for t in study.trials
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.user_attrs.get("status") == "admitted"]


# -- bad configuration ----------------------------------------------------------------------------

BAD_SEARCH_INPUT = [
    (["space=foo"], "error: space: 'foo' is not available (allowed: hybrid, mobilenext, shufflenet)"),
    (["data=foo"], "error: data: 'foo' is not available"),
    (["budget.mflops=0.001"], "error: budget.mflops: no architecture fits"),
    (["proxy.epochs=-1"], "error: proxy.epochs: -1 is not allowed"),
    (["proxy.epoch=2"], "error: proxy.epoch: Key 'epoch' not in 'ProxyConfig'"),
    (["budget.mflops=lots"], "error: budget.mflops: Value 'lots' of type 'str' could not be converted"),
    (["data=fashion_mnist", "data.root=missing-folder"], "error: data.root: Fashion-MNIST not found (looked in missing-folder"),
    (["storage.url=sqlite//no-scheme.db"], "error: storage.url: 'sqlite//no-scheme.db' is not a database URL"),
    (["storage=postgres"], "error: storage.url: is required"),
    (["search.seed=-1"], "error: search.seed: -1 is not allowed (allowed: an integer 0..4294967295)"),
    (["search.worker=5000000"], "error: search.worker: 5000000 is not allowed with search.seed=0 (allowed: 0..4256657"),
    (["dashboard.port=99999"], "error: dashboard.port: 99999 is not allowed (allowed: an integer 1..65535)"),
    # The ladder: eta below 2, a screening rung above the top (synthetic: 1,080 training images,
    # batch 32 on the CPU, 1 epoch: 33 steps = 1,056 images), an unknown schedule.
    (["proxy.eta=1"], "error: proxy.eta: 1 is not allowed (allowed: an integer 2..100)"),
    (["proxy.on_cpu.screen_images=5000"], "error: proxy.on_cpu.screen_images: 5000 is above the top rung (1056 training images seen"),
    (["proxy.rung_schedule=cyclic"], "error: proxy.rung_schedule: 'cyclic' is not allowed (allowed: restart, restart_no_warmup, single)"),
]


@pytest.mark.parametrize("args, message", BAD_SEARCH_INPUT, ids=[" ".join(a) for a, _ in BAD_SEARCH_INPUT])
def test_bad_search_input_is_one_line_status_2_and_writes_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    done = _run(SEARCH, ["data=synthetic", "study.name=bad", *args], tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(message), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_refused_value_makes_no_hydra_run_folder(tmp_path: Path) -> None:
    done = _run(SEARCH, ["data=synthetic", "hydra.run.dir=elsewhere/run", "proxy.epochs=0"], tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: proxy.epochs: 0 is not allowed"), done.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    done = _run(SEARCH, ["data=synthetic", "proxy.epochs=0", "--verbose"], tmp_path)
    assert done.returncode != 0 and "Traceback" in done.stderr and "proxy.epochs" in done.stderr


def test_bad_input_leaves_an_existing_study_unchanged(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=1")
    run_search(cfg, progress=False)
    out = Path(cfg.output_dir)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file() and "study.db" not in p.name)
    trials_before = len(_study(cfg).trials)
    with pytest.raises(ConfigError, match="proxy.lr"):
        run_search(make_cfg("search.n_trials=5", "proxy.lr=-0.1"), progress=False)
    assert len(_study(cfg).trials) == trials_before
    after = sorted((p.name, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file() and "study.db" not in p.name)
    assert after == before


@pytest.mark.parametrize(
    "content, message",
    [
        ("stem: {channels: 24\n", "not valid YAML: expected ',' or '}'"),
        (reference("shufflenet_v1_g3_1.0x").to_yaml().replace("groups: 3", "groups: 7", 1),
         "stages[0].out_channels: 240 does not suit groups=7"),
        (reference("mobilenext_0.5").to_yaml().replace("search_spaces.build_network", "os.system"),
         "_target_: 'os.system' is not allowed"),
    ],
)
def test_bad_architecture_files_are_one_line_status_2(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "arch.yaml"
    path.write_text(content)
    for code, args in ((TRAIN, [str(path), "data=synthetic"]),
                       (COMPLEXITY, [str(path)])):
        done = _run(code, args, tmp_path)
        assert done.returncode == 2 and done.stderr.startswith("error: ") and message in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.yaml"]


def test_passwords_in_storage_urls_are_never_shown(tmp_path: Path) -> None:
    url = "postgresql://nas:hunter2secret@127.0.0.1:9/nas"
    done = _run(SEARCH, ["data=synthetic", f"storage.url={url}", "storage=postgres"], tmp_path)
    assert done.returncode == 2 and "storage.url" in done.stderr
    assert "hunter2secret" not in done.stderr + done.stdout
    assert redact(url) == "postgresql://nas:***@127.0.0.1:9/nas"


# -- failing trials -------------------------------------------------------------------------------


@pytest.fixture
def faulty_models(monkeypatch):
    """Make chosen calls of build_model return a broken network: `faults[i]` says how."""
    faults: dict[int, str] = {}
    calls = {"n": 0}
    real = nas.search.objective.build_model

    class OutOfMemory(torch.nn.Module):
        def forward(self, x):  # what a CUDA allocation failure raises; simulated on the CPU
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def build(arch, **limits):
        kind = faults.get(calls["n"])
        calls["n"] += 1
        model = real(arch, **limits)
        if kind == "nan":
            torch.nn.init.constant_(model.classifier.bias, float("nan"))
        elif kind == "oom":
            model.stages.append(OutOfMemory())
        elif kind == "error":
            model.stages.append(torch.nn.Flatten())  # shape error in the classifier
        return model

    monkeypatch.setattr(nas.search.objective, "build_model", build)
    return faults


def test_failed_trials_are_recorded_and_the_search_goes_on(make_cfg, faulty_models) -> None:
    faulty_models.update({0: "nan", 2: "oom", 3: "error"})
    cfg = make_cfg("search.n_trials=3")
    result = run_search(cfg, progress=False)
    study = _study(cfg)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    reasons = [t.user_attrs["failure"] for t in failed]
    assert len(reasons) == 3
    assert reasons[0].startswith("TrainingDiverged: training loss became nan")
    assert reasons[1].startswith("OutOfMemoryError: CUDA out of memory")
    assert reasons[2].startswith("RuntimeError")
    assert len(_trained_numbers(study)) == 3 == result.trained and result.failed == 3


def test_a_study_where_every_trial_fails_stops(make_cfg, faulty_models) -> None:
    faulty_models.update({i: "nan" for i in range(100)})
    cfg = make_cfg("search.n_trials=3", "search.max_failures=4")
    with pytest.raises(SearchAborted, match="4 trials failed in a row .* TrainingDiverged"):
        run_search(cfg, progress=False)
    assert sum(t.state == TrialState.FAIL for t in _study(cfg).trials) == 4


def test_an_exception_in_the_data_code_fails_only_that_trial(make_cfg, monkeypatch) -> None:
    real, calls = nas.training.loop._augment, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("corrupt batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(nas.training.loop, "_augment", flaky)
    cfg = make_cfg("search.n_trials=2")
    assert run_search(cfg, progress=False).trained == 2
    assert [t.user_attrs["failure"] for t in _study(cfg).trials if t.state == TrialState.FAIL] == [
        "ValueError: corrupt batch"
    ]


# -- interrupted and killed workers ----------------------------------------------------------------


#: nas-search whose every training step takes a second longer: a trial lasts long enough to be killed
#: or interrupted midway on any machine, with the proxy settings of a quick search (which a resume
#: must repeat).
SLOW_SEARCH = ("import runpy, sys, time; import nas.training.loop as loop; augment = loop._augment; "
               "loop._augment = lambda *a, **k: (time.sleep(1.0), augment(*a, **k))[1]; "
               "sys.argv[1:1] = ['search']; runpy.run_module('nas', run_name='__main__')")


def _start_worker(tmp_path: Path, *args: str, heartbeat_s: int = 1, background: bool = False) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", SLOW_SEARCH, *FAST, "study.name=w", f"output_dir={tmp_path / 'runs' / 'w'}",
               f"storage.heartbeat_s={heartbeat_s}", *args]
    if background:
        # What a non-interactive shell does to a job it starts with `&`: SIGINT ignored, kept over exec.
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path.cwd())})


def _wait_for_training(tmp_path: Path, worker: subprocess.Popen[str]) -> int:
    """The number of the trial the worker is training, once it has trained for a moment."""
    url = f"sqlite:///{tmp_path / 'runs' / 'w' / 'study.db'}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.communicate()
        try:
            study = optuna.load_study(study_name="w", storage=url)
            running = [t for t in study.trials if t.state == TrialState.RUNNING
                       and t.user_attrs.get("status") == "admitted"]
        except Exception:  # not created yet
            running = []
        if running:
            time.sleep(1.0)
            return running[0].number
        time.sleep(0.2)
    raise AssertionError("the worker never started training")


def test_killed_worker_trial_is_failed_and_resume_reaches_exactly_n(tmp_path: Path, make_cfg) -> None:
    worker = _start_worker(tmp_path, "search.n_trials=3")
    killed = _wait_for_training(tmp_path, worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    cfg = make_cfg("search.n_trials=3", "storage.heartbeat_s=1", name="w")
    result = run_search(cfg, progress=False)
    study = _study(cfg)
    states = {t.number: t.state for t in study.trials}
    assert states[killed] == TrialState.FAIL  # failed as its dead process's, not left running
    trained = _trained_numbers(study)
    assert len(trained) == 3 == result.trained and len(set(trained)) == 3 and killed not in trained
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    rows = (Path(cfg.output_dir) / "pareto.csv").read_text().splitlines()
    assert rows[0] == "trial,genotype,val_acc,test_acc,mmacs,mparams,yaml,reference,on_front,latency_ms" and len(rows) >= 2


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background job of a script"])
def test_ctrl_c_ends_the_trial_cleanly_and_resume_completes(tmp_path: Path, make_cfg, background: bool) -> None:
    worker = _start_worker(tmp_path, "search.n_trials=2", background=background)
    try:
        interrupted = _wait_for_training(tmp_path, worker)
        worker.send_signal(signal.SIGINT)
        _, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 130 and stderr.rstrip().endswith("interrupted"), stderr
    assert "Traceback" not in stderr
    cfg = make_cfg("search.n_trials=2", "storage.heartbeat_s=1", name="w")
    study = _study(cfg)
    trial = study.trials[interrupted]
    assert trial.state == TrialState.FAIL and trial.user_attrs["failure"] == "interrupted"
    if not background:
        assert run_search(cfg, progress=False).trained == 2


#: A Ctrl-C whose handler runs inside a finalizer, as one did in SQLAlchemy's weakref callback:
#: Python drops an exception raised there ("Exception ignored in ...") and goes on.
INTERRUPT_IN_A_FINALIZER = """
import signal, sys, time
from nas.interrupts import interrupt_on_signals
if sys.argv[1] == "unguarded":  # Python's own handler, also where SIGINT came in ignored (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
else:
    interrupt_on_signals(once=sys.argv[1] == "once")
class Finalized:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # its handler runs here, before raise_signal returns
        print("finalized", flush=True)
try:
    Finalized()
    time.sleep(float(sys.argv[2]))
    print("slept on")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.parametrize("mode", ["unguarded", "every", "once"])
def test_an_interrupt_dropped_in_a_finalizer_is_raised_again_in_the_main_thread(mode: str) -> None:
    sleep = "1" if mode == "unguarded" else "30"
    run = subprocess.run([sys.executable, "-c", INTERRUPT_IN_A_FINALIZER, mode, sleep], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    if mode == "unguarded":  # the control, Python's own handler: the interrupt is lost
        assert run.stdout == "slept on\n" and "Exception ignored in" in run.stderr, run
    else:
        assert run.stdout == "interrupted\n" and run.stderr == "", run


# -- untrusted files --------------------------------------------------------------------------------


def test_arch_yaml_cannot_name_another_target_or_python_objects() -> None:
    good = reference("mobilenext_0.35").to_yaml()
    for text in (good.replace("search_spaces.build_network", "subprocess.call"),
                 "!!python/object/new:os.system [echo owned]\n",
                 "_target_: !!python/name:os.system\nstem: {channels: 8}\nstages: []\n"):
        with pytest.raises(nas.ArchError):
            Arch.from_yaml(text)


# -- limits: what a typo must not be able to start --------------------------------------------------

#: 2.3 billion parameters, building it would take ~9 GB: 24*9+48 (stem), 24*24000+48000 (1x1 to the
#: bottleneck 96000/4), 24000*9+48000 (depthwise), 24000*95976+2*95976 (1x1 to 96000-24), 96000*4+4.
WIDE_PARAMS = 24 * 9 + 48 + 24 * 24000 + 48000 + 24000 * 9 + 48000 + 24000 * 95976 + 2 * 95976 + 96000 * 4 + 4
WIDE = Arch(stem=Stem(24), stages=(ShuffleStage(96_000, 1, groups=1),), num_classes=4, in_channels=1, resolution=16)


def test_build_model_refuses_a_network_over_the_parameter_limit_before_allocating() -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        nas.build_model(WIDE)
    assert time.perf_counter() - started < 1.0
    assert nas.complexity(WIDE).params == WIDE_PARAMS
    assert str(info.value).startswith(
        f"limits.max_mparams: the architecture has {WIDE_PARAMS / 1e6:,.1f} M parameters, over the limit of "
        f"{MAX_MPARAMS:g} M"
    ), info.value
    small = reference("shufflenet_v1_g3_0.25x", num_classes=4, in_channels=1, resolution=16)
    with pytest.raises(ConfigError, match="over the limit of 0.01 M"):
        nas.build_model(small, max_mparams=0.01)
    assert isinstance(nas.build_model(small, max_mparams=None), nas.Network)


def test_nas_train_refuses_huge_repeats_and_huge_networks_before_reading_data(tmp_path: Path) -> None:
    repeats = tmp_path / "repeats.yaml"
    repeats.write_text(reference("shufflenet_v1_g3_0.25x", num_classes=4, in_channels=1, resolution=16).to_yaml()
                       .replace("repeats: 8", "repeats: 1000000"))
    wide = tmp_path / "wide.yaml"
    wide.write_text(WIDE.to_yaml())
    for path, message in ((repeats, "error: stages[1].repeats: 1000000 is out of range (allowed: 1..64)"),
                          (wide, "error: limits.max_mparams: the architecture has 2,304.9 M parameters")):
        done = _run(TRAIN, [str(path), "data=synthetic"], tmp_path)
        assert done.returncode == 2 and done.stderr.startswith(message), done.stderr
        assert done.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repeats.yaml", "wide.yaml"]


def test_a_search_fails_trials_over_the_parameter_limit_with_the_reason(make_cfg) -> None:
    cfg = make_cfg("limits.max_mparams=0.0001", "search.max_failures=2")
    with pytest.raises(SearchAborted, match=r"the last: ConfigError: limits.max_mparams: the architecture has"):
        run_search(cfg, progress=False)
    reasons = [t.user_attrs["failure"] for t in _study(cfg).trials if t.state == TrialState.FAIL]
    assert len(reasons) == 2 and all("over the limit of 0.0001 M" in r for r in reasons)


# -- devices --------------------------------------------------------------------------------------


def test_cuda_on_a_machine_without_cuda_is_refused_before_anything_is_written(make_cfg, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = make_cfg("proxy.device=cuda")
    with pytest.raises(ConfigError, match=r"^proxy.device: 'cuda' is not available: this machine has no CUDA "
                                          r"device \(allowed here: auto, cpu\)"):
        run_search(cfg, progress=False)
    assert not Path(cfg.output_dir).exists()


def test_a_cuda_index_past_the_last_gpu_is_refused(make_cfg, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"^proxy.device: 'cuda:2' is not available: this machine has 2 CUDA "
                                          r"devices \(allowed here: auto, cpu, cuda, cuda:0\.\.cuda:1\)"):
        run_search(make_cfg("proxy.device=cuda:2"), progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line_for_nas_search_and_nas_train(tmp_path: Path) -> None:
    arch = tmp_path / "arch.yaml"
    arch.write_text(reference("shufflenet_v1_g3_0.25x", num_classes=4, in_channels=1, resolution=16).to_yaml())
    for code, args, field in ((SEARCH, ["data=synthetic", "study.name=c", "proxy.device=cuda"], "proxy.device"),
                              (TRAIN, [str(arch), "data=synthetic", "train.device=cuda"], "train.device")):
        done = _run(code, args, tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr == f"error: {field}: 'cuda' is not available: this machine has no CUDA device " \
                              "(allowed here: auto, cpu)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.yaml"]


# -- the command line and the file system -----------------------------------------------------------


def test_a_non_ascii_study_name_gets_the_allowed_characters_line(tmp_path: Path) -> None:
    done = _run(SEARCH, ["data=synthetic", "study.name=modèle"], tmp_path)
    assert done.returncode == 2 and done.stderr == (
        "error: study.name: 'modèle' is not allowed (allowed: ASCII letters, digits, '_', '-', '.', '='; up to 100)\n"
    ), done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_non_ascii_folder_name_is_read_as_the_string_it_is(tmp_path: Path) -> None:
    done = _run(SEARCH, ["data=fashion_mnist", "data.root=données", "study.name=x"], tmp_path)
    assert done.returncode == 2 and done.stderr.startswith(
        "error: data.root: Fashion-MNIST not found (looked in données for"), done.stderr


@pytest.mark.parametrize("blocker", ["runs/t", "runs"], ids=["the run folder", "a folder above it"])
def test_a_file_where_the_run_folder_should_be_is_refused(make_cfg, tmp_path: Path, blocker: str) -> None:
    (tmp_path / blocker).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / blocker).write_text("not a folder")
    cfg = make_cfg()
    with pytest.raises(ConfigError) as info:
        run_search(cfg, progress=False)
    assert str(info.value) == (
        f"output_dir: {cfg.output_dir} is not a folder"
        + ("" if blocker == "runs/t" else f" ({tmp_path / 'runs'} is a file)")
        + " (allowed: a folder, or a path that does not exist yet)"
    )
    assert (tmp_path / blocker).read_text() == "not a folder"


def test_a_file_where_the_run_folder_should_be_is_one_line_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("")
    done = _run(SEARCH, ["data=synthetic", "study.name=f"], tmp_path)
    assert done.returncode == 2 and done.stderr == (
        "error: output_dir: runs/f is not a folder (runs is a file) (allowed: a folder, or a path that does not "
        "exist yet)\n"), done.stderr


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_atomic_writes_follow_the_umask_and_keep_an_existing_files_mode(tmp_path: Path, umask_022) -> None:
    atomic_write(tmp_path / "new.csv", "a,b\n")
    assert (tmp_path / "new.csv").stat().st_mode & 0o777 == 0o644
    os.umask(0o002)
    atomic_write(tmp_path / "shared.csv", "a,b\n")
    assert (tmp_path / "shared.csv").stat().st_mode & 0o777 == 0o664
    (tmp_path / "private.yaml").write_text("old")
    (tmp_path / "private.yaml").chmod(0o640)
    atomic_write(tmp_path / "private.yaml", "new")
    assert (tmp_path / "private.yaml").stat().st_mode & 0o777 == 0o640


def test_a_searchs_output_files_are_readable_by_others_under_umask_022(make_cfg, umask_022) -> None:
    cfg = make_cfg("search.n_trials=1")
    run_search(cfg, progress=False)
    out = Path(cfg.output_dir)
    files = [out / "pareto.csv", out / "pareto.png", out / "config-worker0.yaml", *(out / "export").glob("*.yaml")]
    assert len(files) >= 4
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(0o644) for f in files}


# -- resuming: a killed run's own trials, a changed proxy ------------------------------------------------


def _running_trial(study: optuna.Study, owner: dict | None, *, heartbeat: bool) -> int:
    """A RUNNING trial as a worker leaves it: admitted, its process recorded, maybe a heartbeat."""
    trial = study.ask()
    trial.set_user_attr("status", "admitted")
    if owner is not None:
        trial.set_user_attr(TrialAttr.PROCESS, owner)
    if heartbeat:
        study._storage.record_heartbeat(trial._trial_id)
    return trial.number


def test_dead_trials_are_told_from_live_ones_by_host_pid_and_heartbeat(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=1", "storage.heartbeat_s=1")
    run_search(cfg, progress=False)
    study = optuna.load_study(study_name=cfg.study.name, storage=nas.search.make_storage(cfg))
    ended_pid = subprocess.Popen(["true"])  # a pid that has just ended
    ended_pid.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        me = this_process()
        numbers = {
            "own, ended": _running_trial(study, {**me, "pid": ended_pid.pid, "start": None}, heartbeat=True),
            "own, alive, heartbeat stale": _running_trial(study, {**me, "pid": live.pid, "start": None}, heartbeat=True),
            "elsewhere, heartbeat stale": _running_trial(study, {"host": "other-host", "pid": 7, "start": 1},
                                                         heartbeat=True),
        }
        time.sleep(3.5)  # past the grace period of 2 x heartbeat_s (SQLite keeps whole seconds)
        numbers["elsewhere, heartbeat fresh"] = _running_trial(study, {"host": "other-host", "pid": 8, "start": 1},
                                                               heartbeat=True)
        numbers["this host name, another pid namespace"] = _running_trial(
            study, {**me, "pidns": "pid:[1]", "pid": ended_pid.pid, "start": None}, heartbeat=True)
        failed = fail_dead_trials(study, grace_s=2)
    finally:
        live.kill()
        live.wait()
    trials = {t.number: t for t in study.get_trials()}
    assert sorted(failed) == sorted([numbers["own, ended"], numbers["elsewhere, heartbeat stale"]])
    own = trials[numbers["own, ended"]]
    assert own.state == TrialState.FAIL
    assert own.user_attrs["failure"] == f"killed: its process {ended_pid.pid} on {me['host']} ended without finishing it"
    lost = trials[numbers["elsewhere, heartbeat stale"]]
    assert lost.state == TrialState.FAIL
    assert lost.user_attrs["failure"] == "lost: no heartbeat for over 2 s from its worker on other-host"
    assert trials[numbers["own, alive, heartbeat stale"]].state == TrialState.RUNNING
    assert trials[numbers["elsewhere, heartbeat fresh"]].state == TrialState.RUNNING
    assert trials[numbers["this host name, another pid namespace"]].state == TrialState.RUNNING


def test_resuming_after_a_sigkill_fails_the_dead_runs_trial_at_once_and_goes_on(tmp_path: Path, make_cfg,
                                                                               caplog) -> None:
    worker = _start_worker(tmp_path, "search.n_trials=1", heartbeat_s=60)
    try:
        killed = _wait_for_training(tmp_path, worker)
    finally:
        worker.kill()
        worker.wait(timeout=30)
    cfg = make_cfg("search.n_trials=1", "storage.heartbeat_s=60", name="w")
    started = time.monotonic()
    with caplog.at_level("INFO", logger="nas"):
        result = run_search(cfg, progress=False)
    assert time.monotonic() - started < 110  # the heartbeat alone would free the slot after 120 s
    assert not [r for r in caplog.records if "waiting for" in r.getMessage()]
    trial = _study(cfg).trials[killed]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failure"] == (
        f"killed: its process {worker.pid} on {trial.user_attrs[TrialAttr.PROCESS]['host']} ended without finishing it"
    )
    assert result.trained == 1 and result.failed == 1


def test_resuming_with_another_proxy_is_refused_naming_the_field(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=1")
    run_search(cfg, progress=False)
    recorded = (Path(cfg.output_dir) / "config-worker0.yaml").read_text()
    with pytest.raises(ConfigError) as info:
        run_search(make_cfg("search.n_trials=2", "proxy.epochs=2"), progress=False)
    assert str(info.value) == (
        "proxy.epochs: 2 differs from the 3 that study 't' was searched with: its architectures would be "
        "scored by two proxies (allowed: 3 to resume, or another study.name for a new search)"
    )
    assert (Path(cfg.output_dir) / "config-worker0.yaml").read_text() == recorded
    assert len(_trained_numbers(_study(cfg))) == 1
    with pytest.raises(ConfigError, match=r"^data.pad_crop: 2 differs from the 1 that study 't' was searched with"):
        run_search(make_cfg("search.n_trials=2", "data.pad_crop=2"), progress=False)
    assert run_search(make_cfg("search.n_trials=2", "proxy.device=cpu"), progress=False).trained == 2


@pytest.mark.parametrize("override, field", [
    ("proxy.momentum=-0.5", "proxy.momentum"),
    ("proxy.label_smoothing=1.0", "proxy.label_smoothing"),
    ("proxy.max_train_images=0", "proxy.max_train_images"),
    ("proxy.schedule=step", "proxy.schedule"),
    ("train.schedule=step", "train.schedule"),
    ("train.warmup=1.0", "train.warmup"),
    ("train.train_fraction=0", "train.train_fraction"),
    ("train.epochs=0", "train.epochs"),
    ("train.top_k=0", "train.top_k"),
])
def test_the_proxy_and_nas_train_check_their_one_recipe_type_alike(make_cfg, override: str, field: str) -> None:
    import nas.results
    from nas.search import validate

    cfg = make_cfg(override)
    with pytest.raises(ConfigError, match=f"^{re.escape(field)}: "):
        if field.startswith("proxy"):
            validate(cfg)
        else:
            nas.results.validate_train(cfg)


def _claim_queued(url: str, barrier: object, out: object, n: int) -> None:
    """A worker's first asks: each pops a queued trial if one waits (what study.optimize does)."""
    import warnings
    from types import SimpleNamespace

    from nas.search import StorageConfig, make_storage

    warnings.filterwarnings("ignore")
    study = optuna.load_study(study_name="queue",
                              storage=make_storage(SimpleNamespace(storage=StorageConfig(url=url), output_dir="unused")))
    barrier.wait()  # type: ignore[attr-defined]
    out.put([study.ask().number for _ in range(n)])  # type: ignore[attr-defined]


def test_workers_asking_together_on_sqlite_never_claim_the_same_queued_trial(tmp_path: Path) -> None:
    """Optuna claims a queued trial by reading it waiting, then marking it running; SQLite ignores
    the SELECT ... FOR UPDATE meant to guard that, so before every transaction took the write lock
    at its start, four workers popping 40 queued trials together claimed 6-7 of them twice (two
    workers trained the same reference). Each queued trial now goes to exactly one of them."""
    import multiprocessing
    import warnings
    from types import SimpleNamespace

    url = f"sqlite:///{tmp_path / 'study.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = nas.search.make_storage(SimpleNamespace(storage=nas.search.StorageConfig(url=url),
                                                          output_dir="unused"))  # type: ignore[arg-type]
    study = optuna.create_study(study_name="queue", storage=storage)
    workers, each = 4, 10
    for i in range(workers * each):
        study.enqueue_trial({"x": i})
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_claim_queued, args=(url, barrier, out, each)) for _ in range(workers)]
    for p in procs:
        p.start()
    claimed = sorted(n for _ in procs for n in out.get(timeout=120))
    for p in procs:
        p.join(60)
    assert claimed == list(range(workers * each))  # every queued trial once, no new trial made
    assert all(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False))
