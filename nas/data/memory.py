"""Data handed over from Python (`nas.search(data=...)`): images and labels as tensors or NumPy
arrays, or a map-style `torch.utils.data.Dataset` of (image, label) pairs, checked and held as the
built-in datasets are (uint8 images N x C x H x W, int64 labels), with a validation split carved
from the training part unless one is given.

Every problem is one `ConfigError` naming the part and what is wrong, before anything is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .config import MAX_RESOLUTION
from .dataset import Dataset, check_enough, normalization, stratified_split
from .readers import Split

__all__ = ["MEMORY", "fingerprint", "in_memory"]

#: `data.name` of a search on data handed over from Python.
MEMORY = "memory"
PARTS = ("train", "val", "test")


def in_memory(data: Any, *, val_fraction: float = 0.1, split_seed: int = 0) -> Dataset:
    """A `Dataset` of `data`: an `(images, labels)` pair, a map-style Dataset of (image, label)
    pairs, or a mapping with a `train` part and optional `val` and `test` parts of either kind.

    Images: uint8 (0..255) or floating point (0..1) tensors or arrays, N x C x H x W or N x H x W
    (one channel), square; PIL images in a Dataset. Labels: integers 0..K-1, every class in the
    training part. Without `val`, a stratified `val_fraction` of `train` is held out (seed
    `split_seed`), as for the built-in datasets; without `test`, the search measures no test accuracy.
    """
    parts = dict(data) if isinstance(data, Mapping) else {"train": data}
    unknown = sorted(set(map(str, parts)) - set(PARTS))
    if unknown or "train" not in parts:
        raise ConfigError("data", f"a mapping of data needs a 'train' part and may have 'val' and 'test' "
                                  f"(got {', '.join(map(repr, map(str, parts))) or 'none'})")
    splits = {name: _split(parts[name], f"data[{name!r}]" if len(parts) > 1 else "data") for name in PARTS
              if parts.get(name) is not None}
    train = splits["train"]
    shape = tuple(train.images.shape[1:])
    for name, split in splits.items():
        if tuple(split.images.shape[1:]) != shape:
            raise ConfigError(f"data[{name!r}]", f"images are {_shape(split.images.shape[1:])}, the training "
                                                 f"images {_shape(shape)}; every part needs one image size")
    num_classes = int(train.labels.max()) + 1
    for name, split in splits.items():
        high = int(split.labels.max()) if len(split) else -1
        if high >= num_classes:
            raise ConfigError(f"data[{name!r}]", f"label {high} is not a class of the training part "
                                                 f"(its labels are 0..{num_classes - 1})")
    missing = sorted(set(range(num_classes)) - set(torch.unique(train.labels).tolist()))
    if missing:
        raise ConfigError("data", f"the training labels skip class(es) {_listed(missing)} of 0..{num_classes - 1}; "
                                  "number the classes 0..K-1, each with training images")
    try:
        check_enough("this data", train, splits.get("test"), per_class=1 if "val" in splits else 2)
    except DataError as err:
        raise ConfigError("data", str(err).removeprefix("data: ")) from None
    if "val" in splits:
        val = splits["val"]
    else:
        train, val = stratified_split(train, val_fraction, split_seed)
    test = splits.get("test") or Split(train.images[:0], train.labels[:0])
    mean, std = normalization(train)
    return Dataset(MEMORY, train, val, test, num_classes, mean, std)


def fingerprint(data: Dataset) -> str:
    """A digest of the training and validation images and labels, in order: what a study trains
    and selects on (the test split is left unread until the search ends)."""
    digest = hashlib.sha256()
    for split in (data.train, data.val):
        for tensor in (split.images, split.labels):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _split(part: Any, where: str) -> Split:
    if isinstance(part, tuple | list) and len(part) == 2:
        images, labels = (_tensor(v, f"{where}: {what}") for v, what in zip(part, ("images", "labels")))
    elif hasattr(part, "__getitem__") and hasattr(part, "__len__"):
        images, labels = _stack(part, where)
    else:
        raise ConfigError(where, f"{type(part).__name__} is not data: give an (images, labels) pair of tensors or "
                                 "arrays, or a map-style torch.utils.data.Dataset of (image, label) pairs")
    return Split(_images(images, where), _labels(labels, len(images), where))


def _tensor(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ConfigError(where, "a NumPy array of Python objects; give numbers (uint8 images, integer labels)")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, list | tuple):
        try:
            return torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as err:
            raise ConfigError(where, f"cannot be read as one array ({err})") from None
    raise ConfigError(where, f"{type(value).__name__} is not a tensor or a NumPy array")


def _images(images: torch.Tensor, where: str) -> torch.Tensor:
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4:
        raise ConfigError(f"{where}: images", f"shape {_shape(images.shape)} is not N x C x H x W or N x H x W")
    n, channels, height, width = images.shape
    if n == 0:
        raise ConfigError(f"{where}: images", "no images")
    if width in (1, 3) and channels not in (1, 3):
        raise ConfigError(f"{where}: images", f"shape {_shape(images.shape)} looks channels-last (N x H x W x C); "
                                              "give N x C x H x W (tensor.permute(0, 3, 1, 2))")
    if height != width:
        raise ConfigError(f"{where}: images", f"{height}x{width} is not square; the networks take N x N images")
    if not 1 <= height <= MAX_RESOLUTION:
        raise ConfigError(f"{where}: images", f"{height}x{width} is not allowed (allowed: up to "
                                              f"{MAX_RESOLUTION}x{MAX_RESOLUTION})")
    if images.dtype == torch.uint8:
        return images.contiguous()
    if images.dtype == torch.bool or not (images.dtype.is_floating_point or _is_integer(images.dtype)):
        raise ConfigError(f"{where}: images", f"dtype {images.dtype} is not allowed (allowed: uint8 0..255, "
                                              "or floating point 0..1)")
    if images.dtype.is_floating_point:
        values = images.float()
        if not bool(torch.isfinite(values).all()):
            raise ConfigError(f"{where}: images", "NaN or infinite values among them")
        low, high = float(values.min()), float(values.max())
        if low < 0 or high > 1:
            raise ConfigError(f"{where}: images", f"floating point values lie in {low:g}..{high:g}; they must lie "
                                                  "in 0..1 (divide 0..255 images by 255, or give them as uint8; "
                                                  "normalization is the search's own)")
        return values.mul(255).round_().to(torch.uint8)
    low, high = int(images.min()), int(images.max())
    if low < 0 or high > 255:
        raise ConfigError(f"{where}: images", f"integer values lie in {low}..{high}; they must lie in 0..255")
    return images.to(torch.uint8)


def _labels(labels: torch.Tensor, count: int, where: str) -> torch.Tensor:
    if labels.ndim != 1:
        raise ConfigError(f"{where}: labels", f"shape {_shape(labels.shape)} is not one label per image (N)")
    if len(labels) != count:
        raise ConfigError(f"{where}: labels", f"{len(labels)} labels for {count} images")
    if not _is_integer(labels.dtype):
        raise ConfigError(f"{where}: labels", f"dtype {labels.dtype} is not allowed (allowed: integers 0..K-1)")
    if int(labels.min()) < 0:
        raise ConfigError(f"{where}: labels", f"label {int(labels.min())} is negative (allowed: 0..K-1)")
    return labels.to(torch.int64)


def _stack(dataset: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels of a map-style Dataset, item by item (tensors, arrays or PIL images)."""
    count = len(dataset)
    if count == 0:
        raise ConfigError(where, "the Dataset holds no items")
    images, labels, first = [], [], None
    for i in range(count):
        item = dataset[i]
        if not (isinstance(item, tuple | list) and len(item) >= 2):
            raise ConfigError(f"{where}[{i}]", f"is a {type(item).__name__}, not an (image, label) pair")
        image, label = _item_image(item[0], f"{where}[{i}]"), item[1]
        if first is None:
            first = image.shape
        elif image.shape != first:
            raise ConfigError(f"{where}[{i}]", f"image is {_shape(image.shape)}, item 0's {_shape(first)}; "
                                               "every image needs one size (resize them in the Dataset's transform)")
        if isinstance(label, torch.Tensor) and label.numel() == 1 or isinstance(label, np.ndarray) and label.size == 1:
            label = label.item()
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise ConfigError(f"{where}[{i}]", f"label {label!r} is not an integer class 0..K-1")
        images.append(image)
        labels.append(int(label))
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def _item_image(image: Any, where: str) -> torch.Tensor:
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image
        from .readers import GREY_MODES, _to_8_bits

        image = _to_8_bits(image).convert("L" if image.mode in GREY_MODES else "RGB")
        array = np.asarray(image)
        return torch.from_numpy(array.copy()).unsqueeze(0) if array.ndim == 2 else torch.from_numpy(
            array.transpose(2, 0, 1).copy())
    tensor = _tensor(image, f"{where}: image")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise ConfigError(f"{where}: image", f"shape {_shape(tensor.shape)} is not C x H x W or H x W")
    return tensor


def _is_integer(dtype: torch.dtype) -> bool:
    return dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _shape(shape: Any) -> str:
    return " x ".join(map(str, tuple(shape)))


def _listed(values: list[int]) -> str:
    return ", ".join(map(str, values[:8])) + (", ..." if len(values) > 8 else "")
