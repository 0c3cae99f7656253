"""Datasets as in-memory uint8 tensors, with a validation split carved from the training set.

The files are read by `nas.data.readers` (IDX, CIFAR, image folders, synthetic); nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from search_spaces import DataShape
from search_spaces.fields import check_fields

from ..errors import ConfigError, DataError
from .config import DataConfig
from .catalog import DATASETS
from .readers import Split

__all__ = ["Dataset", "check_enough", "load_data", "load_dataset", "normalization", "stratified_split"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits of one dataset. The search reads `train` and `val` only."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the 0..1 scale, from the training split
    std: tuple[float, ...]

    @property
    def shape(self) -> DataShape:
        _, channels, height, _ = self.train.images.shape
        return DataShape(in_channels=int(channels), resolution=int(height), num_classes=self.num_classes)


def load_data(data: DataConfig) -> Dataset:
    """The dataset a config's `data` section names, split as it says (see `load_dataset`)."""
    return load_dataset(data.name, data.root, val_fraction=data.val_fraction, split_seed=data.split_seed,
                        resolution=data.resolution, channels=data.channels)


def load_dataset(
    name: str,
    root: str | None = None,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    resolution: int | None = None,
    channels: int | None = None,
) -> Dataset:
    """Read a dataset and hold out `val_fraction` of its training set (stratified) for validation."""
    check_fields(DataConfig(name=name, root=root, val_fraction=val_fraction, split_seed=split_seed,
                            resolution=resolution, channels=channels), "data", ConfigError)
    root = os.path.expandvars(root) if root else None
    train_full, test, classes = DATASETS[name](root, resolution=resolution, channels=channels)
    _check_fixed_size(name, train_full, resolution, channels)
    check_enough(name, train_full, test)
    train, val = stratified_split(train_full, val_fraction, split_seed)
    mean, std = normalization(train)
    log.info("%s: %d train, %d validation, %d test images of %s", name, len(train), len(val), len(test),
             "x".join(map(str, train.images.shape[1:])))
    return Dataset(name, train, val, test, classes, mean, std)


def _check_fixed_size(name: str, data: Split, resolution: int | None, channels: int | None) -> None:
    """A dataset of fixed-size images (IDX, CIFAR) is not resized: a size it does not have is refused
    rather than ignored."""
    _, ch, res, _ = data.images.shape
    if resolution is not None and resolution != res:
        raise ConfigError("data.resolution", f"{name} images are {res}x{res} and are not resized "
                                             f"(allowed: {res}, or null)")
    if channels is not None and channels != ch:
        raise ConfigError("data.channels", f"{name} images have {ch} channel(s) and are not converted "
                                           f"(allowed: {ch}, or null)")


def normalization(train: Split) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of the training images, on the 0..1 scale."""
    scaled = train.images.float().div_(255)
    return tuple(scaled.mean(dim=(0, 2, 3)).tolist()), tuple(scaled.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())


def check_enough(name: str, train: Split, test: Split | None, per_class: int = 2) -> None:
    """Enough images to split: two classes or more in the training images, each with at least
    `per_class` images (two: one held out for validation, one to train on), and a test image
    (`test` None: none is needed)."""
    labels, counts = torch.unique(train.labels, return_counts=True)
    if len(labels) < 2:
        raise DataError(f"data: {name}'s training images are all of one class; a classifier needs at least 2")
    if int(counts.min()) < per_class:
        few = int(labels[counts.argmin()])
        raise DataError(f"data: {name}'s training images hold {len(train)} images, class {few} only "
                        f"{int(counts.min())}; each class needs at least {per_class}"
                        f"{' (one is held out for validation)' if per_class == 2 else ''}")
    if test is not None and len(test) == 0:
        raise DataError(f"data: {name} has no test images")


def stratified_split(data: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    gen = torch.Generator().manual_seed(seed)
    val_index = []
    for label in torch.unique(data.labels):
        members = torch.nonzero(data.labels == label).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        # At least one image of each class held out, and one kept to train on (`check_enough`).
        val_index.append(members[: min(len(members) - 1, max(1, round(len(members) * fraction)))])
    val = torch.cat(val_index)
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[val] = False
    train = torch.nonzero(mask).flatten()
    return Split(data.images[train], data.labels[train]), Split(data.images[val], data.labels[val])
