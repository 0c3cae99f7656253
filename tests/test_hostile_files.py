"""Files a careless or hostile user can leave behind: a journal cut short by a full disk, and CIFAR
batches that are pickles (which must not run code, nor fail with a traceback)."""

from __future__ import annotations

import json
import os
import pickle
import re
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from nas.apps import run_search
from nas.data import load_dataset
from nas.errors import ConfigError, DataError
from nas.results import report_front

# -- a journal cut short -----------------------------------------------------------------------------


def _journal(cfg) -> Path:
    return Path(cfg.output_dir) / "journal.log"


def _trained(path: Path, name: str) -> int:
    """Trained trials, read by Optuna's own journal reader (not ours)."""
    study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))
    return sum(t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("status") == "admitted"
               for t in study.trials)


def _tear(path: Path) -> bytes:
    """What a write interrupted by a full disk leaves: the first half of a record, no newline."""
    record = path.read_bytes().splitlines(keepends=True)[-1]
    with open(path, "ab") as f:
        f.write(record[: len(record) // 2])
    return record[: len(record) // 2]


def test_a_journal_cut_short_by_a_full_disk_is_repaired_before_the_next_append(make_cfg) -> None:
    cfg = make_cfg("storage=journal", "search.n_trials=1")
    run_search(cfg, progress=False)
    path = _journal(cfg)
    _tear(path)
    assert not path.read_bytes().endswith(b"\n")
    run_search(make_cfg("storage=journal", "search.n_trials=2"), progress=False)  # resumes and appends
    assert path.read_bytes().endswith(b"\n")
    assert all(json.loads(line) for line in path.read_bytes().splitlines())
    assert _trained(path, cfg.study.name) == 2


def test_nas_report_on_a_torn_journal_leaves_it_readable(make_cfg) -> None:
    cfg = make_cfg("storage=journal", "search.n_trials=1")
    run_search(cfg, progress=False)
    path = _journal(cfg)
    _tear(path)
    for _ in range(2):  # the report writes (the front's hypervolume): twice, to append after a repair
        assert len(report_front(cfg).outcome.front) >= 1
    assert all(json.loads(line) for line in path.read_bytes().splitlines())
    assert _trained(path, cfg.study.name) == 1


def test_a_record_glued_onto_a_torn_one_is_refused_saying_where_and_how(make_cfg) -> None:
    """A journal damaged before this fix (a record appended onto a cut one) is refused with one line;
    doing what it says makes the study readable again."""
    cfg = make_cfg("storage=journal", "search.n_trials=1")
    run_search(cfg, progress=False)
    path = _journal(cfg)
    lines = path.read_bytes().splitlines(keepends=True)
    torn = lines[-2][:7]
    lines.insert(len(lines) - 1, torn + lines.pop())  # the old append onto the cut line
    path.write_bytes(b"".join(lines))
    with pytest.raises(ConfigError) as info:
        run_search(make_cfg("storage=journal", "search.n_trials=2"), progress=False)
    message = str(info.value)
    assert message.startswith(f"storage.path: {path} is damaged: line {len(lines)} begins with 7 bytes of a record "
                              "cut short"), message
    data = path.read_bytes()
    start = data.rindex(b"\n", 0, len(data) - 1) + 1
    path.write_bytes(data[:start] + data[start + 7:])  # what the message says to do
    run_search(make_cfg("storage=journal", "search.n_trials=2"), progress=False)
    assert _trained(path, cfg.study.name) == 2


# -- CIFAR pickles -----------------------------------------------------------------------------------

CIFAR10 = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _cifar_folder(folder: Path, *, protocol: int = pickle.DEFAULT_PROTOCOL, labels: list[int] | None = None) -> None:
    rng = np.random.default_rng(0)
    for name in CIFAR10:
        batch = {b"batch_label": b"x", b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
                 b"labels": labels or list(range(10)), b"filenames": [b"f.png"] * 10}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))


class _RunsAShellCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_the_cifar_layout_reads_as_published_and_as_re_saved(tmp_path: Path, protocol: int) -> None:
    _cifar_folder(tmp_path, protocol=protocol)
    if protocol == 2:  # as published: by NumPy 1, whose arrays name `numpy.core.multiarray`
        for name in CIFAR10:
            path = tmp_path / name
            path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    data = load_dataset("cifar10", str(tmp_path))
    assert data.test.images.shape == (10, 3, 32, 32) and data.test.labels.tolist() == list(range(10))


def test_a_cifar_file_that_would_run_a_command_is_refused_without_running_it(tmp_path: Path) -> None:
    _cifar_folder(tmp_path)
    marker = tmp_path / "ran"
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": _RunsAShellCommand(marker), b"labels": []}))
    with pytest.raises(DataError, match=r"^data.root: .*data_batch_3 is not a CIFAR batch \(it asks for "
                                        r"(posix|os)\.system, which a CIFAR batch never holds\)"):
        load_dataset("cifar10", str(tmp_path))
    assert not marker.exists()


class _HugeArray:
    """87 bytes that ask NumPy for an array of 10**9 elements before any of its bytes are read."""

    def __reduce__(self):
        return (np.zeros(1).__reduce__()[0], (np.ndarray, (10**9,), b"b"))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), r"is not a CIFAR batch \("),
    (lambda p: p.write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})),
     r"is not a CIFAR batch \(it holds \['data', 'labels'\], not 'data' and 'labels'\)"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": _HugeArray(), b"labels": [0]}, protocol=2)),
     r"is not a CIFAR batch \(it builds an array of shape \(1000000000,\) before reading its bytes"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": np.array([1, "x"], dtype=object), b"labels": [0, 1]})),
     r"is not a CIFAR batch \(it holds an array of Python objects"),
    (lambda p: p.write_bytes(pickle.dumps([1, 2, 3])), r"is not a CIFAR batch \(it holds list"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})),
     r"'data' is \(2, 10\) \(allowed: N x 3072 unsigned bytes\)"),
    (lambda p: p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]})),
     r"'labels' must hold one integer label per image \(2 images\)"),
])
def test_damaged_cifar_files_are_one_line_naming_the_file(tmp_path: Path, damage, message: str) -> None:
    _cifar_folder(tmp_path)
    damage(tmp_path / "test_batch")
    with pytest.raises(DataError, match=rf"^data.root: {re.escape(str(tmp_path / 'test_batch'))}:? .*{message}"):
        load_dataset("cifar10", str(tmp_path))


