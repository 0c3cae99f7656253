"""The blocks are the papers' blocks: wiring, channel arithmetic and shortcuts."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from ptflops import get_model_complexity_info
from torch import nn

import nas
from search_spaces import (
    BLOCKS,
    STAGE_TYPES,
    Arch,
    ArchError,
    BlockType,
    DataShape,
    Network,
    Sandglass,
    SandglassStage,
    ShuffleStage,
    ShuffleUnit,
    Stem,
    get_space,
    register_block,
    registered_block,
)
from search_spaces.blocks.shuffle import channel_shuffle
from search_spaces.layers import DepthwiseConv2d

from .toy_block import TOY, ToyBlock, ToyStage

ROOT = Path(__file__).resolve().parent.parent


def _silence_branch(last_bn: nn.BatchNorm2d) -> None:
    """Make a residual branch output exactly zero, leaving only the shortcut."""
    nn.init.zeros_(last_bn.weight)
    nn.init.zeros_(last_bn.bias)


def test_channel_shuffle_interleaves_groups_by_hand() -> None:
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    # groups of 2 channels: (0 1)(2 3)(4 5) -> take one from each group in turn
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_channel_shuffle_matches_pytorch_operator() -> None:
    x = torch.randn(2, 24, 5, 5)
    for g in (1, 2, 3, 4, 8):
        assert torch.equal(channel_shuffle(x, g), F.channel_shuffle(x, g))


def test_channel_shuffle_keeps_a_channels_last_input_in_its_layout() -> None:
    x = torch.randn(2, 24, 5, 5).contiguous(memory_format=torch.channels_last)
    for g in (2, 3, 4, 8):
        out = channel_shuffle(x, g)
        assert torch.equal(out, F.channel_shuffle(x.contiguous(), g))
        assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize(("size", "stride"),
                         [((2, 2), 1), ((1, 1), 1), ((2, 2), 2), ((2, 5), 2), ((1, 3), 1)])
def test_depthwise_on_maps_below_its_kernel_trains_as_pytorch_convolution(
    size: tuple[int, int], stride: int, layout: torch.memory_format
) -> None:
    # Maps smaller than the 3x3 kernel take the tap-by-tap weight gradient; PyTorch's own
    # convolution and its autograd are the truth for the output and both gradients.
    torch.manual_seed(0)
    conv = DepthwiseConv2d(6, 3, stride).double().train()
    x = torch.randn(4, 6, *size, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    w_ref = conv.weight.detach().clone().requires_grad_()
    out = conv(x)
    expected = F.conv2d(x_ref, w_ref, None, stride, 1, 1, 6)
    assert type(out.grad_fn).__name__ == "_SmallMapDepthwiseBackward"  # the path under test was taken
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    assert torch.allclose(out, expected, atol=1e-12)
    assert torch.allclose(conv.weight.grad, w_ref.grad, atol=1e-12)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-12)


def test_depthwise_is_pytorch_convolution_on_larger_maps_and_in_evaluation() -> None:
    conv = DepthwiseConv2d(6, 3, 1).train()
    assert type(conv(torch.randn(2, 6, 3, 3)).grad_fn).__name__ == "ConvolutionBackward0"
    conv.eval()
    assert type(conv(torch.randn(2, 6, 2, 2)).grad_fn).__name__ == "ConvolutionBackward0"


def test_shuffle_unit_channel_arithmetic_follows_paper() -> None:
    # Stride-1 unit, 240 channels, g=3: bottleneck 240/4 = 60; each group of the first 1x1 sees
    # 240/3 = 80 inputs, each group of the last sees 60/3 = 20.
    unit = ShuffleUnit(240, 240, stride=1, groups=3)
    assert unit.compress[0].weight.shape == (60, 80, 1, 1)
    assert unit.depthwise[0].weight.shape == (60, 1, 3, 3)
    assert unit.expand[0].weight.shape == (240, 20, 1, 1)
    # Stride-2 first unit from a 24-channel stem, ungrouped first 1x1: the branch makes
    # 240 - 24 = 216 channels and the bottleneck is still 240/4 = 60.
    first = ShuffleUnit(24, 240, stride=2, groups=3, group_first=False)
    assert first.compress[0].weight.shape == (60, 24, 1, 1)
    assert first.compress[0].groups == 1
    assert first.expand[0].weight.shape == (216, 20, 1, 1)
    assert first.depthwise[0].stride == (2, 2)


def test_stride1_unit_adds_identity_then_relu() -> None:
    unit = ShuffleUnit(48, 48, stride=1, groups=4).eval()
    _silence_branch(unit.expand[1])
    x = torch.randn(2, 48, 6, 6)
    assert torch.equal(unit(x), torch.relu(x))


def test_stride2_unit_concatenates_avgpool_shortcut() -> None:
    unit = ShuffleUnit(24, 96, stride=2, groups=2).eval()
    x = torch.rand(2, 24, 8, 8)  # non-negative, as after a ReLU
    out = unit(x)
    assert out.shape == (2, 96, 4, 4)
    pooled = F.avg_pool2d(x, 3, stride=2, padding=1)
    assert torch.allclose(out[:, :24], pooled)
    assert (out[:, 24:] >= 0).all()  # ReLU after the concatenation


@pytest.mark.parametrize("shuffle", [True, False])
def test_shuffle_sits_between_first_pointwise_and_depthwise(shuffle: bool) -> None:
    unit = ShuffleUnit(36, 36, stride=1, groups=3, shuffle=shuffle).eval()
    x = torch.randn(2, 36, 5, 5)
    h = unit.compress(x)
    if shuffle:
        h = F.channel_shuffle(h, 3)
    expected = torch.relu(x + unit.expand(unit.depthwise(h)))
    assert torch.allclose(unit(x), expected, atol=1e-6)


def test_shuffle_changes_the_function_only_when_switched_on() -> None:
    torch.manual_seed(0)
    on = ShuffleUnit(36, 36, stride=1, groups=3, shuffle=True).eval()
    off = ShuffleUnit(36, 36, stride=1, groups=3, shuffle=False).eval()
    off.load_state_dict(on.state_dict())
    x = torch.randn(2, 36, 5, 5)
    assert not torch.allclose(on(x), off(x))


def test_shuffle_unit_rejects_groups_that_do_not_divide() -> None:
    with pytest.raises(ValueError, match="groups=8"):
        ShuffleUnit(240, 240, stride=1, groups=8)  # bottleneck 60 is not a multiple of 8


def test_sandglass_layer_order_and_activations() -> None:
    block = Sandglass(96, 96, stride=1, reduction=6)
    layers = [block.dw_in, block.reduce, block.expand, block.dw_out]
    kinds = [[type(m).__name__ for m in seq] for seq in layers]
    assert kinds == [
        ["DepthwiseConv2d", "BatchNorm2d", "ReLU6"],  # depthwise at the wide end
        ["Conv2d", "BatchNorm2d"],  # linear reduction
        ["Conv2d", "BatchNorm2d", "ReLU6"],  # expansion
        ["DepthwiseConv2d", "BatchNorm2d"],  # linear depthwise
    ]
    assert block.dw_in[0].groups == 96 and block.dw_out[0].groups == 96
    assert block.reduce[0].weight.shape == (16, 96, 1, 1)  # 96 / t=6
    assert block.expand[0].weight.shape == (96, 16, 1, 1)


def test_sandglass_hidden_width_clamp_from_mnext() -> None:
    # 144 -> 192 with t=6: 144/6 = 24 < 192/6 = 32, so hidden = make_divisible(32, 16) = 32
    assert Sandglass.hidden_width(144, 192, 6) == 32
    # 576 -> 960 with t=6: 96 < 160, ceil(160) rounded to 16 is 160
    assert Sandglass.hidden_width(576, 960, 6) == 160
    # no clamp when in/t is wide enough: 384 / 6 = 64 >= 384 / 6
    assert Sandglass.hidden_width(384, 384, 6) == 64


def test_sandglass_stride_goes_to_the_last_depthwise() -> None:
    block = Sandglass(32, 96, stride=2, reduction=2)
    assert block.dw_in[0].stride == (1, 1)
    assert block.dw_out[0].stride == (2, 2)
    assert block(torch.randn(1, 32, 16, 16)).shape == (1, 96, 8, 8)


def test_sandglass_width_change_drops_depthwise_like_mnext_unless_kept() -> None:
    plain = Sandglass(96, 144, stride=1, reduction=6, keep_3x3=False)
    assert plain.dw_in is None and plain.dw_out is None
    strided = Sandglass(144, 192, stride=2, reduction=6, keep_3x3=False)
    assert strided.dw_in is None and strided.dw_out is not None
    kept = Sandglass(96, 144, stride=1, reduction=6, keep_3x3=True)
    assert kept.dw_in is not None and kept.dw_out is not None


@pytest.mark.parametrize("mult, expected_channels", [(1.0, 8), (0.5, 4), (0.25, 2), (0.3, 2)])
def test_identity_multiplier_adds_shortcut_to_leading_channels(mult: float, expected_channels: int) -> None:
    block = Sandglass(8, 8, stride=1, reduction=2, identity_mult=mult).eval()
    _silence_branch(block.dw_out[1])
    x = torch.randn(2, 8, 4, 4)
    out = block(x)
    k = expected_channels  # round(8 * m)
    assert torch.equal(out[:, :k], x[:, :k])
    assert torch.equal(out[:, k:], torch.zeros_like(out[:, k:]))


@pytest.mark.parametrize("cin, cout, stride", [(8, 8, 2), (8, 16, 1)])
def test_sandglass_has_no_shortcut_when_shape_changes(cin: int, cout: int, stride: int) -> None:
    block = Sandglass(cin, cout, stride=stride, reduction=2).eval()
    _silence_branch(block.dw_out[1])
    out = block(torch.randn(1, cin, 4, 4))
    assert torch.equal(out, torch.zeros_like(out))


def test_only_the_networks_first_pointwise_is_ungrouped() -> None:
    arch = Arch(
        stem=Stem(24, stride=2, pool=True),
        stages=(ShuffleStage(240, 2, groups=3), ShuffleStage(480, 2, groups=3)),
    )
    net = Network(arch)
    firsts = [unit.compress[0].groups for stage in net.stages for unit in stage]
    assert firsts == [1, 3, 3, 3]


@pytest.mark.parametrize(
    "stem, size, expected",
    [
        (Stem(24, stride=2, pool=True), 224, 56),  # ShuffleNet: conv s2 + max-pool
        (Stem(32, stride=2, pool=False, act="relu6"), 224, 112),  # MobileNeXt: conv s2
        (Stem(24, stride=1, pool=False), 28, 28),  # small images: full resolution
    ],
)
def test_stems_downsample_as_their_papers(stem: Stem, size: int, expected: int) -> None:
    arch = Arch(stem=stem, stages=(SandglassStage(16, 1),), in_channels=3, resolution=size)
    net = Network(arch)
    assert net.stem(torch.randn(1, 3, size, size)).shape[-1] == expected
    assert stem.output_size(size) == expected


# -- a third block type, registered only through the registry (tests/toy_block.py) -----------------


def _ptflops(model: nn.Module, arch: Arch) -> tuple[int, int]:
    size = (arch.in_channels, arch.resolution, arch.resolution)
    macs, params = get_model_complexity_info(
        model, size, as_strings=False, print_per_layer_stat=False, backend="aten"
    )
    return int(macs), int(params)


def test_registered_block_type_parses_builds_runs_and_counts() -> None:
    with registered_block(TOY):
        arch = Arch(
            stem=Stem(8),
            stages=(ToyStage(16, 2, stride=2), SandglassStage(32, 1, stride=2, reduction=2)),
            num_classes=10, in_channels=1, resolution=12,
        )
        assert Arch.from_yaml(arch.to_yaml()) == arch
        assert Arch.from_genotype(arch.genotype()) == arch
        assert "|toy_c16_n2_s2|" in arch.genotype()
        model = nas.build_model(arch).eval()
        assert [type(unit) for unit in model.stages[0]] == [ToyBlock, ToyBlock]
        with torch.no_grad():
            assert model(torch.randn(2, 1, 12, 12)).shape == (2, 10)
        ours = nas.complexity(arch)
        macs, params = _ptflops(model, arch)
        assert ours.macs + arch.num_classes == macs  # ptflops also counts the classifier's bias adds
        assert ours.params == params
    # Gone again: the spec no longer reads it.
    assert "toy" not in STAGE_TYPES and "toy" not in BLOCKS
    with pytest.raises(ArchError, match=r"stages\[0\]\.block"):
        Arch.from_dict(
            {"stem": {"channels": 8}, "stages": [{"block": "toy", "out_channels": 16, "repeats": 1}]}
        )


def test_registered_block_type_counts_its_hand_arithmetic() -> None:
    with registered_block(TOY):
        arch = Arch(
            stem=Stem(8), stages=(ToyStage(16, 2, stride=2),), num_classes=10, in_channels=1, resolution=12
        )
        ours = nas.complexity(arch)
    stem = 8 * 1 * 9 * 12 * 12  # 3x3 conv 1 -> 8 at 12x12
    first = 16 * 8 * 9 * 6 * 6  # 3x3 conv 8 -> 16, stride 2: 6x6
    second = 16 * 16 * 9 * 6 * 6  # 3x3 conv 16 -> 16 at 6x6
    head = 16 * 10
    assert ours.parts == (("stem", stem), ("stage0", first + second), ("head", head))
    assert ours.macs == stem + first + second + head == 134_944
    # Weights, BatchNorm scale and shift, classifier weights and bias.
    assert ours.params == (72 + 16) + (1152 + 32) + (2304 + 32) + (160 + 10) == 3_778


class _AlwaysToy:
    """A trial that picks the toy block for every stage and the middle of every range."""

    def __init__(self) -> None:
        self.block_choices: list[tuple[str, ...]] = []

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name.endswith("_block"):
            self.block_choices.append(tuple(choices))
            return "toy"
        return choices[0]

    def suggest_float(self, name: str, low: float, high: float, **_: object) -> float:
        return (low + high) / 2


def test_hybrid_space_draws_a_registered_block_type_with_sampling() -> None:
    trial = _AlwaysToy()
    with registered_block(TOY):
        arch = get_space("hybrid")(trial, DataShape(1, 16, 10))
        assert trial.block_choices == [("shuffle", "sandglass", "toy")] * 3
        assert [type(stage) for stage in arch.stages] == [ToyStage] * 3
        assert all(stage.out_channels % 8 == 0 for stage in arch.stages)
        macs, params = _ptflops(nas.build_model(arch).eval(), arch)
        assert nas.complexity(arch).macs + arch.num_classes == macs
        assert nas.complexity(arch).params == params


def test_registry_refuses_a_second_block_type_with_a_taken_name_or_gene() -> None:
    with pytest.raises(ValueError, match="'shuffle' is already registered"):
        register_block(BlockType(ShuffleStage, ShuffleUnit, ShuffleUnit.count))

    @dataclass(frozen=True)
    class Clash(ToyStage):
        GENE: ClassVar[str] = "sg"  # the sandglass stage's code

    with pytest.raises(ValueError, match="stage.GENE: 'sg' is already the code of block 'sandglass'"):
        register_block(BlockType(Clash, ToyBlock, ToyBlock.count))
    assert "toy" not in STAGE_TYPES


# A new module of search_spaces/blocks/ (here in a folder added to the package's path) that registers
# the toy block as a block file does; whichever block module is imported first, the registry loads
# the built-in ones first and in their fixed order, then the others.
NEW_BLOCK_FILE = """\
import importlib, json, sys
import search_spaces.blocks
search_spaces.blocks.__path__.append(sys.argv[1])
importlib.import_module(sys.argv[2])
from search_spaces.registry import SAMPLED_BLOCKS, STAGE_TYPES
print(json.dumps([list(STAGE_TYPES), list(SAMPLED_BLOCKS)]))
"""


@pytest.mark.parametrize("first", ["search_spaces.registry", "search_spaces.blocks.sandglass"])
def test_a_new_file_in_blocks_registers_after_the_built_in_ones(tmp_path: Path, first: str) -> None:
    # "aaa" sorts before both built-in modules: their order is fixed, not alphabetical.
    (tmp_path / "aaa_toy.py").write_text(
        "from search_spaces.registry import register_block\nfrom tests.toy_block import TOY\n\n"
        "register_block(TOY)\n"
    )
    done = subprocess.run([sys.executable, "-c", NEW_BLOCK_FILE, str(tmp_path), first], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [["shuffle", "sandglass", "toy"]] * 2
