"""Where a study lives: its storage (SQLite, PostgreSQL, a journal), its identity, the proxy it
is scored with, and its artifact store."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from search_spaces import DataShape

from ..attrs import StudyAttr
from ..secrets import redact, with_password
from ..errors import ConfigError
from ..timing import machine
from .config import NasConfig
from .journal import open_journal

__all__ = ["artifact_store", "check_identity", "make_storage", "open_finished_study", "open_study", "scoring_settings", "study_shape",
           "upload_text"]


def make_storage(cfg: NasConfig) -> optuna.storages.BaseStorage:
    """The study's storage; creates the folder of a SQLite file or journal when needed."""
    storage = cfg.storage
    if storage.kind == "journal":
        from optuna.storages.journal import JournalRedisBackend, JournalStorage

        if storage.url:
            _check_redis(storage.url)
            return JournalStorage(JournalRedisBackend(with_password(storage.url)))
        path = Path(storage.path or Path(cfg.output_dir) / "journal.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        return open_journal(path)
    url = with_password(str(storage.url))
    if url.startswith("sqlite:///"):
        _create_with_umask(Path(url.removeprefix("sqlite:///")))
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(5):
        try:
            rdb = optuna.storages.RDBStorage(
                url,
                heartbeat_interval=storage.heartbeat_s,
                grace_period=2 * storage.heartbeat_s,
                # SQLite: several local workers queue for its write lock rather than fail at once.
                engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True},
            )
            break
        except (IntegrityError, ProgrammingError, OperationalError) as err:
            # Workers started together on an empty database race to create Optuna's tables
            # (a unique constraint; PostgreSQL: also "type ... already exists"; SQLite: "table
            # studies already exists"); the losers find them created a moment later.
            racing = isinstance(err, IntegrityError) or "already exists" in str(err)
            if not racing or attempt == 4:
                raise _cannot_open(url, err) from None
            time.sleep(0.5 + attempt)
        except ImportError as err:
            raise ConfigError(
                "storage.url", f"cannot open {redact(url)}: its database driver is not installed "
                f"({err.__cause__ or err}); for PostgreSQL: pip install 'budget-nas[postgres]'"
            ) from None
        except Exception as err:
            raise _cannot_open(url, err) from None
    if url.startswith("sqlite"):
        _sqlite_settings(rdb)
    return rdb


