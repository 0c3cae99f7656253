"""Storage passwords: hidden in messages, and written nowhere by a run (not by Hydra either)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nas.secrets import PASSWORD_ENV, hide_passwords, redact, with_password

PASSWORD = "s3cr/et@pw"  # with "/" and "@", which the old pattern let through


@pytest.mark.parametrize("text, shown", [
    ("postgresql://nas:secret@127.0.0.1:9/nas", "postgresql://nas:***@127.0.0.1:9/nas"),
    (f"postgresql://nas:{PASSWORD}@db:5432/nas", "postgresql://nas:***@db:5432/nas"),
    ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
    ("postgresql://nas@db/nas?password=pw&sslmode=require", "postgresql://nas@db/nas?password=***&sslmode=require"),
    ("cannot connect to 'postgresql://a:b@h/db': timeout", "cannot connect to 'postgresql://a:***@h/db': timeout"),
    ("sqlite:////tmp/run@home/study.db", "sqlite:////tmp/run@home/study.db"),
])
def test_redact_hides_every_form_of_password(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_a_password_moved_out_of_the_command_line_comes_back_for_the_storage(monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    args = hide_passwords([f"storage.url=postgresql://nas:{PASSWORD}@db:5432/nas", "study.name=x"], ("storage.url",))
    assert args == ["storage.url=postgresql://nas@db:5432/nas", "study.name=x"]
    assert os.environ[PASSWORD_ENV] == PASSWORD
    assert with_password("postgresql://nas@db:5432/nas") == f"postgresql://nas:{PASSWORD}@db:5432/nas"
    assert with_password("sqlite:///runs/x/study.db") == "sqlite:///runs/x/study.db"


@pytest.mark.parametrize("given, hidden, back", [
    ("postgresql://nas@db/nas?password=QpWx77&sslmode=disable", "postgresql://nas@db/nas?sslmode=disable",
     "postgresql://nas:QpWx77@db/nas?sslmode=disable"),
    ("postgresql://db/nas?user=nas&password=QpWx77", "postgresql://db/nas?user=nas",
     "postgresql://db/nas?user=nas&password=QpWx77"),
    ("redis://127.0.0.1:6379/0?password=QpWx77", "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0?password=QpWx77"),
    ("'redis://:QpWx77@127.0.0.1:6379/0'", "'redis://@127.0.0.1:6379/0'", "redis://:QpWx77@127.0.0.1:6379/0"),
])
def test_a_password_in_the_query_leaves_the_command_line_too(given: str, hidden: str, back: str, monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert hide_passwords([f"storage.url={given}"], ("storage.url",)) == [f"storage.url={hidden}"]
    assert os.environ[PASSWORD_ENV] == "QpWx77"
    assert with_password(hidden.strip("'")) == back


def test_a_sweep_over_urls_with_passwords_is_refused_not_cut_to_one(monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(ValueError, match=r"^storage.url: postgresql://nas:\*\*\*@h/a,postgresql://nas:\*\*\*@h/b sweeps over several URLs"):
        hide_passwords(["storage.url=postgresql://nas:SwA1@h/a,postgresql://nas:SwB2@h/b"], ("storage.url",))
    assert PASSWORD_ENV not in os.environ


def _files_holding(folder: Path, secret: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_a_multirun_on_postgresql_writes_and_prints_its_password_nowhere(postgres_url: str, tmp_path: Path) -> None:
    written = "s3cr%2Fet%40pw"  # PASSWORD as a URL holds it (percent-encoded)
    url = postgres_url.replace("://nas@", f"://nas:{written}@")  # the test server trusts loopback
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    common = [sys.executable, "-m", "nas", "search", "-m", "storage=postgres", f"storage.url={url}", "data=synthetic",
              "budget.mflops=1", "proxy.on_cpu=null", "proxy.train_fraction=0.3", "search.probe_samples=50",
              "study.name=secret"]
    done = subprocess.run([*common, "search.n_trials=1"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    refused = subprocess.run([*common, "search.n_trials=0"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600, env=env, check=False)
    assert refused.returncode == 2 and "search.n_trials" in refused.stderr, refused.stderr
    # In the query string (quoted, as Hydra's grammar needs for its "="), refused after Hydra's launch line.
    in_query = [*common[:6], f"storage.url='{postgres_url}?password={written}'", *common[7:], "search.n_trials=0"]
    queried = subprocess.run(in_query, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert queried.returncode == 2 and "search.n_trials" in queried.stderr, queried.stderr
    # nas-train and nas-export record their command line in metrics.json and the model card.
    trained = subprocess.run([sys.executable, "-m", "nas", "train", "study.name=secret", "storage=postgres",
                              f"storage.url={url}", "data=synthetic", "train.epochs=1", "train.max_train_images=64"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert list((tmp_path / "runs" / "secret" / "models").glob("trial_*/README.md"))
    for secret in (written, PASSWORD):
        for output in (done.stdout, done.stderr, refused.stdout, refused.stderr, queried.stdout, queried.stderr,
                       trained.stdout, trained.stderr):
            assert secret not in output
        assert _files_holding(tmp_path, secret) == []
    assert (tmp_path / "runs" / "multirun").is_dir()  # Hydra did write its records, without the password
    study = optuna.load_study(study_name="secret", storage=url)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 1
