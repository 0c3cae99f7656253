"""Data: datasets read from their files into memory, split into train, validation and test.

The search reads `train` and `val` only; the test split is for final reports.
"""

from .config import DataConfig
from .dataset import Dataset, load_data, load_dataset
from .catalog import DATASETS
from .memory import MEMORY, fingerprint, in_memory
from .readers import Split

__all__ = ["DATASETS", "MEMORY", "DataConfig", "Dataset", "Split", "fingerprint", "in_memory", "load_data",
           "load_dataset"]
