"""In-memory data module: whole datasets as tensors, batches cut by index, transforms on batches.

Subclasses only read their files (:meth:`InMemoryDataModule.load`); this class takes the fixed,
seeded validation slice, computes normalisation statistics on the training part, serves batches
by tensor indexing (no per-sample Python or PIL work) and normalises and augments whole batches
after they reach the device (:meth:`on_after_batch_transfer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from midl.data.conditions import check_noise_rate, check_seed, select_subset, symmetric_label_noise
from midl.data.sampling import EpochBatchSampler


def default_data_dir() -> str:
    """The data root: ``$MIDL_DATA_DIR`` if set, else ``./data``."""
    return os.environ.get("MIDL_DATA_DIR", "./data")


@dataclass
class Splits:
    """Raw tensors of a dataset's official splits.

    ``x_*``: (N, *input_shape), uint8 images or float features (int64 token ids for text);
    ``y_*``: (N,) int64 class indices.
    """

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


VAL_NOISE_OFFSET = 1_000_003
"""``data.noisy_val``: the validation labels' noise is drawn with seed ``noise_seed`` + this
offset, a stream of its own (never a training draw of another ``noise_seed``)."""


class TensorBatches(torch.utils.data.Dataset):
    """A dataset indexed by a list of indices, returning a whole batch ``(x[idx], y[idx])``."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, idx: list[int]) -> tuple[Tensor, Tensor]:
        idx_t = torch.as_tensor(idx, device=self.x.device)
        return self.x[idx_t], self.y[idx_t]

    def to(self, device: torch.device) -> TensorBatches:
        """Move the whole split to ``device`` (in place); returns ``self``."""
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self


