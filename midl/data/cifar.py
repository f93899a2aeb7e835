"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny
Images") from the published "python version" pickles under the data root."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from midl.data.base import InMemoryDataModule, Splits, random_crop_flip
from midl.data.formats import check_md5s, read_cifar_batch


class CIFAR10DataModule(InMemoryDataModule):
    """CIFAR-10 as (3, 32, 32) uint8 images: 50,000 training (minus the validation slice) and
    the official 10,000 test images.

    Reads ``<data_dir>/cifar-10-batches-py/data_batch_1..5`` and ``test_batch`` itself, since
    torchvision's ``CIFAR10`` class refuses files whose MD5 differs from the published one
    (e.g. the offline rebuild without per-image ``filenames``): each file's MD5 is compared
    with torchvision's published list and a mismatch only warns. With ``download=True``
    missing files are fetched by :class:`torchvision.datasets.CIFAR10`.

    Args:
        augment: random crop (padding 4) + horizontal flip on training batches (default on).
        **kwargs: see :class:`~midl.data.base.InMemoryDataModule`.

    Raises:
        FileNotFoundError: when a file is missing, naming the folder searched.
        ValueError: when a file is truncated or corrupt, holds labels outside
            ``[0, num_classes)`` or is not a CIFAR pickle (``UnsafePickleError``: it asks for
            code to run, which is refused), naming the file.
    """

    name = "CIFAR-10"
    published_sizes = {"train": 50000, "test": 10000}
    num_classes = 10
    input_shape = (3, 32, 32)
    folder = "cifar-10-batches-py"
    label_key = "labels"
    torchvision_class = "CIFAR10"

    def __init__(self, augment: bool = True, **kwargs) -> None:
        super().__init__(augment=augment, **kwargs)

    def _published(self):
        import torchvision.datasets

        cls = getattr(torchvision.datasets, self.torchvision_class)
        return cls.train_list, cls.test_list

    def prepare_data(self) -> None:
        train_list, test_list = self._published()
        root = self.data_dir / self.folder
        if self.download and not all((root / n).exists() for n, _ in train_list + test_list):
            import torchvision.datasets

            getattr(torchvision.datasets, self.torchvision_class)(root=str(self.data_dir),
                                                                  download=True)

    def _read(self, files: list[list[str]]) -> tuple[Tensor, Tensor]:
        images, labels = [], []
        for name, _ in files:
            path = self.data_dir / self.folder / name
            x, y = read_cifar_batch(path, label_key=self.label_key,
                                    num_classes=self.num_classes)
            images.append(x)
            labels.append(y)
        return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))

    def load(self) -> Splits:
        self.prepare_data()
        train_list, test_list = self._published()
        root = self.data_dir / self.folder
        names = [n for n, _ in train_list + test_list]
        if not all((root / n).exists() for n in names):
            raise self.missing(root, names,
                               "pass data.download=true to fetch it with torchvision")
        check_md5s([(root / name, md5) for name, md5 in train_list + test_list])
        return Splits(*self._read(train_list), *self._read(test_list))

    def augment_batch(self, x: Tensor) -> Tensor:
        return random_crop_flip(x, padding=4, flip=True)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 with its 100 fine labels, as (3, 32, 32) uint8 images: 50,000 training
    (minus the validation slice) and 10,000 test images in the published release.

    Reads ``<data_dir>/cifar-100-python/train`` and ``test`` (label key ``fine_labels``; the
    20 coarse labels are ignored). Each file's MD5 is compared with torchvision's published
    value and a mismatch only warns (e.g. the offline pack's 1,000 / 900-record subset). With
    ``download=True`` missing files are fetched by :class:`torchvision.datasets.CIFAR100`.

    Args:
        augment: random crop (padding 4) + horizontal flip on training batches (default on).
        **kwargs: see :class:`~midl.data.base.InMemoryDataModule`.

    Raises:
        FileNotFoundError: when a file is missing, naming the folder searched.
        ValueError: when a file is truncated or corrupt, naming the file.
    """

    name = "CIFAR-100"
    published_sizes = {"train": 50000, "test": 10000}
    num_classes = 100
    folder = "cifar-100-python"
    label_key = "fine_labels"
    torchvision_class = "CIFAR100"
