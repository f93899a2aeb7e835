"""Lightning callbacks of midl (the layer code does not depend on them)."""

from __future__ import annotations

import random

import lightning.pytorch as pl
import numpy as np
import torch

from midl.data.sampling import epoch_seed


class EpochSeed(pl.Callback):
    """Reseed Python, NumPy and torch at the start of every training epoch.

    Every source of training randomness in an epoch (shuffling, dropout, gate dropout,
    augmentation) then depends only on ``(seed, epoch)``, not on what ran before. A run resumed
    from the checkpoint of an earlier epoch therefore replays the remaining epochs exactly as
    an uninterrupted run would (on CPU, or with ``trainer.deterministic=true`` on GPU).

    Args:
        seed: the run's seed (``seed`` in ``configs/train.yaml``).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = epoch_seed(self.seed, trainer.current_epoch)
        random.seed(value)
        np.random.seed(value % 2**32)
        torch.manual_seed(value)
