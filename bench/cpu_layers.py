"""What the two CPU layer fixes give: training speed with them and with PyTorch's own code paths.

    python bench/cpu_layers.py --size cpu --doc bench/NOTES.md

Two layers of the blocks train slower than they need to on the CPU in PyTorch's own code paths:
- the weight gradient of a depthwise convolution on a map smaller than its kernel (the 2x2 maps
  of MobileNeXt's last stages), which `search_spaces.layers.DepthwiseConv2d` sums kernel tap by
  kernel tap instead;
- the channel shuffle of a channels-last activation, which flattened as NCHW lands in the default
  layout, so that the layers after it mix layouts; `channel_shuffle` now keeps the layout.

Each network (the two papers' networks scaled to 5 MMACs and two of the hybrid space, those of
`bench/trainer_options.py`) trains the same steps from the same initialisation on Fashion-MNIST
with `nas.training.Training`, one thread, channels-last (what a search's worker runs), under four
variants: PyTorch's paths for both layers (the baseline, rebuilt here by putting them back), each
fix alone, and both (the code as it is). The variants take turns, round after round; each
round's rates are taken as ratios to that round's baseline, and the table gives the median ratio
over the rounds, so that a slow minute of a shared machine does not land on one variant. ShuffleNet
v1 has no map below 3x3, so its "depthwise fix" runs the very code of the baseline: how far that
cell is from 1.00x is the noise of the measurement. The summed training loss of each variant's run
is listed too: equal where the variants compute the same sums, otherwise alike but not bit-identical.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _harness import Size, add_size_argument, invocation, publish
from trainer_options import networks


@dataclass(frozen=True)
class LayersSize(Size):
    archs: int  # of the space, besides the two references
    steps: int  # timed per round, after `warm` steps
    warm: int
    rounds: int
    batch_size: int


SIZES = {"cpu": LayersSize(5.0, 2, 30, 10, 5, 32)}
#: (tap-sum depthwise weight gradient, layout-keeping shuffle) of each variant; the first is the baseline.
VARIANTS = {"PyTorch's paths": (False, False), "depthwise fix": (True, False), "shuffle fix": (False, True),
            "both (the code)": (True, True)}


def _shuffle_as_nchw(x, groups):  # the shuffle before the fix: its flattening copies into NCHW
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


@contextmanager
def variant(depthwise_fix: bool, shuffle_fix: bool):
    """The layers as in `VARIANTS`, PyTorch's paths put back where a fix is off."""
    from torch import nn

    import search_spaces.blocks.shuffle as shuffle
    from search_spaces.layers import DepthwiseConv2d

    forward, shuffle_fn = DepthwiseConv2d.forward, shuffle.channel_shuffle
    if not depthwise_fix:
        DepthwiseConv2d.forward = nn.Conv2d.forward
    if not shuffle_fix:
        shuffle.channel_shuffle = _shuffle_as_nchw
    try:
        yield
    finally:
        DepthwiseConv2d.forward, shuffle.channel_shuffle = forward, shuffle_fn


def measure(arch_yaml: str, size: LayersSize, data) -> Callable[[], tuple[float, float]]:
    """A function that trains the network anew under the current variant: (images per second
    over the timed steps, summed training loss)."""
    import torch

    from nas.model import build_model
    from nas.training import RunSettings, Training
    from search_spaces import Arch

    def run() -> tuple[float, float]:
        torch.manual_seed(0)
        settings = RunSettings(batch_size=size.batch_size, lr=0.4, seed=0,
                               max_train_images=size.batch_size * (size.warm + size.steps))
        training = Training(build_model(Arch.from_yaml(arch_yaml)), data.train, settings, mean=data.mean,
                            std=data.std, device="cpu")
        training.run_to(size.warm)
        started = time.perf_counter()
        training.run_to(size.warm + size.steps)
        return size.steps * size.batch_size / (time.perf_counter() - started), training.loss_sum
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_argument(parser, SIZES)
    parser.add_argument("--doc", type=Path, help="also write the table into this file (bench/NOTES.md)")
    args = parser.parse_args()
    size = SIZES[args.size]

    import torch

    from nas.data import load_dataset

    torch.set_num_threads(1)
    data = load_dataset("fashion_mnist")
    started = time.perf_counter()
    labels = list(VARIANTS)
    rates: dict[str, dict[str, list[float]]] = {}
    losses: dict[str, dict[str, float]] = {}
    for name, arch in networks(size).items():
        run = measure(arch, size, data)
        rates[name], losses[name] = {label: [] for label in labels}, {}
        for _ in range(size.rounds):
            for label, fixes in VARIANTS.items():
                with variant(*fixes):
                    rate, losses[name][label] = run()
                rates[name][label].append(rate)
        medians = ", ".join(f"{k} {statistics.median(v):.0f} img/s" for k, v in rates[name].items())
        print(f"{name}: {medians}", flush=True)

    minutes = (time.perf_counter() - started) / 60
    lines = [(f"Made by `{invocation(__file__)}` on {platform.machine()}, torch {torch.__version__}, "
              f"{time.strftime('%Y-%m-%d')}, in {minutes:.1f} min; {size.steps} steps of batch "
              f"{size.batch_size} after {size.warm} warm-up steps, 1 thread, channels-last, "
              f"{size.rounds} rounds. Training images per second as a ratio to `{labels[0]}` in the "
              "same round, the median over the rounds (the baseline's median rate in brackets)."), "",
             "| network | " + " | ".join(labels) + " | summed loss, each variant |",
             "|---|" + "---|" * (len(labels) + 1)]
    for name, by_label in rates.items():
        base = by_label[labels[0]]
        ratios = [statistics.median(r / b for r, b in zip(by_label[k], base, strict=True))
                  for k in labels[1:]]
        cells = [f"1.00x ({statistics.median(base):.0f} img/s)"] + [f"{r:.2f}x" for r in ratios]
        summed = ", ".join(f"{losses[name][k]:.2f}" for k in labels)
        lines.append(f"| {name} | {' | '.join(cells)} | {summed} |")
    publish("\n".join(lines) + "\n", f"cpu_layers_{args.size}.md", "CPU layer fixes", args.doc,
            f"cpu-layers-{args.size}")


if __name__ == "__main__":
    main()