@pytest.mark.parametrize("label, shown", [(57, "57"), (-1, "-1"), (10**30, "of 31 digits")])
def test_a_cifar_label_out_of_range_is_refused(tmp_path: Path, label: int, shown: str) -> None:
    _cifar_folder(tmp_path, labels=[label] + list(range(9)))
    with pytest.raises(DataError, match=rf"data_batch_1: label {shown} is out of range \(allowed: 0\.\.9\)"):
        load_dataset("cifar10", str(tmp_path))


# -- files left behind: leftover weights, a user's own files -----------------------------------------


def test_the_front_export_removes_only_the_yamls_it_writes(tmp_path: Path) -> None:
    from nas.results import export_front

    (tmp_path / "trial_0099.yaml").write_text("a member that left the front")
    (tmp_path / "trial_0002_wider.yaml").write_text("a user's own variant")
    (tmp_path / "trial_0098.yaml").write_text("a member that left the front after nas-train trained it")
    (tmp_path / "trial_0098.pt").write_bytes(b"its weights")
    export_front([], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial_0002_wider.yaml", "trial_0098.pt", "trial_0098.yaml"]


def _front_member_files(cfg) -> tuple[Path, Path]:
    (metrics,) = sorted((Path(cfg.output_dir) / "export").glob("trial_*.metrics.json"))
    return metrics, metrics.with_name(metrics.name.replace(".metrics.json", ".pt"))


def test_leftover_metrics_are_never_taken_for_a_trained_member(make_cfg, monkeypatch) -> None:
    """A metrics file of another network under the same trial number (a study made again under the
    same name), or one nas-train did not write: nas-export refuses it before writing any folder, and
    nas-train trains the member again instead of exporting the leftover weights."""
    import nas.results.report
    from nas.results import export_models, train_front

    written: list[Path] = []  # the model folders export_model was asked to write (ONNX is tested elsewhere)
    monkeypatch.setattr(nas.results.report, "export_model", lambda arch, folder, **_: written.append(folder))
    cfg = make_cfg("search.n_trials=2", "train.epochs=1", "train.top_k=1")
    run_search(cfg, progress=False)
    (first,) = train_front(cfg, progress=False)
    metrics_file, weights = _front_member_files(cfg)
    genotype = first["genotype"]
    for leftover, refusal in (
        ({**first, "genotype": "in_c1_r16_k4|other"}, r"metrics.json is of another network \(in_c1_r16_k4\|other, not trial"),
        ({"x": 1}, r"cannot be read as nas-train's metrics \(it needs test_acc, epochs, genotype: "),
        ([], r"cannot be read as nas-train's metrics"),
        ({**first, "test_acc": "x", "epochs": "y"}, r"cannot be read as nas-train's metrics \(it needs test_acc"),
        ({**first, "test_acc": float("nan"), "epochs": -1}, r"an accuracy in 0\.\.1, epochs a positive integer"),
    ):
        metrics_file.write_text(json.dumps(leftover))
        written.clear()
        with pytest.raises(DataError, match=refusal):
            export_models(cfg)
        assert written == [], "a folder was written before the bad file was found"
        stamp = weights.stat().st_mtime_ns
        (again,) = train_front(cfg, progress=False)
        assert weights.stat().st_mtime_ns != stamp, f"the weights were taken as trained with {leftover}"
        assert again["genotype"] == genotype == json.loads(metrics_file.read_text())["genotype"]
        assert len(written) == 1


def test_a_second_nas_train_on_one_front_is_refused_while_the_first_trains(make_cfg, monkeypatch) -> None:
    import nas.results.report
    from nas.files import exclusive
    from nas.results import train_front

    monkeypatch.setattr(nas.results.report, "export_model", lambda *a, **k: None)
    cfg = make_cfg("search.n_trials=1", "train.epochs=1")
    run_search(cfg, progress=False)
    lock = Path(cfg.output_dir) / "export" / ".nas-train.lock"
    with exclusive(lock) as held:  # what a first nas-train holds while it trains (a lock per open file)
        assert held
        with pytest.raises(ConfigError) as info:
            train_front(cfg, progress=False)
    assert str(info.value) == (f"study.name: another nas-train is training the front of study '{cfg.study.name}' now (it "
                               f"holds {lock}); wait for it to finish, and run this again to train what it left")
    assert not list((Path(cfg.output_dir) / "export").glob("*.pt"))  # nothing trained twice
    assert len(train_front(cfg, progress=False)) == 1  # once the first is done


def test_nas_train_during_a_running_search_exports_what_it_trained_and_keeps_its_files(make_cfg, monkeypatch,
                                                                                      caplog) -> None:
    """The search goes on while nas-train trains: a better network pushes the members nas-train
    chose off the front, and the search rewrites export/. nas-train still exports the members it
    trained, and each keeps its YAML beside its weights."""
    import nas.results.report
    import nas.results.retrain
    from nas.results import train_front, write_outputs
    from nas.search import open_finished_study, study_shape, this_process

    written: list[Path] = []
    monkeypatch.setattr(nas.results.report, "export_model", lambda arch, folder, **_: written.append(folder))
    cfg = make_cfg("search.n_trials=2", "train.epochs=1")
    run_search(cfg, progress=False)
    train_arch = nas.results.retrain.train_arch

    def while_the_search_goes_on(*args, **kwargs):
        # What the running search does meanwhile: a trial that dominates the whole front, then
        # its outputs written again.
        study = open_finished_study(cfg)
        best = max((t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.values[0])
        study.add_trial(optuna.trial.create_trial(
            params=best.params, distributions=best.distributions, values=[1.0, 1.0],
            user_attrs={**best.user_attrs, "val_acc": 1.0, "macs": 1}, system_attrs=best.system_attrs))
        write_outputs(study, Path(cfg.output_dir), budget_mflops=cfg.budget.mflops, shape=study_shape(study))
        return train_arch(*args, **kwargs)

    monkeypatch.setattr(nas.results.retrain, "train_arch", while_the_search_goes_on)
    # A worker of the search, alive, in the middle of a trial.
    open_finished_study(cfg).add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, user_attrs={"worker": 0, "process": this_process()}))
    trained = train_front(cfg, progress=False)
    assert f"the search of study {cfg.study.name} is still running (1 worker(s))" in caplog.text
    assert "left the front since nas-train chose them (the search went on); exported all the same" in caplog.text
    assert trained, "nothing trained"
    export = Path(cfg.output_dir) / "export"
    assert sorted(f.name for f in written) == sorted(f"trial_{m['trial']:04d}" for m in trained)
    for m in trained:
        assert (export / f"trial_{m['trial']:04d}.pt").is_file()
        assert (export / f"trial_{m['trial']:04d}.yaml").is_file(), "a trained member's YAML was deleted"