def _create_with_umask(path: Path) -> None:
    """Create a SQLite file, if missing, with the mode any new file gets (0666 less the umask): SQLite
    itself makes it 0644 whatever the umask, so the group of a shared run folder could not write it
    (its -wal and -shm files take the database's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        _check_not_emptied(path)


#: A database file this long without its tables is not one another worker is creating right now:
#: the worker that creates the file (`_create_with_umask`) writes the tables next, within its retries.
EMPTY_GRACE_S = 20.0


def _check_not_emptied(path: Path) -> None:
    """Refuse a SQLite file that exists but is empty (0 bytes) and stays so: a study database cut
    to nothing (a full disk, a bad copy) or a file made by hand, which SQLite would silently turn
    into a new, empty study. A file another worker created a moment ago gets its tables within
    EMPTY_GRACE_S of being made, and is waited for."""
    deadline = time.monotonic() + max(0.0, EMPTY_GRACE_S - (time.time() - path.stat().st_mtime))
    while path.stat().st_size == 0:
        if time.monotonic() >= deadline:
            raise ConfigError("storage.url", f"{path} is empty (0 bytes), which no study database is: it was cut "
                                             "short or made by hand; move it away to start a new search there")
        time.sleep(0.2)


def _check_redis(url: str) -> None:
    """Reach the Redis server of a journal before the search starts (Optuna's backend connects on
    first use, where an unreachable server or a refused password is a traceback)."""
    try:
        import redis
    except ImportError:
        raise ConfigError("storage.url", f"cannot open {redact(url)}: the redis client is not installed; "
                                         "pip install 'budget-nas[workers]'") from None
    url = with_password(url)
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=10) as client:
            client.ping()
    except (redis.exceptions.RedisError, ValueError) as err:  # ValueError: a URL redis cannot read
        raise _cannot_open(url, err) from None


def _cannot_open(url: str, err: Exception) -> ConfigError:
    # SQLAlchemy's errors carry the URL, password included.
    reason = redact(str(err).splitlines()[0] if str(err) else type(err).__name__)
    return ConfigError("storage.url", f"cannot open {redact(url)}: {reason}")


def _sqlite_settings(rdb: optuna.storages.RDBStorage) -> None:
    """Write-ahead logging without an fsync per commit, and the write lock taken by every
    transaction when it begins.

    Every suggest and attribute is a commit, and WAL without an fsync halves their cost (measured:
    63 -> 31 ms per 14-write trial). Still safe against a killed process; only a power cut can lose
    the last commits.

    The lock (BEGIN IMMEDIATE): Optuna claims a queued trial by reading that it waits and then
    marking it running, guarded by SELECT ... FOR UPDATE, which SQLite ignores; and Python's sqlite3
    begins no transaction for a SELECT. So two workers that asked together both claimed the same
    queued trial (seen: both trained the first reference, one core's 2.5 minutes lost and a failed
    trial). Serialized, the second reads it running and takes the next one. A transaction lasts
    milliseconds, so local workers hardly wait."""
    from sqlalchemy import event

    @event.listens_for(rdb.engine, "connect")
    def pragmas(connection: Any, _record: Any) -> None:
        connection.isolation_level = None  # sqlite3 opens no transaction itself: "begin" below does
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(rdb.engine, "begin")
    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    rdb.engine.dispose()  # reconnect so that the pool's connections get the pragmas


def _study_identity(cfg: NasConfig, shape: DataShape) -> dict[str, Any]:
    """What must not change when a study is resumed."""
    return {
        StudyAttr.SPACE: cfg.space.name,
        StudyAttr.DATA: cfg.data.name,
        StudyAttr.INPUT: f"{shape.in_channels}x{shape.resolution}x{shape.resolution}",
        StudyAttr.NUM_CLASSES: shape.num_classes,
        StudyAttr.OBJECTIVE: cfg.objective.name,
        StudyAttr.BUDGET_MFLOPS: float(cfg.budget.mflops),
        StudyAttr.BUDGET_MPARAMS: None if cfg.budget.mparams is None else float(cfg.budget.mparams),
    }


def check_identity(study: optuna.Study, identity: dict[str, Any], field: str) -> bool:
    """Record what must not change when the study is resumed (`identity`, study attributes) on a
    new study and return True; on an existing one, raise ConfigError naming `field` if it differs."""
    attrs = study.user_attrs
    # Another worker may have created the study an instant ago and still be writing its identity,
    # one attribute at a time: wait for the rest before comparing.
    deadline = time.monotonic() + 10.0
    while attrs and any(k not in attrs for k in identity) and time.monotonic() < deadline:
        time.sleep(0.1)
        attrs = study.user_attrs
    new = not attrs
    for key in (k for k in identity if k not in attrs):  # a new study, or one from before the key was recorded
        study.set_user_attr(key, identity[key])
    if new:
        return True
    changed = [k for k in identity if k in attrs and attrs[k] != identity[k]]
    if changed:
        raise ConfigError(
            field,
            f"study {study.study_name!r} already holds a different search ({', '.join(f'{k}={attrs[k]}' for k in changed)}); "
            f"choose another {field} to start a new one",
        )
    return False


def open_study(cfg: NasConfig, shape: DataShape, storage: optuna.storages.BaseStorage,
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner | None,
               data_fingerprint: str | None = None) -> optuna.Study:
    """Create the study, or load it and check that it is the same search (on the same data, when
    `data_fingerprint` is given)."""
    metrics = cfg.objective.metric_names  # val_acc, and the cost minimized (MMACs, latency_ms) if any
    study = optuna.create_study(
        storage=storage,
        study_name=cfg.study.name,
        sampler=sampler,
        pruner=pruner,
        directions=["maximize", *["minimize"] * (len(metrics) - 1)],
        load_if_exists=True,
    )
    if check_identity(study, _study_identity(cfg, shape), "study.name"):
        study.set_metric_names(list(metrics))
    _check_same_proxy(study, cfg)
    if cfg.objective.name == "latency":
        _check_same_machine(study, cfg)
    if data_fingerprint is not None:
        _check_same_data(study, cfg, data_fingerprint)
    return study


def _check_same_machine(study: optuna.Study, cfg: NasConfig) -> None:
    """objective=latency: record the CPU the trials are timed on; refuse to go on timing them on
    another, whose milliseconds could not be compared with those the study holds."""
    here = machine()
    _recorded_once(study, StudyAttr.LATENCY_MACHINE, here, "objective", lambda stored: (
        f"study {cfg.study.name!r} timed its networks on {stored}, and this machine is {here}: latencies from two "
        "machines cannot be compared (allowed: resume it there, or another study.name for a new search)"))


def _check_same_data(study: optuna.Study, cfg: NasConfig, fingerprint: str) -> None:
    """Record the data's fingerprint on a new study (or one from before it was recorded); refuse
    to resume a study with other images or labels, whose trials could not be compared."""
    _recorded_once(study, StudyAttr.DATA_FINGERPRINT, fingerprint, "data", lambda stored: (
        f"study {cfg.study.name!r} was searched on other images or labels (fingerprint {stored}; this data's is "
        f"{fingerprint}): resume it with the data it was searched on, or choose another study.name for a search on "
        "this data"))


def _recorded_once(study: optuna.Study, attr: str, value: Any, field: str, refusal: Callable[[Any], str]) -> None:
    """Record `value` as the study attribute `attr` on a new study (or one from before it was
    recorded); on a study that holds another, raise ConfigError naming `field` with `refusal(stored)`."""
    stored = study.user_attrs.get(attr)
    if stored is None:
        study.set_user_attr(attr, value)
    elif stored != value:
        raise ConfigError(field, refusal(stored))


#: Proxy fields that change how fast a trial is scored or what else is recorded, not its score.
_PROXY_FIELDS_NOT_SCORING = ("device", "eval_batch_size", "zero_cost", "channels_last")
_DATA_FIELDS_SCORING = ("val_fraction", "split_seed", "flip", "pad_crop")


def scoring_settings(cfg: NasConfig) -> dict[str, Any]:
    """The settings every trial of a study is scored with, as `{"proxy.epochs": 1, ...}`."""
    proxy = {f"proxy.{k}": v for k, v in dataclasses.asdict(cfg.proxy).items() if k not in _PROXY_FIELDS_NOT_SCORING}
    data = {f"data.{k}": getattr(cfg.data, k) for k in _DATA_FIELDS_SCORING}
    timing = {}
    if cfg.objective.name == "latency":  # what the milliseconds are of (repeats only sharpen them)
        timing = {f"objective.latency.{k}": getattr(cfg.objective.latency, k) for k in ("threads", "batch_size")}
    return json.loads(json.dumps({**proxy, **data, **timing}))  # as the storage gives it back


def _check_same_proxy(study: optuna.Study, cfg: NasConfig) -> None:
    """Record the scoring settings on a new study; refuse to resume one with others, whose trials
    could not be compared with those it holds. A study from before they were recorded adopts them."""
    current = scoring_settings(cfg)
    stored = study.user_attrs.get(StudyAttr.PROXY_SETTINGS)
    if stored is None:
        study.set_user_attr(StudyAttr.PROXY_SETTINGS, current)
        return
    # Only fields both know: one added to the config later has no recorded value to differ from.
    for key in (k for k in current if k in stored and stored[k] != current[k]):
        raise ConfigError(
            key,
            f"{current[key]!r} differs from the {stored[key]!r} that study {cfg.study.name!r} was searched with: its "
            f"architectures would be scored by two proxies (allowed: {stored[key]!r} to resume, or another "
            "study.name for a new search)",
        )


def open_finished_study(cfg: NasConfig) -> optuna.Study:
    """Load `cfg.study.name` from its storage without creating anything."""
    url = cfg.storage.url or ""
    if cfg.storage.kind == "rdb" and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ConfigError("study.name", f"no study {cfg.study.name!r}: {path} does not exist (run nas-search first)")
        if path.stat().st_size == 0:  # opening it would write Optuna's tables into it
            raise ConfigError("study.name", f"no study {cfg.study.name!r}: {path} is empty (run nas-search first)")
    if cfg.storage.kind == "journal" and not cfg.storage.url:
        path = Path(cfg.storage.path or Path(cfg.output_dir) / "journal.log")
        if not path.is_file():
            raise ConfigError("study.name", f"no study {cfg.study.name!r}: {path} does not exist (run nas-search first)")
    storage = make_storage(cfg)
    try:
        return optuna.load_study(study_name=cfg.study.name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        where = redact(url) if cfg.storage.kind == "rdb" else "the journal"
        raise ConfigError("study.name", f"no study {cfg.study.name!r} in {where} (studies there: {names})") from None


def study_shape(study: optuna.Study) -> DataShape:
    """The input size and classes a study searched for, as it recorded them."""
    attrs = study.user_attrs
    try:
        channels, height, _ = (int(v) for v in attrs[StudyAttr.INPUT].split("x"))
        return DataShape(channels, height, int(attrs[StudyAttr.NUM_CLASSES]))
    except (KeyError, ValueError):
        raise ConfigError("study.name", f"study {study.study_name!r} was not made by nas-search") from None



def artifact_store(folder: str) -> optuna.artifacts.FileSystemArtifactStore:
    Path(folder).mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(folder)


def upload_text(store: Any, target: optuna.Trial | optuna.Study, name: str, data: str | bytes, mimetype: str) -> None:
    """Put `data` into the artifact store as `name`, attached to a trial or the study."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=target,
                                         mimetype=mimetype)
