"""SVHN cropped digits (Netzer et al. 2011, "Reading Digits in Natural Images with Unsupervised
Feature Learning", NIPS Workshop) from the published ``.mat`` files under the data root."""

from __future__ import annotations

import json
from typing import Any

import torch

from midl.data.base import InMemoryDataModule, Splits
from midl.data.formats import check_md5s, read_svhn_mat

# file name -> published MD5 (the values torchvision's SVHN class checks).
_FILES = {"train": ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
          "test": ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")}


class SVHNDataModule(InMemoryDataModule):
    """SVHN as (3, 32, 32) uint8 images: 73,257 training (minus the validation slice) and
    26,032 test images; labels 0-9 (the files' label 10 is the digit 0). The "extra" split is
    not used.

    Files are looked up in ``<data_dir>/svhn/`` (``train_32x32.mat``, ``test_32x32.mat``, the
    layout torchvision's ``SVHN(root=<data_dir>/svhn)`` uses). A checksum mismatch only warns.
    With ``download=True`` missing files are fetched by :class:`torchvision.datasets.SVHN`.
    Where ``svhn/FIXTURE.json`` lies beside them (``scripts/make_svhn_fixture.py``: MNIST
    digits in the SVHN layout, not SVHN), :meth:`summary` carries its content as
    ``stand_in``, so the run's record says what it was trained on wherever it is read.

    Args:
        augment: random crop (padding 4) on training batches, without flips (digits are not
            mirror-symmetric); off by default.
        **kwargs: see :class:`~midl.data.base.InMemoryDataModule`.

    Raises:
        FileNotFoundError: when a file is missing, naming the folder searched.
        ValueError: when a file is truncated or corrupt, naming the file.
    """

    name = "SVHN"
    published_sizes = {"train": 73257, "test": 26032}   # the "extra" split not used
    num_classes = 10
    input_shape = (3, 32, 32)
    folder = "svhn"
    stand_in: dict | None = None  # FIXTURE.json's content when the files are the stand-in

    def prepare_data(self) -> None:
        root = self.data_dir / self.folder
        for split, (name, _) in _FILES.items():
            if self.download and not (root / name).exists():
                from torchvision.datasets import SVHN

                SVHN(root=str(root), split=split, download=True)

    def load(self) -> Splits:
        self.prepare_data()
        root = self.data_dir / self.folder
        names = [name for name, _ in _FILES.values()]
        if not all((root / n).exists() for n in names):
            raise self.missing(root, names,
                               "pass data.download=true to fetch it with torchvision")
        fixture = root / "FIXTURE.json"
        self.stand_in = json.loads(fixture.read_text()) if fixture.exists() else None
        arrays = []
        check_md5s([(root / name, md5) for name, md5 in _FILES.values()])
        for name, _ in _FILES.values():
            x, y = read_svhn_mat(root / name)
            arrays += [torch.from_numpy(x), torch.from_numpy(y)]
        return Splits(*arrays)

    def augment_batch(self, x: torch.Tensor) -> torch.Tensor:
        from midl.data.base import random_crop_flip

        return random_crop_flip(x, padding=4, flip=False)

    def summary(self) -> dict[str, object]:
        """:meth:`InMemoryDataModule.summary` plus ``stand_in`` (the fixture's description)
        when the files are the generated stand-in."""
        out = super().summary()
        if self.stand_in is not None:
            out["stand_in"] = self.stand_in
        return out


def is_stand_in(data: Any) -> bool:
    """Whether a run's data is the generated SVHN-format fixture
    (``scripts/make_svhn_fixture.py``), not the real dataset: read from the run's data summary
    (a record's ``data``, whose ``stand_in`` :meth:`SVHNDataModule.summary` fills from
    ``svhn/FIXTURE.json``), never from a folder of the machine reading the record.

    Args:
        data: a record's ``data`` (a dict); anything else is not a stand-in.
    """
    return isinstance(data, dict) and bool(data.get("stand_in"))
