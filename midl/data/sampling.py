"""Batch sampling whose order depends only on (seed, epoch), so a resumed run replays exactly."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Sampler


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one training epoch: a fixed function of the run's seed and the epoch."""
    return (seed * 1_000_003 + epoch) % (2**63 - 1)


class EpochBatchSampler(Sampler[list[int]]):
    """Yields lists of indices (whole batches), shuffled anew each epoch from (seed, epoch).

    Unlike ``RandomSampler``, which draws its shuffle from the global torch RNG when iteration
    starts, the order here depends only on ``seed`` and the epoch, so it does not matter what
    consumed random numbers before (for instance whether the run was resumed from a
    checkpoint of an earlier epoch).

    Args:
        size: number of samples N.
        batch_size: samples per batch; the last batch may be smaller.
        shuffle: permute the indices each epoch; otherwise 0..N-1 in order.
        seed: the run's seed.
        position_fn: called when a pass starts; returns ``(epoch, skip)``, the epoch about to
            be trained and how many of its batches were already trained before a mid-epoch
            resume (they are skipped), or ``None``. When it is absent or returns ``None``, the
            sampler counts its own passes (0, 1, 2, ...) and skips nothing.

    Raises:
        ValueError: if ``batch_size`` < 1.
    """

    def __init__(self, size: int, batch_size: int, shuffle: bool, seed: int = 0,
                 position_fn: Callable[[], tuple[int, int] | None] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.size, self.batch_size, self.shuffle = size, batch_size, shuffle
        self.seed, self.position_fn = seed, position_fn
        self._passes = 0

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        position = self.position_fn() if self.position_fn is not None else None
        epoch, skip = (self._passes, 0) if position is None else position
        self._passes += 1
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        batches = [chunk.tolist() for chunk in order.split(self.batch_size)]
        return iter(batches[skip:])
