"""Each configuration field's rule is stated once, in its schema's `RULES`, and applied under the
field's dotted path wherever the schema is used (the search, nas-train, the sweeper)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import typing
from pathlib import Path

import pytest

from hydra_plugins.nas_sweeper._settings import NasSweeperConfig
from nas.errors import ConfigError
from nas.search import NasConfig, ProxyConfig
from nas.training import Recipe, TrainConfig
from search_spaces.fields import check_fields

ROOT = Path(__file__).resolve().parent.parent

#: Numeric fields that take any value of their type, and why.
FREE: dict[str, str] = {}

#: Values that some rule of a numeric field refuses; the first one refused is used.
BAD_VALUES = (0, -1, 1.5, 1.0, math.inf, "x", None, 2**40)


def _schemas(root: type, prefix: str) -> list[tuple[str, type]]:
    """(path, schema class) of `root` and every dataclass field below it."""
    found = [(prefix, root)]
    hints = typing.get_type_hints(root)
    for f in dataclasses.fields(root):
        kind = hints[f.name]
        for arg in (kind, *typing.get_args(kind)):  # Optional[X] -> X
            if dataclasses.is_dataclass(arg):
                found += _schemas(arg, f"{prefix}.{f.name}" if prefix else f.name)
    return found


SEARCH_SCHEMAS, SWEEP_SCHEMAS = _schemas(NasConfig, ""), _schemas(NasSweeperConfig, "hydra.sweeper")
SCHEMAS = SEARCH_SCHEMAS + SWEEP_SCHEMAS


@pytest.mark.parametrize("path, schema", SCHEMAS, ids=[p or "root" for p, _ in SCHEMAS])
def test_every_rule_names_a_field_and_every_number_has_a_rule(path: str, schema: type) -> None:
    rules = getattr(schema, "RULES", {})
    names = {f.name for f in dataclasses.fields(schema)}
    assert set(rules) <= names, f"{schema.__name__}.RULES names no field: {set(rules) - names}"
    hints = typing.get_type_hints(schema)
    # Rules that span fields live in the schema's check() (e.g. data.resolution depends on data.name).
    spanning = inspect.getsource(schema.check) if hasattr(schema, "check") else ""
    for f in dataclasses.fields(schema):
        numeric = any(t in (int, float) for t in (hints[f.name], *typing.get_args(hints[f.name])))
        if numeric and f.name not in FREE:
            assert f.name in rules or f"self.{f.name}" in spanning, f"{path}.{f.name} ({schema.__name__}) has no rule"


def test_the_proxy_and_nas_train_share_the_recipe_rules_by_inheritance() -> None:
    for name, rule in Recipe.RULES.items():
        assert ProxyConfig.RULES[name] is rule and TrainConfig.RULES[name] is rule, name


def _configs() -> list[tuple[str, object, list[tuple[str, type]]]]:
    from .conftest import compose_config

    return [("", compose_config(["data=synthetic", "study.name=r", "output_dir=runs/r"]), SEARCH_SCHEMAS),
            ("hydra.sweeper", NasSweeperConfig(), SWEEP_SCHEMAS)]


def _owner(root: object, relative: str) -> object:
    for part in filter(None, relative.split(".")):
        root = getattr(root, part)
    return root


def test_each_rule_refuses_under_its_own_path_and_nowhere_else() -> None:
    """Break one field at a time: `check_fields` of the whole config names exactly that field."""
    checked = 0
    for top, config, schemas in _configs():
        for path, schema in schemas:
            relative = path.removeprefix(top).lstrip(".")
            for name, rule in getattr(schema, "RULES", {}).items():
                bad = next((v for v in BAD_VALUES if rule(name, v) is not None), None)
                owner = _owner(config, relative)
                if owner is None or not isinstance(owner, schema):
                    continue  # an optional group that is off (e.g. hydra.sweeper.halving)
                good = getattr(owner, name)
                setattr(owner, name, bad)
                try:
                    with pytest.raises(ConfigError) as info:
                        check_fields(config, top, ConfigError)
                finally:
                    setattr(owner, name, good)
                field = ".".join(filter(None, (top, relative, name)))
                assert info.value.field == field, (field, str(info.value))
                checked += 1
    assert checked >= 40


def test_no_range_rule_is_written_outside_the_schemas() -> None:
    """The old per-entry-point validators are gone: no module checks a field's range by hand."""
    pattern = re.compile(r"require_(positive|fraction)\(|check_recipe\(|def _validate\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for folder in ("nas", "hydra_plugins", "search_spaces")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("override, field", [
    ("search.probe_samples=0", "search.probe_samples"),
    ("search.probe_samples=-5", "search.probe_samples"),
    ("search.seed=4294967296", "search.seed"),
    ("data.split_seed=-1", "data.split_seed"),
    ("train.seed=-3", "train.seed"),
    ("data.pad_crop=1000", "data.pad_crop"),
    ("proxy.momentum=inf", "proxy.momentum"),
    ("proxy.weight_decay=inf", "proxy.weight_decay"),
])
def test_values_that_used_to_fail_late_are_refused_naming_the_field(make_cfg, override: str, field: str) -> None:
    from nas.search import validate

    with pytest.raises(ConfigError) as info:
        validate(make_cfg(override))
    assert info.value.field == field, str(info.value)


def test_a_journal_path_that_is_a_folder_is_refused(make_cfg, tmp_path: Path) -> None:
    from nas.search import validate

    (tmp_path / "j").mkdir()
    with pytest.raises(ConfigError, match=r"^storage.path: .*j is a folder \(allowed: a journal file"):
        validate(make_cfg("storage=journal", f"storage.path={tmp_path / 'j'}"))


def test_a_pruner_given_on_the_command_line_is_composed_and_a_malformed_one_refused() -> None:
    """`objective.pruner={_target_: ...}` is the documented override; it once failed inside
    OmegaConf's merge (a dict into a null dict node) with a traceback."""
    from nas.apps.hydra_app import compose_config

    base = ["data=synthetic", "study.name=p", "objective=accuracy"]
    cfg = compose_config("search", [*base, "objective.pruner={_target_:optuna.pruners.MedianPruner,n_startup_trials:2}"])
    assert cfg.objective.pruner == {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 2}
    for bad in ("5", "{n_startup_trials:2}"):
        with pytest.raises(ConfigError, match=r"^objective\.pruner: .* is not allowed \(allowed: null, or an Optuna pruner"):
            compose_config("search", [*base, f"objective.pruner={bad}"])