def test_a_disk_full_while_writing_the_outputs_is_one_line_and_the_study_is_kept(make_cfg, monkeypatch, capsys) -> None:
    import errno

    import nas.files
    from nas.errors import report_user_errors

    cfg = make_cfg("search.n_trials=2")
    real_fsync = os.fsync

    def full(fd: int) -> None:  # where a full disk shows on a write flushed to it
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".pareto.png."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(nas.files.os, "fsync", full)
    with pytest.raises(SystemExit) as exit_info:
        report_user_errors(lambda: run_search(cfg, progress=False))
    assert exit_info.value.code == 2
    png = Path(cfg.output_dir) / "pareto.png"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: cannot write {png}: No space left on device; the study is kept: free some space, then run "
        "the same command again (or nas-report) to write the outputs")
    assert not png.exists() and not list(png.parent.glob(".pareto.png.*"))  # nothing half-written
    monkeypatch.setattr(nas.files.os, "fsync", real_fsync)
    report_front(cfg)
    assert png.read_bytes()[:4] == b"\x89PNG"
    study = optuna.load_study(study_name=cfg.study.name, storage=cfg.storage.url)
    assert sum(t.user_attrs.get("status") == "admitted" for t in study.trials) == 2


# -- shared run folders --------------------------------------------------------------------------------


