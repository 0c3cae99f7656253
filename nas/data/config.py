"""The `data` config group: which dataset, where its files are, and how the search splits and
augments it; each field's rule is stated here, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from omegaconf import MISSING

from search_spaces.fields import SEED, FieldError, Rule, fraction, integer_in, one_of

from .catalog import DATASETS
from .readers import SYNTHETIC_SIZE

__all__ = ["MAX_RESOLUTION", "DataConfig"]

#: Largest image side a dataset is read or resized at (pixels): more would not fit the memory.
MAX_RESOLUTION = 1024
#: What a dataset reads at when data.resolution / data.channels are not set (absent: the files' own).
NATIVE_SIZE = {"synthetic": (SYNTHETIC_SIZE, 1)}


@dataclass
class DataConfig:
    name: str = MISSING  # fashion_mnist | mnist | cifar10 | cifar100 | imagefolder | synthetic | memory (from Python)
    root: Optional[str] = None  # folder with the files; null searches the dataset's default places
    val_fraction: float = 0.1  # of the training set, held out to select architectures on
    split_seed: int = 0  # seed of the train/validation split
    flip: bool = True  # random horizontal flips while training (off for digits)
    pad_crop: int = 2  # random translations of up to this many pixels while training (0..64)
    resolution: Optional[int] = None  # pixels; imagefolder: resize to NxN (null: the images' own); synthetic: size (null: 16)
    channels: Optional[int] = None  # 1 (grey) or 3 (RGB); null: the images' own (imagefolder), 1 (synthetic)

    RULES: ClassVar[dict[str, Rule]] = {
        "name": one_of(lambda: list(DATASETS), noun="dataset"),
        "val_fraction": fraction(closed=False),
        "split_seed": SEED,
        # A translation beyond a few pixels only moves the image out of its frame.
        "pad_crop": integer_in(0, 64),
    }

    def check(self) -> None:
        """data.resolution and data.channels: unset, or a size images can be read at."""
        low = 4 if self.name == "synthetic" else 1  # synthetic: one band of pixels per class
        default_res, default_ch = NATIVE_SIZE.get(self.name, ("the images' own", "the images' own"))
        res = self.resolution
        if res is not None and (isinstance(res, bool) or not isinstance(res, int) or not low <= res <= MAX_RESOLUTION):
            raise FieldError("resolution",
                             f"{res!r} is not allowed (allowed: {low}..{MAX_RESOLUTION}, or null for {default_res})")
        if self.channels is not None and self.channels not in (1, 3):
            raise FieldError("channels", f"{self.channels!r} is not allowed (allowed: 1, 3, or null for {default_ch})")
