"""Trial and study attribute names are spelled once, in nas.attrs: every reader and writer in the
engine, the plugin and the benchmarks goes through the constants."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nas.attrs import Status, StudyAttr, TrialAttr

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for folder in ("nas", "hydra_plugins", "bench") for p in (ROOT / folder).rglob("*.py")
                 if p.name != "attrs.py")
MAPPINGS = {"user_attrs", "attrs", "system_attrs"}


def _is_mapping(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    return name in MAPPINGS


def _literal_keys(tree: ast.AST) -> list[tuple[int, str]]:
    """String literals used as attribute names: set_user_attr("x", ...), attrs["x"],
    attrs.get("x"), "x" in attrs, user_attrs={"x": ...}."""
    found = []
    for node in ast.walk(tree):
        keys: list[ast.expr] = []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "set_user_attr" and node.args:
                keys.append(node.args[0])
            elif node.func.attr == "set_trial_user_attr" and len(node.args) > 1:
                keys.append(node.args[1])
            elif node.func.attr == "get" and _is_mapping(node.func.value) and node.args:
                keys.append(node.args[0])
            for kw in node.keywords:
                if kw.arg == "user_attrs" and isinstance(kw.value, ast.Dict):
                    keys.extend(k for k in kw.value.keys if k is not None)
        elif isinstance(node, ast.Subscript) and _is_mapping(node.value):
            keys.append(node.slice)
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if any(_is_mapping(c) for c in node.comparators):
                keys.append(node.left)
        found += [(k.lineno, k.value) for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_attribute_name_is_spelled_as_a_literal(path: Path) -> None:
    assert _literal_keys(ast.parse(path.read_text())) == []


def test_the_check_finds_each_way_of_spelling_a_key() -> None:
    code = '''
trial.set_user_attr("status", "admitted")
storage.set_trial_user_attr(tid, "failure", reason)
t.user_attrs["macs"]; attrs.get("val_acc"); "status" in t.user_attrs
study.enqueue_trial(params, user_attrs={"prescreened_from": []})
trial.set_user_attr(TrialAttr.STATUS, Status.ADMITTED)
'''
    assert [k for _, k in _literal_keys(ast.parse(code))] == [
        "status", "failure", "macs", "val_acc", "status", "prescreened_from"]


def test_names_are_distinct_and_compare_equal_to_the_stored_strings() -> None:
    for enum in (TrialAttr, StudyAttr, Status):
        values = [m.value for m in enum]
        assert len(values) == len(set(values))
    # What a storage gives back is plain str; the constants must find it.
    stored = {"status": "admitted", "val_acc": 0.5}
    assert stored[TrialAttr.STATUS] == Status.ADMITTED and stored.get(TrialAttr.VAL_ACC) == 0.5
