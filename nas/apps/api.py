"""Searching from Python: `nas.search(...)` and `nas.load_study(...)`, on the engine the
command line runs, with the same configs, files, resume and errors (raised, not printed).

    import nas
    result = nas.search("budget.mflops=5", "search.n_trials=10", data=(images, labels))
    result.best.arch, result.best.val_acc, result.best.test_acc
    result.to_dataframe()
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..attrs import StudyAttr, TrialAttr
from ..errors import ConfigError
from .hydra_app import compose_config
from .jobs import SearchResult, run_search

__all__ = ["load_study", "search"]

#: Config groups a keyword option chooses from (`space="shufflenet"`); other options set fields.
GROUPS = ("space", "sampler", "objective", "proxy", "storage")


def search(*overrides: str, data: Any = None, progress: bool = True, **options: Any) -> SearchResult:
    """Run a search, as `nas-search` with the same `overrides` would, and return what it found.

    `overrides` are the command line's (`"budget.mflops=5"`, `"space=shufflenet"`); `options`
    say the same as keywords: a config group's choice (`space="shufflenet"`), a value
    (`output_dir="runs/x"`), or a section's values (`budget={"mflops": 5}`, `search={"n_trials": 10}`).
    `data` is a dataset's name (`"cifar10"`, as `data=cifar10`) or data held in memory: an
    `(images, labels)` pair of tensors or NumPy arrays (uint8 0..255 or float 0..1, N x C x H x W or
    N x H x W; labels 0..K-1), a map-style `torch.utils.data.Dataset` of (image, label) pairs, or a
    mapping with `train` and optional `val` and `test` parts (see `nas.data.in_memory`); a study
    records its data's fingerprint, and resuming it with other data is refused.

    It writes what nas-search writes (runs/<study>/ by default: the study, pareto.csv, pareto.png,
    export/, weights/), resumes a study of the same name the same way, and raises `ConfigError`
    (naming the field) where the command would print one line and exit 2. `progress` shows the
    progress bar and the search's log lines (on stderr).
    """
    _refuse_in_a_starting_worker()
    args = [*overrides, *_as_overrides(options)]
    held = data is not None and not isinstance(data, str)  # in memory, not a dataset's name
    if isinstance(data, str):
        args.append(f"data={data}")
    elif held:
        chosen = [a for a in args if a.split("=", 1)[0] in ("data", "+data")]
        if chosen:
            raise ConfigError("data", f"{chosen[0]!r} names a dataset, and data= hands one over: give one of them")
        args.insert(0, "data=memory")
    cfg = compose_config("search", _check_args(args))
    with _quiet(progress):
        dataset = None
        if held:
            from ..data import in_memory

            dataset = in_memory(data, val_fraction=cfg.data.val_fraction, split_seed=cfg.data.split_seed)
        return run_search(cfg, dataset=dataset, progress=progress)


def _refuse_in_a_starting_worker() -> None:
    """Stop a worker that is importing a script which calls `nas.search` at its top level: say why
    in one line, and exit as a worker that stopped the search on purpose (its parent then stops)."""
    from ..search.workers import STOPPED, starting_worker

    if starting_worker():
        # One write of the whole line: every worker says it at once, and print's two writes (the text,
        # then the newline, when stderr is unbuffered) would interleave theirs.
        sys.stderr.write("nas.search: the search's worker processes import your script, which calls nas.search "
                         'again: call it under `if __name__ == "__main__":`, as for any Python multiprocessing\n')
        raise SystemExit(STOPPED)


def load_study(name_or_folder: str | Path, *overrides: str) -> SearchResult:
    """The result of a search made earlier, from its study name (as `study.name=NAME`, the study in
    runs/NAME/) or its run folder; `overrides` as for `search` (`"storage.url=..."` for a study on
    PostgreSQL whose folder is not here). Reads the study; writes nothing."""
    from ..results import outcome
    from ..search import open_finished_study, trial_counts

    folder = Path(name_or_folder)
    args = list(overrides)
    if not folder.is_dir():
        args = [f"study.name={name_or_folder}", *args]
        folder = Path(compose_config("search", _check_args(args)).output_dir)
    cfg = compose_config("search", _check_args([*_recorded(folder), *args]))
    with _quiet(False):
        study = open_finished_study(cfg)
    result = outcome(study, float(study.user_attrs.get(StudyAttr.BUDGET_MFLOPS, cfg.budget.mflops)))
    trials = study.get_trials(deepcopy=False)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    devices = Counter(t.user_attrs[TrialAttr.DEVICE] for t in trials if TrialAttr.DEVICE in t.user_attrs)
    export = Path(cfg.output_dir) / "export"
    return SearchResult.of(
        study, result, Path(cfg.output_dir), counts=trial_counts(study),
        wall_s=(max(ends) - min(starts)).total_seconds() if starts and ends else 0.0,
        device=devices.most_common(1)[0][0] if devices else "",
        exported={m.trial: str(p) for m in result.front if (p := export / f"trial_{m.trial:04d}.yaml").is_file()},
    )


def _recorded(folder: Path) -> list[str]:
    """Overrides that reopen the study of a run folder: its name and storage as its config
    recorded them, the storage files found where the folder is now."""
    from omegaconf import OmegaConf

    configs = sorted(folder.glob("config-worker*.yaml"))
    if not configs:
        raise ConfigError("study.name", f"{folder} holds no search (no config-worker*.yaml): name a run folder of "
                                        "nas-search, or the study")
    recorded = OmegaConf.load(configs[0])
    name = OmegaConf.select(recorded, "study.name")
    args = [f"study.name={name}", f"output_dir={_quoted(str(folder))}"]
    if (folder / "study.db").is_file():
        args.append(f"storage.url={_quoted('sqlite:///' + str(folder / 'study.db'))}")
    elif (folder / "journal.log").is_file():
        args += ["storage=journal", f"storage.path={_quoted(str(folder / 'journal.log'))}"]
    elif OmegaConf.select(recorded, "storage.url"):
        kind = OmegaConf.select(recorded, "storage.kind")
        args += [f"storage={'postgres' if kind == 'rdb' else 'journal'}",
                 f"storage.url={_quoted(recorded.storage.url)}"]
    return args


def _check_args(args: list[str]) -> list[str]:
    for arg in args:
        if not isinstance(arg, str) or "=" not in arg:
            raise ConfigError("overrides", f"{arg!r} is not KEY=VALUE (e.g. 'budget.mflops=5')")
        key = arg.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra"):
            raise ConfigError(key, "Hydra's own settings do not apply: nas.search runs no Hydra app "
                                   "(the run's files go to output_dir)")
    return args


def _as_overrides(options: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Keyword options as overrides: `budget={"mflops": 5}` -> `budget.mflops=5`."""
    args = []
    for key, value in options.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path not in ("objective.pruner", "sampler"):
            args += _as_overrides(value, f"{path}.")
        else:
            args.append(f"{path}={value}" if path in GROUPS and isinstance(value, str) else f"{path}={_value(value)}")
    return args


def _value(value: Any) -> str:
    """A Python value in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _quoted(str(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(_value, value)) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError("options", f"{value!r} ({type(value).__name__}) cannot be a config value")


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """For the call: Optuna's logging and warnings as the command line has them, the search's log
    lines on stderr (when `progress`, and logging is not configured already), and its run log
    file closed at the end."""
    import optuna

    nas_log, root = logging.getLogger("nas"), logging.getLogger()
    shown = None
    if progress and not root.handlers:
        # On the root logger: the progress bar moves the root's handlers out of its way.
        shown = logging.StreamHandler(sys.stderr)
        shown.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(shown)
    verbosity, level = optuna.logging.get_verbosity(), nas_log.level
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        nas_log.setLevel(level)
        if shown is not None:
            root.removeHandler(shown)
        for handler in [h for h in nas_log.handlers if getattr(h, "nas_run_log", False)]:
            nas_log.removeHandler(handler)
            handler.close()
