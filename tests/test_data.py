"""Dataset readers on files written here in each format's published layout."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.data import load_dataset
from nas.errors import ConfigError, DataError


def _idx(path: Path, array: np.ndarray, *, compress: bool) -> None:
    # IDX: two zero bytes, type 0x08 (unsigned byte), the number of dimensions, big-endian sizes.
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_are_read_pixel_for_pixel(tmp_path: Path, compress: bool) -> None:
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (50, 28, 28))
    test = rng.integers(0, 256, (20, 28, 28))
    labels, test_labels = np.arange(50) % 10, np.arange(20) % 10
    for name, array in (("train-images-idx3-ubyte", train), ("train-labels-idx1-ubyte", labels),
                        ("t10k-images-idx3-ubyte", test), ("t10k-labels-idx1-ubyte", test_labels)):
        _idx(tmp_path / name, array, compress=compress)
    data = load_dataset("mnist", str(tmp_path), val_fraction=0.2)
    assert data.test.images.shape == (20, 1, 28, 28)
    assert np.array_equal(data.test.images[:, 0].numpy(), test)
    assert len(data.train) + len(data.val) == 50 and len(data.val) == 10  # 1 per class of 5
    # every training image appears once, in the train or the validation split
    seen = {bytes(x.numpy()) for x in data.train.images} | {bytes(x.numpy()) for x in data.val.images}
    assert seen == {bytes(x.astype(np.uint8)[None]) for x in train}


def test_truncated_idx_file_is_reported(tmp_path: Path) -> None:
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        _idx(tmp_path / name, np.zeros((4, 28, 28) if "images" in name else (4,)), compress=False)
    with open(tmp_path / "t10k-images-idx3-ubyte", "ab") as f:
        f.truncate(100)
    with pytest.raises(DataError, match="truncated"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_cifar10_python_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, (10, 3072), dtype=np.uint8)  # 1024 red, 1024 green, 1024 blue
        batches[name] = rows
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": list(range(10))}, f)
    data = load_dataset("cifar10", str(tmp_path))
    assert data.num_classes == 10 and data.test.images.shape == (10, 3, 32, 32)
    first = batches["test_batch"][0]
    assert np.array_equal(data.test.images[0, 0].numpy().ravel(), first[:1024])  # red plane
    assert np.array_equal(data.test.images[0, 2].numpy().ravel(), first[2048:])  # blue plane


def test_imagefolder_reads_classes_from_folders(tmp_path: Path) -> None:
    for split, count in (("train", 6), ("test", 2)):
        for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 30), color).save(folder / f"{i}.png" if i % 2 else folder / f"{i}.jpg")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    data = load_dataset("imagefolder", str(tmp_path), resolution=16, channels=3, val_fraction=0.2)
    assert data.num_classes == 2 and data.test.images.shape == (4, 3, 16, 16)
    assert len(data.train) + len(data.val) == 12
    red = data.test.images[data.test.labels == 0]  # 'cat' sorts first: label 0
    assert (red[:, 0] > 200).all() and (red[:, 2] < 60).all()
    with pytest.raises(ConfigError, match="data.channels"):
        load_dataset("imagefolder", str(tmp_path), resolution=16, channels=2)
