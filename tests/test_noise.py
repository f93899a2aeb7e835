"""Symmetric label noise and low-data subsets (midl.data.conditions and the base module)."""

from __future__ import annotations

import pytest
import torch

from midl.data import DigitsDataModule
from midl.data.conditions import select_subset, symmetric_label_noise


@pytest.mark.parametrize("rate", [0.2, 0.4, 0.6])
def test_realised_rate_within_one_point_and_never_to_itself(rate):
    labels = torch.arange(50_000) % 10
    noisy, flipped = symmetric_label_noise(labels, rate, 10, seed=3)
    realised = flipped.float().mean().item()
    assert abs(realised - rate) < 0.01, realised
    assert torch.equal(flipped, noisy != labels)  # every drawn flip changed the label
    # uniform over the other classes: each of the 9 wrong classes gets about 1/9 of flips
    wrong = (noisy[flipped] - labels[flipped]) % 10
    share = torch.bincount(wrong, minlength=10)[1:].float() / flipped.sum()
    assert (share - 1 / 9).abs().max() < 0.01


def test_noise_is_seeded_and_independent_of_the_global_seed():
    labels = torch.arange(1000) % 4
    torch.manual_seed(0)
    a, _ = symmetric_label_noise(labels, 0.4, 4, seed=7)
    torch.manual_seed(1)
    b, _ = symmetric_label_noise(labels, 0.4, 4, seed=7)
    c, _ = symmetric_label_noise(labels, 0.4, 4, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    same, flipped = symmetric_label_noise(labels, 0.0, 4)
    assert torch.equal(same, labels) and not flipped.any()


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "0.2", True])
def test_noise_rate_out_of_range_names_key(rate):
    with pytest.raises(ValueError, match=r"data\.label_noise=.*\[0, 1\)"):
        symmetric_label_noise(torch.zeros(3, dtype=torch.long), rate, 10)
    with pytest.raises(ValueError, match=r"data\.label_noise"):
        DigitsDataModule(label_noise=rate)


def test_datamodule_noise_only_on_training_labels_and_logged():
    clean = DigitsDataModule()
    clean.setup()
    dm = DigitsDataModule(label_noise=0.4, noise_seed=1)
    dm.setup()
    assert torch.equal(dm.val_set.y, clean.val_set.y)  # validation untouched
    assert torch.equal(dm.test_set.y, clean.test_set.y)  # test untouched
    assert torch.equal(dm.clean_train_labels, clean.train_set.y)
    flipped = dm.train_set.y != clean.train_set.y
    summary = dm.summary()["label_noise"]
    assert summary["flipped"] == int(flipped.sum()) > 0
    assert summary["realised_rate"] == pytest.approx(flipped.float().mean().item(), abs=1e-6)
    assert abs(summary["realised_rate"] - 0.4) < 0.06  # 1,293 labels: about 4 sd


def test_balanced_subset_is_seeded_and_balanced():
    labels = torch.arange(60_000) % 10
    idx = select_subset(labels, 10, per_class=20, seed=0)
    assert len(idx) == 200 and torch.bincount(labels[idx]).tolist() == [20] * 10
    assert torch.equal(idx, select_subset(labels, 10, per_class=20, seed=0))
    assert not torch.equal(idx, select_subset(labels, 10, per_class=20, seed=1))
    assert len(select_subset(labels, 10, size=1000, seed=0).unique()) == 1000


def test_subset_errors_name_key_and_range():
    labels = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"data\.train_per_class=3 .*\[1, 2\]"):
        select_subset(labels, 2, per_class=3)
    with pytest.raises(ValueError, match=r"data\.train_size=5 .*\[1, 4\]"):
        select_subset(labels, 2, size=5)
    with pytest.raises(ValueError, match="exactly one"):
        select_subset(labels, 2)
    with pytest.raises(ValueError, match="both set"):
        DigitsDataModule(train_per_class=2, train_size=10)
    with pytest.raises(ValueError, match=r"data\.train_size=0"):
        DigitsDataModule(train_size=0)


def test_low_data_subset_before_validation_slice_and_saved():
    dm = DigitsDataModule(train_per_class=20, val_size=100, subset_seed=2)
    dm.setup()
    assert len(dm.train_set) == 200 and torch.bincount(dm.train_set.y).tolist() == [20] * 10
    assert len(dm.val_set) == 100
    assert not set(dm.train_indices.tolist()) & set(dm.val_indices.tolist())
    saved = dm.summary()["subset"]
    assert saved["train_per_class"] == 20 and saved["seed"] == 2
    assert saved["train_indices"] == dm.train_indices.tolist()
    # the subset does not depend on the validation seed
    other = DigitsDataModule(train_per_class=20, val_size=100, subset_seed=2, split_seed=5)
    other.setup()
    assert torch.equal(other.train_indices, dm.train_indices)
    with pytest.raises(ValueError, match=r"data\.val_size=2000 .*remaining"):
        DigitsDataModule(train_size=1000, val_size=2000).setup()
