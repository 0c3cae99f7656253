"""Readers of the datasets' files: IDX (MNIST, Fashion-MNIST), class-per-folder image trees, and a
small learnable synthetic set (the CIFAR layout is read by `nas.data.cifar`). Each returns (train, test,
number of classes) as in-memory uint8 tensors. Nothing is downloaded: missing files raise a
`DataError` that says where we looked and how to get them.
"""

from __future__ import annotations

import gzip
import logging
import math
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError

__all__ = ["SYNTHETIC_SIZE", "Split", "find_folder", "idx_dataset", "imagefolder", "synthetic"]

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



def _open(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:  # truncated, not gzip, corrupt deflate data
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise DataError(f"{path} cannot be read ({reason}); download it again") from None


def _read_idx(path: Path) -> np.ndarray:
    raw = _open(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated: its header ends inside the sizes of its {ndim} dimensions")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    expected = math.prod(dims)  # Python integers: sizes whose product overflows 64 bits stay what they say
    if data.size != expected:
        shape = " x ".join(map(str, dims))
        raise DataError(f"{path} is truncated or damaged: its header says {shape} = {expected} values, "
                        f"the file holds {data.size}")
    return data.reshape(dims)


def find_folder(name: str, root: str | None, defaults: Sequence[str], required: Sequence[str], how: str) -> Path:
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


def _idx_split(images_path: Path, labels_path: Path, classes: int) -> Split:
    """Images and their labels, which must be as many as the images (a pair of files from one
    release), with every label a class index."""
    images, labels = _read_idx(images_path), _read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path} holds {images.ndim}-dimensional data (allowed: images, N x H x W)")
    if len(images) == 0:
        raise DataError(f"{images_path} holds no images")
    if images.shape[1] != images.shape[2]:
        raise DataError(f"{images_path} holds images of {images.shape[1]} x {images.shape[2]} pixels "
                        "(allowed: square images, H = W)")
    if labels.ndim != 1:
        raise DataError(f"{labels_path} holds {labels.ndim}-dimensional data (allowed: labels, N)")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels: "
            "they must come from the same release (download both again)"
        )
    if labels.size and int(labels.max()) >= classes:
        raise DataError(f"{labels_path}: label {int(labels.max())} is out of range (allowed: 0..{classes - 1})")
    return Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def idx_dataset(name: str, defaults: Sequence[str], how: str) -> Callable[..., tuple[Split, Split, int]]:
    def load(root: str | None, **_: object) -> tuple[Split, Split, int]:
        folder = find_folder(name, root, defaults, IDX_FILES, how)
        paths = [_file(folder, f) for f in IDX_FILES]
        train, test = _idx_split(paths[0], paths[1], 10), _idx_split(paths[2], paths[3], 10)
        if train.images.shape[1:] != test.images.shape[1:]:
            got, want = (" x ".join(map(str, s.images.shape[2:])) for s in (test, train))
            raise DataError(f"{paths[2]} holds images of {got} pixels but {paths[0]} of {want}: "
                            "the test images must be the training images' size (both files from one release)")
        return train, test, 10

    return load


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: PIL modes of single-channel images; a folder of them only is read as grey (1 channel).
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: PIL modes of single-channel images of more than 8 bits, which `convert("L")` would clip at 255.
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _to_8_bits(img: Any) -> Any:
    """A 16-bit grey image (a 16-bit grey PNG opens as mode I or I;16) scaled to 8 bits, 0..65535
    to 0..255, where `convert("L")` would clip it at 255; other images as they are."""
    from PIL import Image

    if img.mode not in WIDE_MODES:
        return img
    wide = np.asarray(img).astype(np.int64).clip(0, 65535)  # a PNG holds 0..65535; clip only guards the cast
    return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), mode="L")


