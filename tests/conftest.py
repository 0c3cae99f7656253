"""Shared fixtures: configs composed from the real conf/ files, tiny and fast."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from nas.apps.hydra_app import CONF_DIR
from nas.apps.hydra_app import register_configs
from nas.search import NasConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

#: A search small enough for a unit test: synthetic 16x16 data, a few cheap candidates.
FAST = [
    "data=synthetic",
    "budget.mflops=1.0",
    "proxy.train_fraction=0.3",
    "search.n_trials=3",
    "proxy.batch_size=64",
    "proxy.device=cpu",
    "proxy.on_cpu=null",
    "search.probe_samples=200",
    "search.start_from_references=false",
    "search.workers=1",
]


def compose_config(overrides: list[str]) -> NasConfig:
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., NasConfig]:
    """`make_cfg("search.n_trials=5", ...)`: FAST plus overrides, writing under tmp_path."""

    def make(*overrides: str, name: str = "t") -> NasConfig:
        out = tmp_path / "runs" / name
        return compose_config([*FAST, f"study.name={name}", f"output_dir={out}", *overrides])

    return make


# -- real services on loopback ---------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _service_user() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user."""
    import os
    import shutil

    if os.geteuid() != 0:
        return []
    if not shutil.which("runuser"):
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's `postgresql` package); yields its URL."""
    import glob
    import os
    import pwd
    import shutil
    import subprocess
    import tempfile

    pytest.importorskip("psycopg", reason="psycopg missing: pip install 'budget-nas[postgres]'")
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None)
    if found is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql)")
    bindir = Path(found).parent
    as_user = _service_user()
    data = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    if as_user:
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("no 'postgres' user to run the server as")
        os.chown(data, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data / "db"), "-U", "nas", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-l", str(data / "log"), "-w",
                    "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://nas@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url():
    """A throwaway Redis server on 127.0.0.1 (Debian's `redis-server`); yields its URL."""
    import shutil
    import subprocess
    import time

    pytest.importorskip("redis", reason="the redis client is missing: pip install redis")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("Redis not installed (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
