"""The datasets by `data.name`: which reader reads each, where it looks by default, and how to get
the files when they are missing (nothing is downloaded)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .cifar import read_cifar
from .readers import Split, idx_dataset, imagefolder, synthetic

__all__ = ["DATASETS"]

FASHION_MNIST_HOW = (
    "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the four "
    "*-ubyte.gz files from https://github.com/zalandoresearch/fashion-mnist into .data/fashion-mnist "
    "or the folder you pass as data.root."
)
MNIST_HOW = (
    "Download the four *-ubyte.gz files of MNIST into .data/mnist or the folder you pass as data.root."
)


def in_python(root: str | None, **_: object) -> tuple[Split, Split, int]:
    """`data=memory`: images and labels handed over from Python, which no file holds."""
    raise ConfigError("data", "data=memory is data handed over from Python (nas.search(..., data=(images, labels))); "
                              "there are no files to read it from: run this from Python with the data, or name a "
                              "dataset (data=fashion_mnist, data=imagefolder data.root=FOLDER, ...)")


#: Dataset readers by `data.name`; each returns (train, test, number of classes).
DATASETS: dict[str, Callable[..., tuple[Split, Split, int]]] = {
    "fashion_mnist": idx_dataset(
        "Fashion-MNIST", (".data/fashion-mnist", "/usr/share/datasets/fashion-mnist"), FASHION_MNIST_HOW
    ),
    "mnist": idx_dataset("MNIST", (".data/mnist", "/usr/share/datasets/mnist"), MNIST_HOW),
    "cifar10": lambda root, **kw: read_cifar(root, fine=False),
    "cifar100": lambda root, **kw: read_cifar(root, fine=True),
    "imagefolder": imagefolder,
    "synthetic": synthetic,
    "memory": in_python,
}
