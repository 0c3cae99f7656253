"""The network an `Arch` describes: stem, stages of blocks, pooled linear head.

`build_network` is the Hydra `_target_` of every architecture YAML.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .layers import conv_bn
from .registry import block_of
from .spec import Arch

__all__ = ["Network", "build_network"]


class Network(nn.Module):
    """A classifier built from an `Arch`; `self.arch` is the spec it was built from."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        self.arch = arch
        stem = [conv_bn(arch.in_channels, arch.stem.channels, 3, stride=arch.stem.stride, act=arch.stem.act)]
        if arch.stem.pool:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)

        stages = []
        channels = arch.stem.channels
        for i, stage in enumerate(arch.stages):
            block = block_of(stage).module
            units = []
            for j in range(stage.repeats):
                units.append(
                    block(
                        channels,
                        stage.out_channels,
                        stride=stage.stride if j == 0 else 1,
                        **stage.unit_kwargs(j, first_in_network=i == 0),
                    )
                )
                channels = stage.out_channels
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(arch.head.dropout) if arch.head.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(channels, arch.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # fan_in keeps every layer's output variance near its input's. torchvision's
                # fan_out makes depthwise outputs ~1e-4 in variance, so in a proxy of a few
                # dozen steps BatchNorm's running variance (initialised to 1) never catches up
                # and eval-mode accuracy collapses to chance.
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        # Residual blocks start as identities (Goyal et al. 2017, "zero gamma"): without it a
        # ShuffleNet's summed post-ReLU features make the first SGD steps blow the logits up.
        for block in self.modules():
            last_bn = getattr(block, "residual_bn", None)
            if isinstance(last_bn, nn.BatchNorm2d):
                nn.init.zeros_(last_bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        x = torch.flatten(self.pool(x), 1)
        return self.classifier(self.dropout(x))


def build_network(**spec: Any) -> Network:
    """Build the network from an architecture YAML's fields (Hydra's `_target_`)."""
    return Network(Arch.from_dict(spec))
