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


# -- files that disagree, are cut short or are not what they claim -------------------------------


def _idx_folder(folder: Path, counts: dict[str, int], *, compress: bool = False, label_max: int = 9) -> None:
    for name, count in counts.items():
        shape = (count, 28, 28) if "images" in name else (count,)
        array = np.zeros(shape) if "images" in name else np.arange(count) % (label_max + 1)
        _idx(folder / name, array, compress=compress)


IDX_COUNTS = {"train-images-idx3-ubyte": 60, "train-labels-idx1-ubyte": 60, "t10k-images-idx3-ubyte": 20,
              "t10k-labels-idx1-ubyte": 20}


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_idx_images_and_labels_that_disagree_in_count_are_refused(tmp_path: Path, split: str) -> None:
    _idx_folder(tmp_path, {**IDX_COUNTS, f"{split}-labels-idx1-ubyte": 10})
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", str(tmp_path))
    images, labels = tmp_path / f"{split}-images-idx3-ubyte", tmp_path / f"{split}-labels-idx1-ubyte"
    expected = 20 if split == "t10k" else 60
    assert str(info.value).startswith(f"{images} holds {expected} images but {labels} holds 10 labels")


def test_idx_labels_outside_the_ten_classes_are_refused(tmp_path: Path) -> None:
    _idx_folder(tmp_path, IDX_COUNTS, label_max=12)
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 12 is out of range \(allowed: 0\.\.9\)"):
        load_dataset("mnist", str(tmp_path))


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _bad_deflate(data: bytes) -> bytes:
    return data[:10] + bytes(b ^ 0xFF for b in data[10:30]) + data[30:]


@pytest.mark.parametrize("spoil, reason", [
    (_cut, "Compressed file ended before the end-of-stream marker"),
    (lambda data: b"not gzip at all" + data, "Not a gzipped file"),
    (_bad_deflate, "Error -3 while decompressing"),
    (lambda data: data[:12], "Compressed file ended"),
], ids=["truncated", "not-gzip", "corrupt", "header-only"])
def test_truncated_or_corrupt_gz_idx_files_name_the_file(tmp_path: Path, spoil, reason: str) -> None:
    _idx_folder(tmp_path, IDX_COUNTS, compress=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(spoil(path.read_bytes()))
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", str(tmp_path))
    assert str(info.value).startswith(f"{path} cannot be read ("), info.value
    assert reason in str(info.value) and "download it again" in str(info.value)


def test_an_idx_header_cut_inside_its_sizes_is_reported_as_truncated(tmp_path: Path) -> None:
    _idx_folder(tmp_path, IDX_COUNTS)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:9])
    with pytest.raises(DataError, match="is truncated"):
        load_dataset("fashion_mnist", str(tmp_path))


# -- image folders ---------------------------------------------------------------------------------


def _images(folder: Path, count: int, *, mode: str = "RGB", size: tuple[int, int] = (40, 30)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new(mode, size, 200 if mode == "L" else (200, 20, 20)).save(folder / f"{i}.png")


@pytest.mark.parametrize("content, reason", [
    (b"this is not a PNG", "cannot identify image file"),
    ("truncated", "image file is truncated"),
], ids=["garbage", "truncated"])
def test_a_corrupt_or_truncated_png_names_the_file(tmp_path: Path, content, reason: str) -> None:
    _images(tmp_path / "cat", 3)
    _images(tmp_path / "dog", 3)
    bad = tmp_path / "dog" / "1.png"
    if content == "truncated":
        Image.effect_noise((64, 64), 50).save(bad)
        content = bad.read_bytes()[:-200]
    bad.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_dataset("imagefolder", str(tmp_path), resolution=16, channels=3)
    assert str(info.value).startswith(f"data.root: cannot read the image {bad} ("), info.value
    assert reason in str(info.value)


def test_an_image_folder_with_one_class_is_refused(tmp_path: Path) -> None:
    _images(tmp_path / "cat", 6)
    with pytest.raises(DataError, match=rf"^data.root: {tmp_path} has 1 class folder \(cat\); a classifier "
                                        r"needs at least 2 \(one subfolder of images per class\)"):
        load_dataset("imagefolder", str(tmp_path), resolution=16, channels=3)


def test_an_empty_class_folder_is_refused(tmp_path: Path) -> None:
    _images(tmp_path / "cat", 6)
    _images(tmp_path / "dog", 6)
    (tmp_path / "eel").mkdir()
    (tmp_path / "eel" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=rf"^data.root: the class folder {tmp_path / 'eel'} has no PNG or JPEG images"):
        load_dataset("imagefolder", str(tmp_path), resolution=16, channels=3)


def test_an_image_folder_follows_the_images_size_and_colour_unless_set(tmp_path: Path) -> None:
    for cls in ("cat", "dog"):
        _images(tmp_path / cls, 6, mode="L", size=(28, 28))
    assert load_dataset("imagefolder", str(tmp_path)).train.images.shape[1:] == (1, 28, 28)
    assert load_dataset("imagefolder", str(tmp_path), channels=3).train.images.shape[1:] == (3, 28, 28)
    assert load_dataset("imagefolder", str(tmp_path), resolution=16).train.images.shape[1:] == (1, 16, 16)
    _images(tmp_path / "cat", 1, mode="RGB", size=(28, 28))  # one colour image: read all as RGB
    assert load_dataset("imagefolder", str(tmp_path)).train.images.shape[1:] == (3, 28, 28)


def test_images_of_several_sizes_need_data_resolution(tmp_path: Path) -> None:
    _images(tmp_path / "cat", 3, size=(28, 28))
    _images(tmp_path / "dog", 3, size=(40, 30))
    with pytest.raises(ConfigError, match=r"^data.resolution: the images have different sizes \(28x28, 40x30\); "
                                          r"set data.resolution=N to resize them to NxN"):
        load_dataset("imagefolder", str(tmp_path))
    assert load_dataset("imagefolder", str(tmp_path), resolution=20).train.images.shape[1:] == (3, 20, 20)


# -- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, allowed", [
    ("resolution", -3, "4..1024, or null for 16"),
    ("resolution", 0, "4..1024, or null for 16"),
    ("resolution", 2, "4..1024, or null for 16"),
    ("channels", -1, "1, 3, or null for 1"),
    ("channels", 0, "1, 3, or null for 1"),
])
def test_synthetic_sizes_out_of_range_name_the_field(field: str, value: int, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_dataset("synthetic", **{field: value})
    assert str(info.value) == f"data.{field}: {value} is not allowed (allowed: {allowed})"


def test_a_size_that_a_fixed_size_dataset_cannot_take_is_refused(tmp_path: Path) -> None:
    _idx_folder(tmp_path, IDX_COUNTS)
    assert load_dataset("mnist", str(tmp_path), resolution=28, channels=1).shape.resolution == 28
    with pytest.raises(ConfigError, match=r"^data.resolution: mnist images are 28x28 and are not resized "
                                          r"\(allowed: 28, or null\)"):
        load_dataset("mnist", str(tmp_path), resolution=32)


# -- shapes and sizes the readers once took silently ----------------------------------------------


def test_non_square_idx_images_are_refused_naming_the_file(tmp_path: Path) -> None:
    _idx_folder(tmp_path, IDX_COUNTS)
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((60, 28, 14)), compress=False)
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", str(tmp_path))
    assert str(info.value) == (f"{tmp_path / 'train-images-idx3-ubyte'} holds images of 28 x 14 pixels "
                               "(allowed: square images, H = W)")


