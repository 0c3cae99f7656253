"""Packaging: Hydra finds the `nas` sweeper cheaply, and every config ships in the package.

The wheel itself is built, installed and run by `.ci/run`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from nas.apps.hydra_app import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter: what plugin discovery and the plugin's config module import.
DISCOVER = """\
import json, sys
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
found = [f"{p.__module__}.{p.__name__}" for p in Plugins.instance().discover(Sweeper)]
import hydra_plugins.nas_sweeper.config
import hydra_plugins.nas_sweeper.nas_sweeper
# search_spaces itself is light: its constraints are the settings' schemas; specs and blocks are not.
heavy = sorted(m for m in ("torch", "optuna", "nas", "search_spaces.spec", "search_spaces.blocks") if m in sys.modules)
stored = "nas.yaml" in ConfigStore.instance().list("hydra/sweeper")
print(json.dumps({"found": found, "stored": stored, "heavy": heavy}))
"""


def test_hydra_discovers_the_sweeper_without_importing_the_engine() -> None:
    done = subprocess.run([sys.executable, "-c", DISCOVER], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "hydra_plugins.nas_sweeper.nas_sweeper.NasSweeper" in seen["found"]
    assert seen["stored"], "hydra/sweeper=nas is not in the ConfigStore"
    assert seen["heavy"] == [], f"plugin discovery imported {seen['heavy']}"


# An app that imports the engine before Hydra scans the plugins (as examples/sweeper_app does):
# the scan executes the plugin's modules again, and the settings must stay one set of classes.
ENGINE_FIRST = """\
from hydra_plugins.nas_sweeper._impl import sweeper_settings
from hydra_plugins.nas_sweeper._settings import NasSweeperConfig
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
Plugins.instance().discover(Sweeper)
import hydra_plugins.nas_sweeper.config as config
assert config.NasSweeperConfig is NasSweeperConfig
stored = ConfigStore.instance().load("hydra/sweeper/nas.yaml").node
print(sweeper_settings(stored).data_shape.resolution)
"""


def test_the_engine_and_the_plugin_share_the_settings_classes() -> None:
    done = subprocess.run([sys.executable, "-c", ENGINE_FIRST], cwd=ROOT, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "32"


def test_every_config_group_ships_in_the_package() -> None:
    """pyproject.toml maps conf/ to the package `nas.conf`: each folder of YAML files must be
    listed as a package with its YAML as package data, or a wheel installs without it."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["nas.conf"] == "conf"
    assert CONF_DIR == ROOT / "conf"
    folders = {p.parent for p in CONF_DIR.rglob("*.yaml")}
    for folder in folders:
        package = ".".join(["nas.conf", *folder.relative_to(CONF_DIR).parts])
        assert package in setuptools["packages"], f"tool.setuptools.packages: add {package!r}"
        data = setuptools["package-data"].get(package)
        assert data == ["*.yaml"], f"tool.setuptools.package-data: {package!r} = [\"*.yaml\"]"


def test_the_import_contract_holds() -> None:
    """pyproject.toml's import-linter contracts: layers by stage, no circles, no upward imports."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
