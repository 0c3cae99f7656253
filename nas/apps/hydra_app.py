"""Running an entry point as a Hydra app over the project's configs: where the configs are, a
config composed and checked before Hydra starts (one-line errors), signals, Optuna's logging."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import report_user_errors
from ..interrupts import interrupt_on_signals
from ..secrets import hide_passwords

__all__ = ["CONF_DIR", "compose_config", "quiet_optuna", "register_configs", "run_hydra_app"]


def _conf_dir() -> Path:
    """The Hydra configs: `nas/conf/` where the package was installed from a wheel (pyproject.toml
    maps the repository's `conf/` to the package `nas.conf`), else `conf/` at the root of the
    source checkout this package was imported from (an editable install, or the checkout itself)."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent / "conf"):
        if (candidate / "search.yaml").is_file():
            return candidate
    return package / "conf"  # not there: Hydra's error names this folder


#: The project's Hydra configs (see `_conf_dir`).
CONF_DIR = _conf_dir()


# Hydra's own flags: with any of them Hydra handles the command line itself (help, multirun, ...).
HYDRA_FLAGS = ("-m", "--multirun", "-h", "--help", "--hydra-help", "-c", "--cfg", "--resolve", "-i", "--info",
               "--version", "-sc", "--shell-completion", "-cp", "--config-path", "-cn", "--config-name",
               "-cd", "--config-dir", "-p", "--package", "--experimental-rerun")


def compose_config(config_name: str, overrides: list[str]) -> Any:
    """The config `overrides` make of `conf/<config_name>.yaml`, as its dataclass (`NasConfig`),
    with every field's rule applied: a composition error (unknown choice or key, a value of the
    wrong type) or a refused value is a `ConfigError` naming the field."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from search_spaces.fields import check_fields

    from ..errors import ConfigError

    register_configs()
    _check_override_sizes(overrides)
    # Called inside a Hydra app (a job that searches), Hydra is initialized already: set aside.
    outer = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            settings = OmegaConf.to_object(compose(config_name=config_name, overrides=overrides))
    except MissingConfigException as err:
        group, _, choice = str(err.missing_cfg_file).rpartition("/")
        options = [o for o in (err.options or []) if not o.endswith("_schema")]
        raise ConfigError(group or "config", f"{choice!r} is not available (allowed: {', '.join(options)})") from None
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        key = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), "")
        shown = lines[0] if lines else type(err).__name__
        raise ConfigError(key or "overrides", shown if len(shown) <= 300 else f"{shown[:300]}...") from None
    finally:
        if outer is not None:
            GlobalHydra.instance().initialize(outer)
    check_fields(settings, "", ConfigError)
    return settings


#: Limits on an override's value, checked before Hydra's parser (which recurses once per bracket)
#: and Python's int() (which refuses over 4,300 digits) see it: no field needs more.
MAX_NESTING, MAX_DIGITS = 32, 100
#: Hydra config files a run reads from --config-dir may expand their aliases to this many values.
MAX_YAML_VALUES = 100_000


def _check_override_sizes(overrides: list[str]) -> None:
    """Refuse, naming the key, an override nested deeper than MAX_NESTING brackets or holding a
    number of more than MAX_DIGITS digits."""
    from ..errors import ConfigError

    for arg in overrides:
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        depth = deepest = 0
        for char in value:
            depth += char in "[{("
            depth -= char in "]})" and depth > 0
            deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            raise ConfigError(key, f"the value is nested {deepest} brackets deep (allowed: up to {MAX_NESTING})")
        longest = max((len(run) for run in re.findall(r"\d+", value)), default=0)
        if longest > MAX_DIGITS:
            raise ConfigError(key, f"the value holds a number of {longest} digits (allowed: up to {MAX_DIGITS})")


def check_config_files(args: list[str]) -> None:
    """Refuse a YAML file of a `--config-dir` (`-cd`) folder whose aliases would expand to more than
    MAX_YAML_VALUES values (a "billion laughs" file: a few hundred bytes that OmegaConf would
    expand into gigabytes), or that is nested too deeply to read, before Hydra loads it. The
    aliases are counted on the composed node graph, where each is one shared node: no expansion."""
    import yaml

    from ..errors import ConfigError

    folders = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-cd", "--config-dir")]
    folders += [a.split("=", 1)[1] for a in args if a.startswith("--config-dir=")]
    for folder in map(Path, folders):
        for path in sorted(folder.rglob("*.yaml"))[:1000] if folder.is_dir() else []:
            try:
                values = _expanded_size(yaml.compose(path.read_text(errors="replace")), {}) if path.stat().st_size else 0
            except (yaml.YAMLError, OSError):
                continue  # Hydra reports what is wrong with it
            except RecursionError:
                raise ConfigError(str(path), "it is nested too deeply to read") from None
            if values > MAX_YAML_VALUES:
                raise ConfigError(str(path), f"its YAML aliases expand to {values:,} values (allowed: up to "
                                             f"{MAX_YAML_VALUES:,}), which would take gigabytes to load")


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """Values a composed YAML node stands for once its aliases are expanded (`sizes`: by node, so
    that a node shared by many aliases is counted once per use without being walked again)."""
    if node is None:
        return 0
    if id(node) not in sizes:
        children = node.value if isinstance(node.value, list) else []
        sizes[id(node)] = 1 + sum(_expanded_size(c, sizes) for item in children
                                  for c in (item if isinstance(item, tuple) else (item,)))
    return sizes[id(node)]


def _check_overrides(config_name: str, args: list[str], verbose: bool) -> None:
    """Compose the config as Hydra will (`compose_config`) and turn what it refuses into one line
    and exit status 2, before Hydra prints its own error or makes any folder (the fields' rules
    too: a value they refuse never reaches Hydra, which would make hydra.run.dir first)."""
    if any(a.split("=", 1)[0] in HYDRA_FLAGS for a in args) or verbose:
        return
    from ..errors import ConfigError

    try:
        compose_config(config_name, [a for a in args if not a.lstrip("+~").startswith("hydra")])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def _quote_non_ascii(args: list[str]) -> list[str]:
    """Hydra's override grammar reads unquoted values as ASCII only, though such a value (a folder
    with accents, a study name) can only be a string: quote it, so that it is read as the string it
    is and validated like any other value."""
    quoted = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.isascii() and not value.isascii() and not any(c in value for c in "'\"\\$[]{}(),"):
            arg = f"{key}='{value}'"
        quoted.append(arg)
    return quoted


def run_hydra_app(config_name: str, task: Callable[[Any], Any]) -> None:
    """Run `task(config)` (the config as `NasConfig`) as a Hydra app over `conf/`, turning user
    errors into one line."""
    import hydra
    from omegaconf import DictConfig, OmegaConf

    verbose = "--verbose" in sys.argv
    if verbose:
        sys.argv.remove("--verbose")
    register_configs()
    interrupt_on_signals()
    try:
        # Before Hydra sees the command line: it writes and prints the overrides (multirun.yaml,
        # launch lines), and loads the config files of --config-dir.
        sys.argv[1:] = hide_passwords(_quote_non_ascii(sys.argv[1:]), ("storage.url",))
        check_config_files(sys.argv[1:])
        _check_override_sizes([a for a in sys.argv[1:] if "=" in a and not a.startswith("-")])  # -m too
    except ValueError as err:  # ConfigError too
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _check_overrides(config_name, sys.argv[1:], verbose or os.environ.get("HYDRA_FULL_ERROR") == "1")

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def app(cfg: DictConfig) -> Any:
        quiet_optuna()  # again here: launchers may run the job in another process
        settings = OmegaConf.to_object(cfg)
        return report_user_errors(lambda: task(settings), verbose=verbose or settings.verbose)

    app()


def register_configs() -> None:
    """Register the schemas once, so that Hydra type-checks every override against them."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from ..data import DataConfig
    from ..search import NasConfig, ObjectiveConfig, ProxyConfig, SpaceConfig, StorageConfig, worker_seed

    if not OmegaConf.has_resolver("worker_seed"):
        OmegaConf.register_new_resolver("worker_seed", worker_seed)
    cs = ConfigStore.instance()
    cs.store(name="nas_schema", node=NasConfig)
    for group, node in (("space", SpaceConfig), ("data", DataConfig), ("proxy", ProxyConfig),
                        ("objective", ObjectiveConfig), ("storage", StorageConfig)):
        cs.store(group=group, name=f"{group}_schema", node=node)


def quiet_optuna() -> None:
    """Optuna's logging and warnings down to what a user can act on."""
    import warnings

    import optuna

    # Failed trials are logged by the search with their reason (and kept in the study); Optuna's
    # own report of them adds a traceback per trial.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Heartbeats, grouped TPE, metric names and artifacts are marked experimental; the warnings
    # say nothing a user can act on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
