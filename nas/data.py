"""Datasets as in-memory uint8 tensors, with a validation split carved from the training set.

Readers for IDX (MNIST, Fashion-MNIST), the CIFAR python-pickle layout, class-per-folder image
trees and a small learnable synthetic set. Nothing is downloaded: missing files raise a
`DataError` that says where we looked and how to get them.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from search_spaces import DataShape

from .errors import ConfigError, DataError

__all__ = ["DATASETS", "Dataset", "Split", "load_dataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """Images (N, C, H, W) uint8 and labels (N,) int64 on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, count: int, seed: int) -> Split:
        """A random `count` of the examples (all of them when count >= len)."""
        if count >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:count]
        return Split(self.images[index], self.labels[index])


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


# -- readers -------------------------------------------------------------------------------------


def _open(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def _read_idx(path: Path) -> np.ndarray:
    raw = _open(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def _find(name: str, root: str | None, defaults: Sequence[str], required: Sequence[str], how: str) -> Path:
    """The first candidate folder holding every required file (plain or .gz)."""
    candidates = [Path(root).expanduser()] if root else [Path(p).expanduser() for p in defaults]
    for folder in candidates:
        if all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in required):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise DataError(
        f"data.root: {name} not found (looked in {looked} for {', '.join(required)}). {how}"
    )


def _file(folder: Path, name: str) -> Path:
    plain = folder / name
    return plain if plain.is_file() else folder / f"{name}.gz"


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_dataset(name: str, defaults: Sequence[str], how: str) -> Callable[..., tuple[Split, Split, int]]:
    def load(root: str | None, **_: object) -> tuple[Split, Split, int]:
        folder = _find(name, root, defaults, IDX_FILES, how)
        images = [torch.from_numpy(_read_idx(_file(folder, f)).copy()) for f in IDX_FILES]
        train = Split(images[0].unsqueeze(1), images[1].long())
        test = Split(images[2].unsqueeze(1), images[3].long())
        return train, test, 10

    return load


def _cifar(root: str | None, *, fine: bool, **_: object) -> tuple[Split, Split, int]:
    if fine:
        folder = _find("CIFAR-100", root, (".data/cifar-100-python",), ("train", "test"), CIFAR_HOW)
        batches, test_batches, key, classes = ["train"], ["test"], b"fine_labels", 100
    else:
        names = [f"data_batch_{i}" for i in range(1, 6)]
        folder = _find("CIFAR-10", root, (".data/cifar-10-batches-py",), [*names, "test_batch"], CIFAR_HOW)
        batches, test_batches, key, classes = names, ["test_batch"], b"labels", 10

    def read(files: list[str]) -> Split:
        xs, ys = [], []
        for f in files:
            with open(folder / f, "rb") as handle:
                # The CIFAR files are pickles by design; read only from a folder the user named.
                entry = pickle.load(handle, encoding="bytes")  # noqa: S301
            xs.append(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry[key], dtype=np.int64))
        return Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))

    return read(batches), read(test_batches), classes


