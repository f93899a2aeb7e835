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


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class FiniteLossGuard(pl.Callback):
    """Stop a run whose training loss is NaN or infinite, before it saves a checkpoint.

    The loss is checked every ``every_n_steps`` steps and on the last batch of every epoch
    (before validation, hence before the epoch's checkpoint is written), so the checkpoints on
    disk all hold finite weights and the last good one stays ``last.ckpt``. Checking only
    every n steps keeps the training step free of a host synchronisation.

    Args:
        every_n_steps: steps between checks (>= 1).

    Raises:
        NonFiniteLossError: from ``on_train_batch_end``, naming the epoch, step and value.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1")
        self.every_n_steps = every_n_steps

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        if batch_idx % self.every_n_steps and not trainer.is_last_batch:
            return
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step}: stopping; the last good checkpoint is kept (lower "
                "optimizer.lr or check the data)")
