"""Data modules (``configs/data/``): whole datasets in memory, batches transformed on device.

CIFAR-10-C lives in :mod:`midl.data.cifar10c` (not imported here, so that
``python -m midl.data.cifar10c``, which pre-generates it, runs cleanly).
"""

from midl.data.adult import AdultDataModule
from midl.data.base import InMemoryDataModule, Splits, default_data_dir
from midl.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from midl.data.digits import DigitsDataModule
from midl.data.imdb import IMDBDataModule
from midl.data.mnist import MNISTDataModule
from midl.data.svhn import SVHNDataModule, is_stand_in

PUBLISHED_SIZES: dict[str, dict[str, int]] = {
    module.name: module.published_sizes
    for module in (AdultDataModule, CIFAR10DataModule, CIFAR100DataModule, IMDBDataModule,
                   MNISTDataModule, SVHNDataModule) if module.published_sizes}
"""Published split sizes (``train`` including validation, ``test``) by data module name."""

__all__ = ["PUBLISHED_SIZES", "AdultDataModule", "CIFAR100DataModule", "CIFAR10DataModule",
           "DigitsDataModule", "IMDBDataModule", "InMemoryDataModule", "MNISTDataModule",
           "SVHNDataModule", "Splits", "default_data_dir", "is_stand_in"]
