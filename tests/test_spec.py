"""One spec everywhere: YAML and genotype round trips, Hydra instantiation, validation, counting."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

import nas
from search_spaces import Arch, ArchError, Head, SandglassStage, ShuffleStage, Stem, reference, references
from search_spaces.checks import MAX_REPEATS, MAX_STAGES

HYBRID = Arch(
    stem=Stem(24, stride=1),
    stages=(
        ShuffleStage(96, 2, groups=4, shuffle=False),
        SandglassStage(192, 3, stride=2, reduction=4, identity_mult=0.5),
        ShuffleStage(384, 1, groups=8),
    ),
    head=Head(dropout=0.1),
    num_classes=10,
    in_channels=1,
    resolution=28,
)


@pytest.mark.parametrize("arch", [HYBRID, reference("mobilenext_0.75"), reference("shufflenet_v1_g8_0.5x")])
def test_yaml_round_trip_is_exact(arch: Arch) -> None:
    text = arch.to_yaml()
    again = Arch.from_yaml(text)
    assert again == arch
    assert again.to_yaml() == text


def test_yaml_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "arch.yaml"
    path.write_text(HYBRID.to_yaml())
    assert Arch.from_yaml(path) == HYBRID
    assert Arch.from_yaml(str(path)) == HYBRID


def test_hydra_instantiate_returns_the_same_model() -> None:
    cfg = OmegaConf.create(yaml.safe_load(HYBRID.to_yaml()))
    model = instantiate(cfg)
    assert isinstance(model, nas.Network)
    assert model.arch == HYBRID
    reference_model = nas.build_model(HYBRID)
    model.load_state_dict(reference_model.state_dict())  # same parameter names and shapes
    model.eval(), reference_model.eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), reference_model(x))


@pytest.mark.parametrize("arch", [HYBRID, *(reference(n) for n in references()[::4])])
def test_genotype_round_trip(arch: Arch) -> None:
    assert Arch.from_genotype(arch.genotype()) == arch


def test_genotype_reads_like_the_spec() -> None:
    assert HYBRID.genotype() == (
        "in_c1_r28_k10|stem_c24_s1_p0_relu|shuf_c96_n2_s2_g4_x0|sg_c192_n3_s2_t4_m0.5_k1|"
        "shuf_c384_n1_s2_g8_x1|head_d0.1"
    )


def test_hand_counted_macs_of_a_tiny_network() -> None:
    arch = Arch(stem=Stem(8), stages=(ShuffleStage(32, 1, groups=2),), num_classes=10, in_channels=1, resolution=8)
    stem = 8 * 1 * 9 * 8 * 8  # 3x3 conv, 1 -> 8 channels, 8x8 output
    compress = 8 * 8 * 8 * 8  # first unit: ungrouped 1x1, 8 -> bottleneck 32/4 = 8, at 8x8
    depthwise = 8 * 9 * 4 * 4  # 3x3 depthwise, stride 2 -> 4x4
    expand = 24 * (8 // 2) * 4 * 4  # grouped 1x1 (g=2), 8 -> 32 - 8 = 24 channels
    head = 32 * 10
    assert nas.complexity(arch).macs == stem + compress + depthwise + expand + head
    params = (8 * 9 + 16) + (8 * 8 + 16) + (8 * 9 + 16) + (24 * 4 + 48) + (320 + 10)
    assert nas.complexity(arch).params == params
    assert sum(p.numel() for p in nas.build_model(arch).parameters()) == params


@pytest.mark.parametrize(
    "change, field",
    [
        ({"stages": (ShuffleStage(96, 2, groups=4), ShuffleStage(96, 1, groups=4))}, "stages[1].out_channels"),
        ({"stages": (ShuffleStage(96, 1, stride=1, groups=4),)}, "stages[0].stride"),
        ({"stages": (SandglassStage(100, 1), ShuffleStage(192, 1, groups=8))}, "stages[1].groups"),
        ({"stages": (ShuffleStage(120, 1, groups=5),)}, "stages[0].out_channels"),  # 120 - 24 stem
        ({"stages": (ShuffleStage(48, 1, groups=4), ShuffleStage(120, 1, groups=5))}, "stages[1].groups"),
        ({"num_classes": 0}, "num_classes"),
        ({"stages": ()}, "stages"),
    ],
)
def test_invalid_specs_name_the_field(change: dict, field: str) -> None:
    with pytest.raises(ArchError) as info:
        HYBRID.replace(**change)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d["stages"][0].update(groups=5), "stages[0].out_channels"),
        (lambda d: d["stages"][1].update(block="inverted"), "stages[1].block"),
        (lambda d: d["stages"][1].update(reducton=4), "stages[1].reducton"),
        (lambda d: d["stem"].update(stride=3), "stem.stride"),
        (lambda d: d["stages"][1].update(identity_mult=1.5), "stages[1].identity_mult"),
        (lambda d: d.update(_target_="os.system"), "_target_"),
        (lambda d: d["head"].update(dropout="high"), "head.dropout"),
    ],
)
def test_invalid_yaml_names_the_field(edit, field: str) -> None:
    data = yaml.safe_load(HYBRID.to_yaml())
    edit(data)
    with pytest.raises(ArchError) as info:
        Arch.from_yaml(yaml.safe_dump(data))
    assert info.value.field == field


def test_unsafe_yaml_tags_are_refused() -> None:
    with pytest.raises(ArchError, match="not valid YAML"):
        Arch.from_yaml("!!python/object/apply:os.system ['echo hi']\n")


CLI = ["-m", "nas", "complexity"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *CLI, *args], capture_output=True, text=True, check=False)


def test_complexity_cli_json_for_reference_and_yaml(tmp_path: Path) -> None:
    done = _cli("shufflenet_v1_g3_1.0x", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["mmacs"] == pytest.approx(137.5, abs=0.05)
    assert record["params"] > 1_800_000
    path = tmp_path / "g3.yaml"
    path.write_text(reference("shufflenet_v1_g3_1.0x").to_yaml())
    from_yaml = json.loads(_cli(str(path), "--json").stdout)
    assert (from_yaml["macs"], from_yaml["params"]) == (record["macs"], record["params"])


def test_complexity_cli_bad_input_is_one_line_and_status_2() -> None:
    done = _cli("no_such_network")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("error: NAME_OR_YAML:")
    assert _cli("mobilenext_1.0", "--input-size", "3,224").returncode == 2


# -- bounds: huge counts are refused at once, never built or counted unit by unit ----------------


def test_yaml_with_a_trillion_repeats_is_refused_naming_the_field() -> None:
    data = yaml.safe_load(HYBRID.to_yaml())
    data["stages"][0]["repeats"] = 10**12
    started = time.perf_counter()
    with pytest.raises(ArchError) as info:
        Arch.from_yaml(yaml.safe_dump(data))
    assert time.perf_counter() - started < 1.0
    assert info.value.field == "stages[0].repeats"
    assert str(info.value) == f"stages[0].repeats: 1000000000000 is out of range (allowed: 1..{MAX_REPEATS})"


def test_genotype_with_a_20_digit_repeat_count_is_refused_naming_the_stage() -> None:
    text = HYBRID.genotype().replace("_n3_", "_n12345678901234567890_")
    with pytest.raises(ArchError, match=r"^stages\[1\]\.repeats: 12345678901234567890 is out of range"):
        Arch.from_genotype(text)


def test_more_stages_than_allowed_are_refused_before_any_is_read() -> None:
    stage = "|".join(["shuf_c96_n1_s1_g4_x1"] * 100_000)
    text = f"in_c1_r28_k10|stem_c24_s1_p0_relu|shuf_c96_n1_s2_g4_x1|{stage}|head_d0"
    started = time.perf_counter()
    with pytest.raises(ArchError, match=rf"^stages: 100001 stages is too many \(allowed: 1..{MAX_STAGES}\)"):
        Arch.from_genotype(text)
    data = yaml.safe_load(HYBRID.to_yaml())
    data["stages"] = data["stages"][:1] * 100
    with pytest.raises(ArchError, match=rf"^stages: 100 stages is too many \(allowed: 1..{MAX_STAGES}\)"):
        Arch.from_dict(data)
    assert time.perf_counter() - started < 1.0


def test_the_largest_allowed_network_is_counted_within_a_second() -> None:
    stages = (ShuffleStage(96, MAX_REPEATS, groups=4),) + (ShuffleStage(96, MAX_REPEATS, stride=1, groups=4),) * (MAX_STAGES - 1)
    arch = Arch(stem=Stem(24), stages=stages, num_classes=10, in_channels=1, resolution=28)
    started = time.perf_counter()
    cost = nas.complexity(arch)
    assert time.perf_counter() - started < 1.0
    two = nas.complexity(Arch(stem=Stem(24), stages=(ShuffleStage(96, 2, groups=4),), num_classes=10,
                              in_channels=1, resolution=28))
    three = nas.complexity(Arch(stem=Stem(24), stages=(ShuffleStage(96, 3, groups=4),), num_classes=10,
                                in_channels=1, resolution=28))
    per_unit = three.macs - two.macs  # one more stride-1 unit at 96 channels, 14x14
    assert cost.macs == two.macs + per_unit * (MAX_REPEATS * MAX_STAGES - 2)
    assert cost.params == two.params + (three.params - two.params) * (MAX_REPEATS * MAX_STAGES - 2)


def test_complexity_cli_refuses_a_trillion_repeats_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(HYBRID.to_yaml().replace("repeats: 3", f"repeats: {10**12}"))
    done = subprocess.run([sys.executable, *CLI, str(path)], capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: stages[1].repeats: 1000000000000 is out of range"), done.stderr


# -- genotype round trip --------------------------------------------------------------------------


def test_genotype_round_trips_widths_over_a_million_and_floats_with_many_digits() -> None:
    arch = Arch(
        stem=Stem(24),
        stages=(ShuffleStage(1_200_000, 2, groups=3), SandglassStage(1_200_000, 1, identity_mult=0.123456789)),
        head=Head(dropout=1e-5),
        num_classes=10, in_channels=1, resolution=28,
    )
    text = arch.genotype()
    assert "c1200000" in text and "e+06" not in text
    assert Arch.from_genotype(text) == arch
    assert HYBRID.genotype().endswith("|sg_c192_n3_s2_t4_m0.5_k1|shuf_c384_n1_s2_g8_x1|head_d0.1")  # unchanged


# -- every module imports on its own --------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "search_spaces").rglob("*.py")
)

# A fresh interpreter imports one module (argv[1]), then parses and builds with the spec's modules
# alone: the registry must fill itself, whatever was imported first, in its fixed order.
ALONE = """\
import importlib, sys
importlib.import_module(sys.argv[1])
from search_spaces.spec import Arch
assert Arch.from_yaml(sys.stdin.read()).genotype() == sys.argv[2]
from search_spaces.spec import Stem
from search_spaces.blocks.shuffle import ShuffleStage
Arch(stem=Stem(24), stages=(ShuffleStage(240, 4, groups=3),), num_classes=10, in_channels=1, resolution=28)
from search_spaces.registry import STAGE_TYPES
assert list(STAGE_TYPES) == ["shuffle", "sandglass"], list(STAGE_TYPES)
"""


def test_every_module_of_search_spaces_imports_alone_and_the_spec_works() -> None:
    assert {"search_spaces.spec", "search_spaces.blocks.shuffle", "search_spaces.blocks.sandglass"} <= {*MODULES}

    def run(module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", ALONE, module, HYBRID.genotype()], cwd=ROOT,
                              input=HYBRID.to_yaml(), capture_output=True, text=True, check=False, timeout=120)

    # One interpreter per module (each imports torch for seconds), a few at a time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(zip(MODULES, pool.map(run, MODULES)))
    failed = {m: d.stderr.strip().splitlines()[-1:] for m, d in done.items() if d.returncode}
    assert not failed, failed
