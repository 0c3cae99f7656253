"""CIFAR-10 and CIFAR-100 in their python layout: pickled batches, read by an unpickler that builds
nothing but the layout's own types, so that a planted file cannot run code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .readers import Split, find_folder

__all__ = ["CIFAR_HOW", "read_cifar"]

CIFAR_HOW = (
    "Download the python version from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it and "
    "set data.root to the unpacked folder."
)

#: What a CIFAR batch is made of besides dicts, lists, bytes and ints: NumPy arrays, rebuilt from
#: their bytes. The published files were written by NumPy 1 (`numpy.core`) at pickle protocol 2;
#: NumPy 2 calls the module `numpy._core`, and copies re-saved by Python 3 use `_frombuffer` (protocol
#: 5) or, at protocol 2, write bytes as `_codecs.encode(text, "latin1")`.
_ALLOWED = {
    *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}
_IMAGE_BYTES = 3 * 32 * 32


class _CifarUnpickler(pickle.Unpickler):
    """A pickle reader that refuses every class or function outside `_ALLOWED`: a pickle names
    the callables it is rebuilt with, and the plain `pickle.load` would call any of them. The
    allowed ones are bounded too, so that a small file cannot ask for gigabytes: NumPy's own
    pickles call `_reconstruct` for an empty array and fill it from the file's bytes, and a CIFAR
    batch holds no Python objects in its arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR batch never holds")
        found = super().find_class(module, name)
        if name == "_reconstruct":
            return _empty_only(found)
        if name == "dtype":
            return _no_objects(found)
        return found


def _empty_only(reconstruct: Any) -> Any:
    def checked(cls: Any, shape: Any, dtype: Any) -> Any:
        if tuple(shape) != (0,):
            raise pickle.UnpicklingError(f"it builds an array of shape {tuple(shape)!r} before reading its bytes, "
                                         "which NumPy's own pickles never do")
        return reconstruct(cls, shape, dtype)

    return checked


def _no_objects(dtype: Any) -> Any:
    def checked(spec: Any, *args: Any) -> Any:
        made = dtype(spec, *args)
        if made.hasobject:
            raise pickle.UnpicklingError("it holds an array of Python objects, which a CIFAR batch never does")
        return made

    return checked


def _decoded(key: Any) -> str:
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)


def _read_batch(path: Path, key: bytes, classes: int) -> Split:
    try:
        with open(path, "rb") as handle:
            entry = _CifarUnpickler(handle, encoding="bytes").load()
    except OSError as err:
        raise DataError(f"data.root: {path} cannot be read ({err.strerror or err})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError) as err:
        raise DataError(f"data.root: {path} is not a CIFAR batch ({err or type(err).__name__}); "
                        "download it again") from None
    if not isinstance(entry, dict) or b"data" not in entry or key not in entry:
        found = sorted(map(_decoded, entry)) if isinstance(entry, dict) else type(entry).__name__
        raise DataError(f"data.root: {path} is not a CIFAR batch (it holds {found}, not 'data' and "
                        f"{key.decode()!r}); download it again")
    data, labels = entry[b"data"], entry[key]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _IMAGE_BYTES):
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"data.root: {path}: 'data' is {shape} (allowed: N x {_IMAGE_BYTES} unsigned bytes)")
    if not (isinstance(labels, list) and len(labels) == len(data) and all(type(v) is int for v in labels)):
        raise DataError(f"data.root: {path}: {key.decode()!r} must hold one integer label per image "
                        f"({len(data)} images)")
    bad = next((v for v in labels if not 0 <= v < classes), None)  # before NumPy, which overflows on 10**30
    if bad is not None:
        shown = bad if abs(bad) < 10**12 else f"of {len(str(abs(bad)))} digits"
        raise DataError(f"data.root: {path}: label {shown} is out of range (allowed: 0..{classes - 1})")
    ys = np.asarray(labels, dtype=np.int64)
    return Split(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(ys))


def _concat(splits: list[Split]) -> Split:
    return Split(torch.cat([s.images for s in splits]), torch.cat([s.labels for s in splits]))


def read_cifar(root: str | None, *, fine: bool) -> tuple[Split, Split, int]:
    """(train, test, classes) of CIFAR-100 (`fine`) or CIFAR-10 from `root` or `.data/`."""
    if fine:
        folder = find_folder("CIFAR-100", root, (".data/cifar-100-python",), ("train", "test"), CIFAR_HOW)
        batches, test_batches, key, classes = ["train"], ["test"], b"fine_labels", 100
    else:
        names = [f"data_batch_{i}" for i in range(1, 6)]
        folder = find_folder("CIFAR-10", root, (".data/cifar-10-batches-py",), [*names, "test_batch"], CIFAR_HOW)
        batches, test_batches, key, classes = names, ["test_batch"], b"labels", 10
    train = _concat([_read_batch(folder / f, key, classes) for f in batches])
    test = _concat([_read_batch(folder / f, key, classes) for f in test_batches])
    return train, test, classes