def test_the_study_database_follows_the_umask_so_a_group_can_share_it(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=1")
    old = os.umask(0o002)
    try:
        run_search(cfg, progress=False)
    finally:
        os.umask(old)
    database = Path(cfg.storage.url.removeprefix("sqlite:///"))
    assert database.stat().st_mode & 0o777 == 0o664


def test_nas_report_on_an_empty_database_writes_nothing_into_it(make_cfg) -> None:
    cfg = make_cfg()
    database = Path(cfg.storage.url.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True)
    database.touch()
    with pytest.raises(ConfigError, match=r"^study.name: no study 't': .*study.db is empty \(run nas-search first\)"):
        report_front(cfg)
    assert database.stat().st_size == 0


def test_nas_search_on_a_database_emptied_long_ago_refuses_it_and_leaves_it(make_cfg) -> None:
    cfg = make_cfg("search.n_trials=1")
    database = Path(cfg.storage.url.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True)
    database.touch()
    old = time.time() - 3600  # emptied an hour ago: not a file another worker is creating now
    os.utime(database, (old, old))
    with pytest.raises(ConfigError) as info:
        run_search(cfg, progress=False)
    assert str(info.value) == (f"storage.url: {database} is empty (0 bytes), which no study database is: it was cut "
                               "short or made by hand; move it away to start a new search there")
    assert database.stat().st_size == 0


def test_a_fresh_empty_database_is_waited_for_then_refused_unless_its_creator_fills_it(make_cfg, monkeypatch) -> None:
    """A 0-byte file made a moment ago is what a worker that has just created the database leaves
    until it writes the tables: waited for, and used once it has them; refused if it never does."""
    import sqlite3
    import threading

    import nas.search.storage

    monkeypatch.setattr(nas.search.storage, "EMPTY_GRACE_S", 2.0)
    cfg = make_cfg("search.n_trials=1")
    database = Path(cfg.storage.url.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True)
    database.touch()  # made by hand a moment ago, and nobody fills it
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^storage.url: .*study.db is empty \(0 bytes\)"):
        run_search(cfg, progress=False)
    assert time.monotonic() - started >= 1.5 and database.stat().st_size == 0
    database.unlink()
    database.touch()

    def creator() -> None:  # the other worker, writing the first table half a second later
        time.sleep(0.5)
        with sqlite3.connect(database) as db:
            db.execute("CREATE TABLE other_worker (x)")

    threading.Thread(target=creator).start()
    assert run_search(cfg, progress=False).trained == 1


# -- small files that would cost memory or recursion ------------------------------------------------


def _spec_text() -> str:
    from search_spaces import shufflenet_v1

    return shufflenet_v1(3, 0.25, num_classes=10, in_channels=1, resolution=28).to_yaml()


def test_a_billion_laughs_architecture_is_refused_without_expanding_it() -> None:
    from search_spaces import Arch, ArchError

    # Each level lists the one below 9 times: 9^9 = 387 million 'lol's from half a kilobyte.
    levels = "".join(f"  - &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]\n" for k in range(1, 10))
    text = "stem:\n  - &l0 lol\n" + levels + "stages: []\n"
    assert len(text) < 600
    with pytest.raises(ArchError) as info:
        Arch.from_yaml(text)
    assert str(info.value) == "YAML aliases (*l0) are not allowed in an architecture (line 3)"


def test_an_architecture_nested_50000_deep_is_one_line() -> None:
    from search_spaces import Arch, ArchError

    with pytest.raises(ArchError, match=r"^nested more than 16 levels deep \(allowed: up to 16\) \(line 1\)$"):
        Arch.from_yaml("[" * 50_000)


def test_a_5000_digit_repeat_count_is_one_line(tmp_path: Path) -> None:
    from search_spaces import Arch, ArchError

    path = tmp_path / "arch.yaml"
    path.write_text(re.sub(r"repeats: \d+", "repeats: " + "9" * 5000, _spec_text(), count=1))
    with pytest.raises(ArchError) as info:
        Arch.from_yaml(path)
    assert str(info.value) == (f"{path}: a value cannot be read: Exceeds the limit (4300 digits) for integer "
                               "string conversion")


def test_a_huge_architecture_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from search_spaces import Arch, ArchError

    path = tmp_path / "arch.yaml"
    path.write_text(_spec_text() + "#" * (2 << 20))
    with pytest.raises(ArchError, match=r"arch.yaml: \d+ bytes is too large for an architecture \(allowed: up to "
                                        r"1048576 bytes\)$"):
        Arch.from_yaml(path)


def test_a_long_value_in_an_architecture_is_shown_shortened() -> None:
    from search_spaces import Arch, ArchError

    with pytest.raises(ArchError) as info:
        Arch.from_yaml("stem: [" + ", ".join(["x"] * 100_000) + "]\nstages: []\n")
    assert str(info.value) == "stem: expected a mapping, got ['x', 'x', 'x', 'x', 'x', 'x', ...]"


def test_a_zip_bomb_weights_file_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    import zipfile

    import torch

    from nas.model import build_model
    from nas.results import load_weights
    from search_spaces import Arch

    model = build_model(Arch.from_yaml(_spec_text()))
    saved = tmp_path / "saved.pt"
    torch.save({"x": torch.zeros(64 << 20, dtype=torch.uint8)}, saved)  # 64 MB of zeros
    bomb = tmp_path / "weights.pt"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for entry in src.infolist():
            dst.writestr(entry.filename, src.read(entry.filename))
    assert bomb.stat().st_size < 1 << 20  # under a megabyte on disk
    with pytest.raises(DataError) as info:
        load_weights(model, bomb)
    assert str(info.value).startswith(f"{bomb} holds compressed entries (saved/data.pkl), which torch.save never writes")
    with pytest.raises(DataError, match=r"saved.pt is \d+ bytes, too large for weights of this network \(\d+ bytes"):
        load_weights(model, saved)  # the same tensors uncompressed: far larger than the network's weights


def _nas_search(*args: str, cwd: Path) -> tuple[int, str]:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "nas", "search", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)
    return done.returncode, done.stderr