def random_crop_flip(x: Tensor, padding: int = 4, flip: bool = True) -> Tensor:
    """Random crop with zero padding and random horizontal flip, per image, on a batch.

    The tensor version of torchvision's ``RandomCrop(size, padding)`` +
    ``RandomHorizontalFlip()`` (the standard CIFAR augmentation), done for the whole batch
    at once on its device.

    Args:
        x: images, shape (B, C, H, W), any float dtype.
        padding: zero padding on each side before cropping back to (H, W).
        flip: whether to flip each image left-right with probability 0.5.

    Returns:
        Augmented images, shape (B, C, H, W).
    """
    b, _, h, w = x.shape
    if padding > 0:
        padded = torch.nn.functional.pad(x, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (b,), device=x.device)
        dx = torch.randint(0, 2 * padding + 1, (b,), device=x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])  # (B, H)
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])  # (B, W)
        x = padded[torch.arange(b, device=x.device)[:, None, None, None],
                   torch.arange(x.shape[1], device=x.device)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        flip_mask = torch.rand(b, device=x.device) < 0.5
        x = torch.where(flip_mask[:, None, None, None], x.flip(-1), x)
    return x


class InMemoryDataModule(pl.LightningDataModule):
    """Base class for datasets held whole in memory as tensors.

    Args:
        data_dir: the data root holding the published files (read-only).
        cache_dir: where derived files go (decompressed data, tensors, tokenised text).
        batch_size: training batch size (Table 12: 64).
        eval_batch_size: batch size for validation and test; defaults to ``batch_size``.
        val_size: validation slice taken from the training split: an int count, or a float
            fraction in (0, 1).
        split_seed: seed of the validation slice, independent of the model seed, so every
            run of a sweep validates on the same samples.
        download: fetch missing files with torchvision when the network allows.
        augment: apply the dataset's training augmentation (images: random crop + flip).
        label_noise: symmetric label-noise rate r in [0, 1) applied to the training part only
            (validation and test labels stay clean unless ``noisy_val``); see
            :func:`~midl.data.conditions.symmetric_label_noise`.
        noise_seed: seed of the label noise, independent of the model seed and ``split_seed``.
        train_per_class: low-data regime: train on this many samples of every class (a
            balanced subset of the official training split); ``None``: all.
        train_size: low-data regime: train on this many samples drawn uniformly; ``None``: all.
        subset_seed: seed of the low-data subset.
        on_device: when the trainer runs on an accelerator (GPU), move each split there once
            and cut batches there, so no batch is copied from the host (default True). On
            the CPU it changes nothing.
        noisy_val: also flip the validation labels at rate ``label_noise`` (a draw of its own,
            seed ``noise_seed`` + :data:`VAL_NOISE_OFFSET`), so the best checkpoint and any
            model selection see noisy labels, as a practitioner without clean labels would;
            test labels stay clean. Default False.

    Order of operations in :meth:`setup`: (1) the low-data subset is drawn from the official
    training split (indices independent of ``split_seed``) and becomes the training part; the
    validation slice is then drawn from the *remaining* samples, so the training part holds
    exactly the subset; without a subset the validation slice is cut from the whole split;
    (2) :meth:`fit_features` (e.g. Adult's scikit-learn preprocessing) is fitted on the
    training part; (3) label noise is applied to the training part; (4) normalisation
    statistics are computed on the training part.

    Attributes set by subclasses: ``num_classes``, ``input_shape``, ``vocab_size`` (text
    only), ``positive_class`` (binary tasks whose F1 is reported for one class), ``name`` and
    ``standardize`` (False when :meth:`fit_features` already standardises).

    Raises:
        ValueError: for a batch size < 1, a validation size that leaves no training data, or a
            data condition out of range (the message names the key and the allowed range).
    """

    name: str = "dataset"
    # the published dataset's split sizes (``train`` including the validation slice,
    # ``test``); reports say when a run's files held fewer (a subset of the dataset)
    published_sizes: dict[str, int] | None = None
    num_classes: int
    input_shape: tuple[int, ...]
    vocab_size: int | None = None
    positive_class: int | None = None
    standardize: bool = True

    def __init__(self, data_dir: str | None = None, cache_dir: str | None = None,
                 batch_size: int = 64, eval_batch_size: int | None = None,
                 val_size: int | float = 5000, split_seed: int = 0, download: bool = False,
                 augment: bool = False, label_noise: float = 0.0, noise_seed: int = 0,
                 train_per_class: int | None = None, train_size: int | None = None,
                 subset_seed: int = 0, on_device: bool = True, noisy_val: bool = False) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"data.{key}={value!r} must be a positive int")
        self.data_dir = Path(data_dir if data_dir is not None else default_data_dir())
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(".cache")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.download = download
        self.augment = augment
        self.label_noise = check_noise_rate(label_noise)
        self.noise_seed = check_seed("data.noise_seed", noise_seed)
        self.subset_seed = check_seed("data.subset_seed", subset_seed)
        for key, value in (("train_per_class", train_per_class), ("train_size", train_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"data.{key}={value!r} must be a positive int or null (all)")
        if train_per_class is not None and train_size is not None:
            raise ValueError("data.train_per_class and data.train_size are both set: choose one")
        self.train_per_class = train_per_class
        self.train_size = train_size
        self.on_device = on_device
        if not isinstance(noisy_val, bool):
            raise ValueError(f"data.noisy_val={noisy_val!r} must be true or false")
        self.noisy_val = noisy_val
        self.val_noise_mask: Tensor | None = None
        self.train_indices: Tensor | None = None  # indices into the official training split
        self.val_indices: Tensor | None = None
        self.clean_train_labels: Tensor | None = None
        self.noise_mask: Tensor | None = None
        self.train_set: TensorBatches | None = None
        self.val_set: TensorBatches | None = None
        self.test_set: TensorBatches | None = None
        self.mean: Tensor | None = None
        self.shuffle_seed = 0
        self._resume_position: tuple[int, int] | None = None
        self.std: Tensor | None = None

    # -- what subclasses provide -------------------------------------------------------
    def load(self) -> Splits:
        """Read the official train and test splits from ``self.data_dir``."""
        raise NotImplementedError

    def augment_batch(self, x: Tensor) -> Tensor:
        """Training augmentation of a raw (un-normalised) float batch; identity by default."""
        return x

    def fit_features(self, x_train: Tensor, x_val: Tensor, x_test: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
        """Fit a feature transform on the training part only and apply it to all three parts;
        identity by default (Adult overrides it with its scikit-learn preprocessing)."""
        return x_train, x_val, x_test

    def summary(self) -> dict[str, object]:
        """Facts about the data of this run, stored in ``metrics.json`` under ``data``:
        split sizes and seeds, the label-noise setting with its realised rate, and for a
        low-data subset the selected indices (into the official training split)."""
        sizes = {name: len(s) for name, s in (("train", self.train_set), ("val", self.val_set),
                                               ("test", self.test_set)) if s is not None}
        out: dict[str, object] = {"name": self.name, "sizes": sizes,
                                  "split_seed": self.split_seed}
        if self.label_noise > 0:
            mask = self.noise_mask
            out["label_noise"] = {
                "rate": self.label_noise, "seed": self.noise_seed,
                "flipped": None if mask is None else int(mask.sum()),
                "realised_rate": None if mask is None or len(mask) == 0
                else round(float(mask.float().mean()), 6)}
            if self.val_noise_mask is not None:
                out["label_noise"]["val_flipped"] = int(self.val_noise_mask.sum())
        if self.train_per_class is not None or self.train_size is not None:
            out["subset"] = {
                "train_per_class": self.train_per_class, "train_size": self.train_size,
                "seed": self.subset_seed,
                "train_indices": None if self.train_indices is None
                else self.train_indices.tolist()}
        return out

    # -- shared machinery ----------------------------------------------------------------
    def missing(self, folder: Path, files: list[str], how: str) -> FileNotFoundError:
        """The error for missing dataset files: names the folder searched and how to fix it."""
        return FileNotFoundError(
            f"{self.name} not found: expected {', '.join(files)} in {folder}. Point the data "
            f"root at the folder holding them (MIDL_DATA_DIR=... or paths.data_dir=...; now "
            f"{self.data_dir}), or {how}.")

    def _num_val(self, n_train: int, take_all: bool = False) -> int:
        """Validation count from ``val_size`` for a pool of ``n_train`` samples; the pool must
        keep at least one training sample unless ``take_all`` (low-data: the training part is
        the subset, the pool is what remains)."""
        v = self.val_size
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"data.val_size={v!r} must be an int count or a float in (0, 1)")
        n_val = round(v * n_train) if isinstance(v, float) else v
        n_max = n_train if take_all else n_train - 1
        if isinstance(v, float) and not 0.0 < v < 1.0 or not 1 <= n_val <= n_max:
            raise ValueError(f"data.val_size={v!r} is out of range for {n_train} "
                             f"{'remaining' if take_all else 'training'} samples: use a count "
                             f"in [1, {n_max}] or a fraction in (0, 1)")
        return n_val

    def setup(self, stage: str | None = None) -> None:
        """Load the splits once, cut the validation slice and compute normalisation stats."""
        if self.train_set is not None:
            return
        # the seed in force at the first set-up (seed_everything(seed) in midl.train) seeds
        # every epoch's shuffle; later set-ups (e.g. for testing, after the per-epoch
        # reseeding) keep it
        self.shuffle_seed = torch.initial_seed()
        splits = self.load()
        gen = torch.Generator().manual_seed(self.split_seed)
        if self.train_per_class is None and self.train_size is None:
            n_val = self._num_val(len(splits.y_train))
            perm = torch.randperm(len(splits.y_train), generator=gen)
            val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
        else:  # low-data: the subset first, the validation slice from the remaining samples
            train_idx = select_subset(splits.y_train, self.num_classes, self.train_per_class,
                                      self.train_size, self.subset_seed)
            rest = torch.ones(len(splits.y_train), dtype=torch.bool)
            rest[train_idx] = False
            rest_idx = rest.nonzero().squeeze(1)
            n_val = self._num_val(len(rest_idx), take_all=True)
            val_idx = rest_idx[torch.randperm(len(rest_idx), generator=gen)[:n_val]].sort().values
        self.train_indices, self.val_indices = train_idx, val_idx
        x_train, x_val, x_test = self.fit_features(splits.x_train[train_idx],
                                                   splits.x_train[val_idx], splits.x_test)
        y_train = splits.y_train[train_idx]
        self.clean_train_labels = y_train
        if self.label_noise > 0:
            y_train, self.noise_mask = symmetric_label_noise(
                y_train, self.label_noise, self.num_classes, self.noise_seed)
        y_val = splits.y_train[val_idx]
        if self.noisy_val and self.label_noise > 0:
            y_val, self.val_noise_mask = symmetric_label_noise(
                y_val, self.label_noise, self.num_classes, self.noise_seed + VAL_NOISE_OFFSET)
        self.train_set = TensorBatches(x_train, y_train)
        self.val_set = TensorBatches(x_val, y_val)
        self.test_set = TensorBatches(x_test, splits.y_test)
        if self.standardize and (x_train.is_floating_point() or x_train.dtype == torch.uint8):
            self.mean, self.std = self._channel_stats(x_train)

    @staticmethod
    def _channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-channel (images, (N, C, H, W)) or per-feature ((N, F)) mean and std, float32,
        shaped to broadcast against a batch."""
        if x.dim() == 4:
            flat = x.transpose(0, 1).reshape(x.shape[1], -1)
            stats = [torch.std_mean(row.float()) for row in flat]
            std = torch.stack([s for s, _ in stats]).view(1, -1, 1, 1)
            mean = torch.stack([m for _, m in stats]).view(1, -1, 1, 1)
        else:
            std, mean = torch.std_mean(x.float().reshape(len(x), -1), dim=0)
            std, mean = std.view(1, *x.shape[1:]), mean.view(1, *x.shape[1:])
        return mean, std.clamp_min(1e-6)

    def _loader(self, dataset: TensorBatches | None, batch_size: int, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("call setup() before asking for a dataloader")
        device = self._training_device()
        if device is not None:
            dataset.to(device)
        # The shuffle depends on (run seed, epoch) only, and the loader draws nothing from the
        # global RNG, so a run resumed from a checkpoint replays the same batches.
        sampler = EpochBatchSampler(len(dataset), batch_size, shuffle, seed=self.shuffle_seed,
                                    position_fn=self._train_position if shuffle else None)
        return DataLoader(dataset, sampler=sampler, batch_size=None,
                          generator=torch.Generator().manual_seed(0))

    def _training_device(self) -> torch.device | None:
        """The trainer's accelerator when the splits should live there (``on_device``), else
        ``None`` (CPU training, no trainer, or ``on_device=False``)."""
        if not self.on_device or self.trainer is None:
            return None
        device = self.trainer.strategy.root_device
        return None if device.type == "cpu" else device

    def _train_position(self) -> tuple[int, int] | None:
        """(epoch about to be trained, batches of it already trained) for the sampler."""
        if self.trainer is None:
            return None
        # ``trainer.current_epoch`` lags behind when a run resumes from a checkpoint saved at
        # validation time; the count of processed epochs is what Lightning passes to samplers'
        # ``set_epoch`` too.
        epoch = self.trainer.fit_loop.epoch_progress.current.processed
        resume, self._resume_position = self._resume_position, None
        skip = resume[1] if resume is not None and resume[0] == epoch else 0
        return epoch, skip

    def state_dict(self) -> dict[str, int]:
        """Lightning hook, saved in checkpoints: where training stands inside its epoch, so a
        run resumed from a mid-epoch (pre-emption) checkpoint skips the batches it trained."""
        if self.trainer is None:
            return {}
        loop = self.trainer.fit_loop
        batches = loop.epoch_loop.batch_progress
        return {"epoch": loop.epoch_progress.current.processed,
                "batches_done": 0 if batches.is_last_batch else batches.current.completed}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Lightning hook: remember the position saved by :meth:`state_dict`."""
        if state_dict:
            self._resume_position = (state_dict["epoch"], state_dict["batches_done"])

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size, shuffle=False)

    def transform(self, x: Tensor, train: bool) -> Tensor:
        """Raw batch -> model input: float, augmented when ``train``, then standardised."""
        if self.mean is None or self.std is None:
            return x
        x = x.float()
        if train and self.augment:
            x = self.augment_batch(x)
        if self.mean.device != x.device:  # once, not per batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return (x - self.mean) / self.std

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int
                                ) -> tuple[Tensor, Tensor]:
        """Lightning hook: transform each batch on the device it was moved to."""
        x, y = batch
        train = self.trainer is not None and self.trainer.training
        return self.transform(x, train), y