def _class_images(folder: Path, classes: Sequence[str]) -> list[tuple[Path, int]]:
    """(image path, label) for every PNG/JPEG of every class folder; each must hold some."""
    found = []
    for label, cls in enumerate(classes):
        paths = sorted(p for p in (folder / cls).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise DataError(f"data.root: the class folder {folder / cls} has no PNG or JPEG images "
                            "(add images or remove the folder)")
        found.extend((path, label) for path in paths)
    return found


def _open_image(path: Path, read: Callable[..., np.ndarray]) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return read(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:  # PIL's ways of saying "corrupt"
        raise DataError(f"data.root: cannot read the image {path} ({err}); remove or replace it") from None


def imagefolder(root: str | None, *, resolution: int | None, channels: int | None, **_: object) -> tuple[Split, Split, int]:
    """Class-per-folder images. Channels and size follow the images (grey -> 1 channel, their common
    size) unless `channels` or `resolution` is given; then every image is converted and resized."""
    from PIL import Image

    if not root:
        raise ConfigError("data.root", "imagefolder needs data.root=DIR (a folder with one subfolder per class)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"data.root: {base} is not a folder")
    # A tree with train/ and test/ keeps its own test split; otherwise 1 in 6 images is test.
    has_splits = (base / "train").is_dir() and (base / "test").is_dir()
    train_dir = base / "train" if has_splits else base
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(
            f"data.root: {train_dir} has {len(classes)} class folder{'' if len(classes) == 1 else 's'}"
            f"{f' ({classes[0]})' if classes else ''}; a classifier needs at least 2 (one subfolder of images per class)"
        )
    splits = [_class_images(train_dir, classes)] + ([_class_images(base / "test", classes)] if has_splits else [])
    listed = [path for split in splits for path, _ in split]
    headers = [_open_image(path, lambda img: (img.mode, img.size)) for path in listed]
    if channels is None:
        channels = 1 if all(mode in GREY_MODES for mode, _ in headers) else 3
    if resolution is None:
        sizes = sorted({size for _, size in headers})
        if len(sizes) > 1 or sizes[0][0] != sizes[0][1]:
            shown = ", ".join(f"{w}x{h}" for w, h in sizes[:4]) + (", ..." if len(sizes) > 4 else "")
            raise ConfigError("data.resolution", f"the images have different sizes ({shown}); "
                                                 "set data.resolution=N to resize them to NxN")
        resolution = sizes[0][0]
    log.info("imagefolder: %d classes, %d images, read as %d channel(s) at %dx%d", len(classes), len(listed),
             channels, resolution, resolution)
    mode = "L" if channels == 1 else "RGB"

    def pixels(img: Any) -> np.ndarray:
        img = _to_8_bits(img).convert(mode)
        if img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8).reshape(resolution, resolution, channels)

    def read(split: list[tuple[Path, int]]) -> Split:
        images = np.stack([_open_image(path, pixels) for path, _ in split])
        labels = torch.tensor([label for _, label in split], dtype=torch.long)
        return Split(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels)

    if has_splits:
        return read(splits[0]), read(splits[1]), len(classes)
    full = read(splits[0])
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))
    n_test = len(full) // 6
    test, train = order[:n_test], order[n_test:]
    return Split(full.images[train], full.labels[train]), Split(full.images[test], full.labels[test]), len(classes)


SYNTHETIC_SIZE = 16  # pixels, when data.resolution is not set


def synthetic(
    root: str | None, *, resolution: int | None, channels: int | None, size: int = 1200, **_: object
) -> tuple[Split, Split, int]:
    """Small and learnable but not trivial: each of 4 classes is a faint horizontal band at its own
    height, on noise twice as strong, so that accuracy after a short proxy varies by architecture."""
    classes, res, ch = 4, resolution or SYNTHETIC_SIZE, channels or 1
    gen = torch.Generator().manual_seed(1234)

    def make(count: int) -> Split:
        labels = torch.arange(count) % classes
        images = torch.randint(0, 160, (count, ch, res, res), generator=gen, dtype=torch.int16)
        band = max(1, res // classes)
        for k in range(classes):
            images[labels == k, :, k * band : (k + 1) * band, :] += 48
        return Split(images.clamp(0, 255).to(torch.uint8), labels.long())

    return make(size), make(size // 4), classes
