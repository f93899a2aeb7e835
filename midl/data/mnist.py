"""MNIST (LeCun et al. 1998) from the published idx files under the data root."""

from __future__ import annotations

from pathlib import Path

import torch

from midl.data.base import InMemoryDataModule, Splits
from midl.data.formats import check_labels, check_md5s, read_idx

_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class MNISTDataModule(InMemoryDataModule):
    """MNIST as (1, 28, 28) uint8 images: 60,000 training (minus the validation slice) and
    the official 10,000 test images.

    Files are looked up in ``<data_dir>/MNIST/raw/`` (torchvision's layout), uncompressed or
    as the published ``.gz`` files, which are read directly (nothing is written to the data
    root). ``.gz`` files are checked against torchvision's published MD5s (a mismatch warns).
    With ``download=True`` missing files are fetched by :class:`torchvision.datasets.MNIST`.

    Raises:
        FileNotFoundError: when a file is missing, naming the folder searched.
        ValueError: when a file is truncated or corrupt or a label file holds labels outside
            0-9, naming the file.
    """

    name = "MNIST"
    published_sizes = {"train": 60000, "test": 10000}
    num_classes = 10
    input_shape = (1, 28, 28)

    @property
    def raw_dir(self) -> Path:
        """``<data dir>/MNIST/raw``: the IDX files (optionally gzipped), torchvision's layout."""
        return self.data_dir / "MNIST" / "raw"

    def _find(self, stem: str):
        for candidate in (self.raw_dir / stem, self.raw_dir / f"{stem}.gz"):
            if candidate.exists():
                return candidate
        return None

    def prepare_data(self) -> None:
        if self.download and any(self._find(s) is None for s in _FILES.values()):
            from torchvision.datasets import MNIST

            MNIST(root=str(self.data_dir), download=True)

    def load(self) -> Splits:
        self.prepare_data()
        paths = {key: self._find(stem) for key, stem in _FILES.items()}
        if any(p is None for p in paths.values()):
            raise self.missing(self.raw_dir, [f"{s}[.gz]" for s in _FILES.values()],
                               "pass data.download=true to fetch it with torchvision")
        from torchvision.datasets import MNIST

        published = dict(MNIST.resources)  # {file name: md5} of the .gz files
        arrays = {}
        check_md5s([(path, published.get(path.name)) for path in paths.values()])
        for key, path in paths.items():
            array = read_idx(path)
            if key.startswith("y_"):
                check_labels(path, array, self.num_classes)
            arrays[key] = torch.from_numpy(array.copy())
        return Splits(arrays["x_train"].unsqueeze(1), arrays["y_train"].long(),
                      arrays["x_test"].unsqueeze(1), arrays["y_test"].long())
