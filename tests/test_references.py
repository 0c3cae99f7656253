"""The reference networks reproduce the papers' published complexity.

Numbers come from ShuffleNet v1 (Zhang et al., CVPR 2018) Table 1 and the authors' released
models, and from the MobileNeXt README (Zhou et al., ECCV 2020); ptflops is the second counter.
"""

from __future__ import annotations

import pytest
from ptflops import get_model_complexity_info

import nas
from search_spaces import reference, references

# Table 1: (stage 2/3/4 output channels, conv-only MFLOPs) at 1x, 224x224.
SHUFFLENET_TABLE1 = {
    1: ((144, 288, 576), 143),
    2: ((200, 400, 800), 140),
    3: ((240, 480, 960), 137),
    4: ((272, 544, 1088), 133),
    8: ((384, 768, 1536), 137),
}


@pytest.mark.parametrize("groups", sorted(SHUFFLENET_TABLE1))
def test_shufflenet_table1_channels_and_conv_mflops(groups: int) -> None:
    channels, mflops = SHUFFLENET_TABLE1[groups]
    arch = reference(f"shufflenet_v1_g{groups}_1.0x")
    assert tuple(s.out_channels for s in arch.stages) == channels
    assert tuple(s.repeats for s in arch.stages) == (4, 8, 4)
    result = nas.complexity(arch)
    conv_only = result.macs - dict(result.parts)["head"]
    assert round(conv_only / 1e6) == mflops


def test_shufflenet_released_models_with_classifier() -> None:
    assert nas.complexity(reference("shufflenet_v1_g3_1.0x")).mmacs == pytest.approx(137.5, abs=0.05)
    assert round(nas.complexity(reference("shufflenet_v1_g3_2.0x")).mmacs) == 524
    # ShuffleNet 1.5x (g = 3): 292 MFLOPs in the paper's comparison with MobileNet.
    assert round(nas.complexity(reference("shufflenet_v1_g3_1.5x")).mmacs) == 292


@pytest.mark.parametrize(
    "width, madds, tolerance",
    [("1.4", 590, 0.05), ("1.0", 300, 0.05), ("0.75", 210, 0.05), ("0.5", 110, 0.08), ("0.35", 80, 0.08)],
)
def test_mobilenext_readme_madds(width: str, madds: float, tolerance: float) -> None:
    assert nas.complexity(reference(f"mobilenext_{width}")).mmacs == pytest.approx(madds, rel=tolerance)


def test_mobilenext_1_0_params() -> None:
    assert nas.complexity(reference("mobilenext_1.0")).mparams == pytest.approx(3.5, rel=0.02)


def test_mobilenext_stage_list_has_erratum_depth() -> None:
    arch = reference("mobilenext_1.0")
    assert [(s.reduction, s.out_channels, s.repeats, s.stride) for s in arch.stages] == [
        (2, 96, 1, 2), (6, 144, 1, 1), (6, 192, 3, 2), (6, 288, 3, 2),
        (6, 384, 4, 1), (6, 576, 4, 2), (6, 960, 3, 1), (6, 1280, 1, 1),
    ]


def test_reference_names() -> None:
    names = references()
    assert len(names) == 25 + 5
    assert "shufflenet_v1_g8_0.25x" in names and "mobilenext_1.4" in names
    with pytest.raises(KeyError, match="unknown reference"):
        reference("shufflenet_v1_g5_1.0x")


def _ptflops(arch: nas.Arch, size: tuple[int, int, int]) -> tuple[int, int]:
    model = nas.build_model(arch).eval()
    macs, params = get_model_complexity_info(
        model, size, as_strings=False, print_per_layer_stat=False, backend="aten"
    )
    return int(macs), int(params)


@pytest.mark.parametrize("name", references())
def test_analytic_count_equals_ptflops_aten(name: str) -> None:
    for size in ((3, 224, 224), (1, 28, 28)):
        arch = reference(name, in_channels=size[0], resolution=size[1])
        ours = nas.complexity(arch)
        macs, params = _ptflops(arch, size)
        # ptflops' aten backend also counts the classifier's bias additions (one per class).
        assert ours.macs + arch.num_classes == macs
        assert ours.params == params
