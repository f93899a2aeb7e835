"""Data modules (``configs/data/``): whole datasets in memory, batches transformed on device."""

from midl.data.base import InMemoryDataModule, Splits, default_data_dir
from midl.data.cifar import CIFAR10DataModule
from midl.data.digits import DigitsDataModule
from midl.data.mnist import MNISTDataModule

__all__ = ["CIFAR10DataModule", "DigitsDataModule", "InMemoryDataModule", "MNISTDataModule",
           "Splits", "default_data_dir"]
