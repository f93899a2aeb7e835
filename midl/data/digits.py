"""scikit-learn's bundled handwritten digits: the embedded default dataset (no download).

The data is the test set of the UCI "Optical Recognition of Handwritten Digits" dataset
(Alpaydin & Kaynak 1998): 1,797 real 8x8 images with 17 grey levels (0-16), 10 classes, shipped
inside scikit-learn (:func:`sklearn.datasets.load_digits`).
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from midl.data.base import InMemoryDataModule, Splits


class DigitsDataModule(InMemoryDataModule):
    """scikit-learn digits as (1, 8, 8) uint8 images with values 0-16.

    The dataset has no official train/test split, so a fixed stratified split is used:
    ``test_fraction`` of the samples (default 20%, 360 images) chosen with ``random_state=0``
    whatever the run's seed, so every run is tested on the same images.

    Args:
        test_fraction: fraction of the 1,797 samples held out as the test split, in (0, 1).
        **kwargs: see :class:`~midl.data.base.InMemoryDataModule` (``val_size`` defaults to
            10% of the training split here).
    """

    name = "digits"
    num_classes = 10
    input_shape = (1, 8, 8)

    def __init__(self, test_fraction: float = 0.2, val_size: int | float = 0.1, **kwargs) -> None:
        super().__init__(val_size=val_size, **kwargs)
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"data.test_fraction={test_fraction} must lie in (0, 1)")
        self.test_fraction = test_fraction

    def load(self) -> Splits:
        digits = load_digits()
        x = torch.from_numpy(digits.images.astype("uint8")).unsqueeze(1)
        y = torch.from_numpy(digits.target.astype("int64"))
        train_idx, test_idx = train_test_split(torch.arange(len(y)).numpy(),
                                               test_size=self.test_fraction, random_state=0,
                                               stratify=y.numpy())
        train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        return Splits(x[train_idx], y[train_idx], x[test_idx], y[test_idx])