CIFAR_HOW = (
    "Download the python version from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and "
    "set data.root to the unpacked folder."
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _imagefolder(root: str | None, *, resolution: int | None, channels: int | None, **_: object) -> tuple[Split, Split, int]:
    from PIL import Image

    if not root:
        raise ConfigError("data.root", "imagefolder needs data.root=DIR (a folder with one subfolder per class)")
    if not resolution:
        raise ConfigError("data.resolution", "imagefolder needs the image size to resize to, e.g. data.resolution=32")
    if channels not in (1, 3):
        raise ConfigError("data.channels", f"{channels!r} is not allowed (allowed: 1, 3)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"data.root: {base} is not a folder")
    # A tree with train/ and test/ keeps its own test split; otherwise 1 in 6 images is test.
    has_splits = (base / "train").is_dir() and (base / "test").is_dir()
    train_dir = base / "train" if has_splits else base
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"data.root: {train_dir} has no class subfolders")
    mode = "L" if channels == 1 else "RGB"

    def read(folder: Path) -> Split:
        xs, ys = [], []
        for label, cls in enumerate(classes):
            for path in sorted((folder / cls).glob("*")):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                with Image.open(path) as img:
                    img = img.convert(mode).resize((resolution, resolution), Image.BILINEAR)
                    xs.append(np.asarray(img, dtype=np.uint8).reshape(resolution, resolution, channels))
                ys.append(label)
        if not xs:
            raise DataError(f"data.root: no PNG or JPEG images under {folder}")
        images = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
        return Split(images, torch.tensor(ys, dtype=torch.long))

    if has_splits:
        return read(train_dir), read(base / "test"), len(classes)
    full = read(base)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    n_test = len(full) // 6
    test, train = order[:n_test], order[n_test:]
    return Split(full.images[train], full.labels[train]), Split(full.images[test], full.labels[test]), len(classes)


def _synthetic(
    root: str | None, *, resolution: int | None, channels: int | None, size: int = 1200, **_: object
) -> tuple[Split, Split, int]:
    """Small and learnable but not trivial: each of 4 classes is a faint horizontal band at its own
    height, on noise twice as strong, so that accuracy after a short proxy varies by architecture."""
    classes, res, ch = 4, resolution or 16, channels or 1
    gen = torch.Generator().manual_seed(1234)

    def make(count: int) -> Split:
        labels = torch.arange(count) % classes
        images = torch.randint(0, 160, (count, ch, res, res), generator=gen, dtype=torch.int16)
        band = max(1, res // classes)
        for k in range(classes):
            images[labels == k, :, k * band : (k + 1) * band, :] += 48
        return Split(images.clamp(0, 255).to(torch.uint8), labels.long())

    return make(size), make(size // 4), classes


FASHION_MNIST_HOW = (
    "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the four "
    "*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist into .data/fashion-mnist "
    "or the folder you pass as data.root."
)
MNIST_HOW = (
    "Download the four *-ubyte.gz files of MNIST into .data/mnist or the folder you pass as data.root."
)

#: Dataset readers by `data.name`; each returns (train, test, number of classes).
DATASETS: dict[str, Callable[..., tuple[Split, Split, int]]] = {
    "fashion_mnist": _idx_dataset(
        "Fashion-MNIST", (".data/fashion-mnist", "/usr/share/datasets/fashion-mnist"), FASHION_MNIST_HOW
    ),
    "mnist": _idx_dataset("MNIST", (".data/mnist", "/usr/share/datasets/mnist"), MNIST_HOW),
    "cifar10": lambda root, **kw: _cifar(root, fine=False, **kw),
    "cifar100": lambda root, **kw: _cifar(root, fine=True, **kw),
    "imagefolder": _imagefolder,
    "synthetic": _synthetic,
}


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
    if name not in DATASETS:
        raise ConfigError("data.name", f"unknown dataset {name!r} (allowed: {', '.join(DATASETS)})")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError("data.val_fraction", f"{val_fraction} is out of range (allowed: between 0 and 1)")
    root = os.path.expandvars(root) if root else None
    train_full, test, classes = DATASETS[name](root, resolution=resolution, channels=channels)
    train, val = _stratified_split(train_full, val_fraction, split_seed)
    scaled = train.images.float().div_(255)
    mean = tuple(scaled.mean(dim=(0, 2, 3)).tolist())
    std = tuple(scaled.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    log.info("%s: %d train, %d validation, %d test images of %s", name, len(train), len(val), len(test),
             "x".join(map(str, train.images.shape[1:])))
    return Dataset(name, train, val, test, classes, mean, std)


def _stratified_split(data: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    gen = torch.Generator().manual_seed(seed)
    val_index = []
    for label in torch.unique(data.labels):
        members = torch.nonzero(data.labels == label).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        val_index.append(members[: max(1, round(len(members) * fraction))])
    val = torch.cat(val_index)
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[val] = False
    train = torch.nonzero(mask).flatten()
    return Split(data.images[train], data.labels[train]), Split(data.images[val], data.labels[val])