def test_an_idx_test_set_of_another_image_size_is_refused(tmp_path: Path) -> None:
    _idx_folder(tmp_path, IDX_COUNTS)
    _idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((20, 32, 32)), compress=False)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte holds images of 32 x 32 pixels but .*"
                                        r"train-images-idx3-ubyte of 28 x 28"):
        load_dataset("mnist", str(tmp_path))


def test_idx_sizes_whose_product_overflows_are_not_taken_for_an_empty_file(tmp_path: Path) -> None:
    _idx_folder(tmp_path, IDX_COUNTS)
    # 2^32 - 1 three times: a product of 2^96, which 64-bit arithmetic wraps to a small number.
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header)
    with pytest.raises(DataError, match="truncated or damaged: its header says 4294967295 x 4294967295 x "
                                        f"4294967295 = {(2**32 - 1) ** 3} values, the file holds 0"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_idx_files_without_images_are_refused(tmp_path: Path) -> None:
    _idx_folder(tmp_path, {**IDX_COUNTS, "train-images-idx3-ubyte": 0, "train-labels-idx1-ubyte": 0})
    with pytest.raises(DataError, match="train-images-idx3-ubyte holds no images$"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_too_few_images_to_hold_out_validation_are_refused(tmp_path: Path) -> None:
    # 5 training images of 5 classes: one each, nothing left to train on once validation is held out.
    _idx_folder(tmp_path, {**IDX_COUNTS, "train-images-idx3-ubyte": 5, "train-labels-idx1-ubyte": 5})
    with pytest.raises(DataError, match="hold 5 images, class 0 only 1; each class needs at least 2"):
        load_dataset("fashion_mnist", str(tmp_path))


def test_two_images_a_class_leave_one_to_train_on_whatever_the_validation_fraction(tmp_path: Path) -> None:
    _idx_folder(tmp_path, {**IDX_COUNTS, "train-images-idx3-ubyte": 20, "train-labels-idx1-ubyte": 20})
    data = load_dataset("fashion_mnist", str(tmp_path), val_fraction=0.9)
    assert sorted(data.train.labels.tolist()) == list(range(10)) == sorted(data.val.labels.tolist())


def test_16_bit_grey_pngs_are_scaled_to_8_bits_not_clipped(tmp_path: Path) -> None:
    # Two classes told apart by brightness alone, as 16-bit values 0..65535: clipping at 255 would make
    # nearly every pixel of both white.
    levels = {"dark": 12850, "bright": 51400}  # 16-bit values of 8-bit 50 and 200 (x 257)
    for cls, level in levels.items():
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(np.full((8, 8), level, dtype=np.uint16)).save(tmp_path / cls / f"{i}.png")
    assert Image.open(tmp_path / "dark" / "0.png").mode in ("I", "I;16")  # what PIL reads a 16-bit PNG as
    data = load_dataset("imagefolder", str(tmp_path))
    pixels = {int(label): set(data.test.images[data.test.labels == label].flatten().tolist())
              for label in data.test.labels.unique()}
    assert pixels == {0: {200}, 1: {50}}  # 'bright' sorts first: label 0