def test_a_billion_laughs_hydra_config_is_refused_before_hydra_expands_it(tmp_path: Path) -> None:
    (tmp_path / "cfg" / "grp").mkdir(parents=True)
    levels = "".join(f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * 9)}]\n" for k in range(1, 9))
    (tmp_path / "cfg" / "grp" / "laughs.yaml").write_text("a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + levels)
    # Unexpanded it is 9 + 8 * 10 nodes; expanded, each level nine times the one below (hand count).
    expanded = 1 + sum(1 + sum(9**j for j in range(k + 2)) for k in range(9))
    for args in (["--config-dir", str(tmp_path / "cfg"), "+grp=laughs"],
                 [f"--config-dir={tmp_path / 'cfg'}", "--config-name", "grp/laughs"]):
        code, stderr = _nas_search(*args, "data=synthetic", cwd=tmp_path)
        assert code == 2 and stderr.splitlines() == [(
            f"error: {tmp_path / 'cfg' / 'grp' / 'laughs.yaml'}: its YAML aliases expand to {expanded:,} values "
            "(allowed: up to 100,000), which would take gigabytes to load")], stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("override, message", [
    ("+x=" + "[" * 50_000 + "]" * 50_000, "x: the value is nested 50000 brackets deep (allowed: up to 32)"),
    ("data.root=" + "[" * 50_000, "data.root: the value is nested 50000 brackets deep (allowed: up to 32)"),
    ("data.pad_crop=" + "9" * 5000, "data.pad_crop: the value holds a number of 5000 digits (allowed: up to 100)"),
])
@pytest.mark.parametrize("multirun", [False, True])
def test_an_override_too_deep_or_too_long_a_number_is_one_line(override: str, message: str, multirun: bool,
                                                               tmp_path: Path) -> None:
    code, stderr = _nas_search(*(["-m"] if multirun else []), "data=synthetic", override, cwd=tmp_path)
    assert code == 2 and stderr.splitlines() == [f"error: {message}"], stderr[-2000:]
