"""Lightning callbacks of midl (the layer code does not depend on them)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from midl.data.sampling import epoch_seed

log = logging.getLogger(__name__)


class EpochSeed(pl.Callback):
    """Reseed Python, NumPy and torch at the start of every training epoch, and keep the RNG
    state in checkpoints.

    Every source of training randomness in an epoch (shuffling, dropout, gate dropout,
    augmentation) then depends only on ``(seed, epoch)``, not on what ran before. A run resumed
    from the checkpoint of an earlier epoch therefore replays the remaining epochs exactly as
    an uninterrupted run would (on CPU, or with ``trainer.deterministic=true`` on GPU). For a
    checkpoint saved mid-epoch (pre-emption, see :class:`PreemptionCheckpoint`) the RNG state
    stored in it is restored when training restarts, so that resume is exact too.

    Args:
        seed: the run's seed (``seed`` in ``configs/train.yaml``).
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._pending_state: dict[str, Any] | None = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = epoch_seed(self.seed, trainer.current_epoch)
        random.seed(value)
        np.random.seed(value % 2**32)
        torch.manual_seed(value)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_state = state_dict or None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Restore the checkpoint's RNG state last, after everything that set-up consumed."""
        if self._pending_state is None:
            return
        state, self._pending_state = self._pending_state, None
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def submitit_requeue_signal() -> signal.Signals | None:
    """The signal by which submitit announces a pre-emption or time-out to a job it launched
    (``$SUBMITIT_PREEMPT_SIGNAL``, default SIGUSR2; SLURM sends it ``signal_delay_s`` before
    the time limit), or ``None`` outside a submitit job (``$SUBMITIT_EXECUTOR`` unset)."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()
    try:
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        return None


class PreemptionCheckpoint(pl.Callback):
    """On SIGTERM (e.g. a cluster pre-emption), Ctrl-C, or submitit's requeue signal, save
    ``last.ckpt`` before exiting.

    Lightning turns SIGTERM into ``SIGTERMException`` at the next batch boundary; this callback
    then writes the full training state (weights, optimizer, loop position, RNG, data
    position) to the checkpoint folder's ``last.ckpt``, so rerunning the same command resumes
    from that step. Other errors (e.g. a non-finite loss) save nothing: ``last.ckpt`` stays
    the last good checkpoint.

    Under submitit (``hydra/launcher=submitit_slurm`` / ``slurm_gpu`` / ``submitit_local``)
    the job's requeue signal (:func:`submitit_requeue_signal`) is caught during ``fit`` too:
    it is turned into the same SIGTERM path (save at the next batch boundary), and then
    submitit's own handler runs, which checkpoints the Hydra job and requeues it; the requeued
    job runs the same overrides in the same run folder and resumes from ``last.ckpt``. Without
    this, submitit would requeue at once and the job would resume from the last epoch's end.
    Lightning's own SLURM auto-requeue listens on SIGUSR1, a signal submitit's jobs never
    receive, so the two do not both requeue a job.
    """

    def __init__(self) -> None:
        self._signal: signal.Signals | None = None
        self._submitit_handler: Any = None
        self._requeue_pending = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        sig = submitit_requeue_signal()
        if stage != "fit" or sig is None or not callable(signal.getsignal(sig)):
            return
        self._signal, self._submitit_handler = sig, signal.getsignal(sig)
        signal.signal(sig, self._on_requeue_signal)

    def _on_requeue_signal(self, signum: int, frame: Any) -> None:
        log.warning("received %s (submitit pre-emption / time-out): saving last.ckpt at the "
                    "next batch boundary, then requeueing", signal.Signals(signum).name)
        self._requeue_pending = True
        signal.raise_signal(signal.SIGTERM)  # Lightning's handler: stop at the batch boundary

    def _requeue(self) -> None:
        """Hand over to submitit's handler (checkpoint the Hydra job, requeue, exit)."""
        sig, handler = self._signal, self._submitit_handler
        self._restore()
        if sig is not None and callable(handler):
            handler(sig, None)

    def _restore(self) -> None:
        if self._signal is not None:
            signal.signal(self._signal, self._submitit_handler)
        self._signal, self._submitit_handler = None, None

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        if self._requeue_pending:  # the signal came after the last training batch
            self._requeue_pending = False
            self._requeue()
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        checkpoint = trainer.checkpoint_callback
        if isinstance(exception, SIGTERMException | KeyboardInterrupt) and checkpoint is not None:
            path = Path(checkpoint.dirpath) / "last.ckpt"
            # the saved state names this file as the last checkpoint, so the resumed run's
            # epochs rewrite it; a state naming none (a signal before the first epoch end)
            # made Lightning write them to last-v1.ckpt beside this one
            checkpoint.last_model_path = str(path)
            trainer.save_checkpoint(path)
            log.warning("interrupted by %s: saved %s; rerun the same command to resume",
                        type(exception).__name__, path)
        if self._requeue_pending:
            self._requeue_pending = False
            self._requeue()


class LastEveryEpochCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments) that rewrites ``last.ckpt`` after every
    epoch (with ``save_last: true``).

    Lightning 2.6 rewrites ``last.ckpt`` only when it also saves a top-k checkpoint, i.e.
    when the monitored metric improves; a run interrupted after epochs without improvement
    then resumed from an older epoch and trained those epochs again. Here, whenever the
    parent saved nothing at a validation end (or a training epoch end, when checkpoints are
    taken there), ``last.ckpt`` is written anyway.
    """

    @property
    def state_key(self) -> str:
        """The parent's key, so checkpoints written with ``ModelCheckpoint`` resume alike."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_behind(trainer)

    def _save_last_if_behind(self, trainer: pl.Trainer) -> None:
        # _should_skip_saving_checkpoint: sanity check, fast_dev_run, not fitting, or already
        # saved at this step (by the parent, when the metric improved)
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class TrainingClock(pl.Callback):
    """Wall-clock seconds a run has taken, and the processes that trained it, summed over
    every process.

    The count is kept in each checkpoint, so a run interrupted and resumed (once or many
    times) reports its whole time, not only the last process's: ``elapsed()`` = seconds
    stored in the checkpoint it resumed from + seconds since this clock was made. Time after
    the last checkpoint of a killed process is lost with that process's work (a SIGTERM saves
    at the next batch boundary, so little is lost there). Likewise ``processes()``: the
    ``process`` stamps (e.g. ``{"commit": ..., "started_at": ...}``) stored in the checkpoint
    resumed from, then this process's.

    Args:
        process: what identifies this process in the record (plain values: the checkpoint is
            loaded with ``weights_only=True``); None records nothing of it.
    """

    def __init__(self, process: dict[str, Any] | None = None) -> None:
        self.start = time.perf_counter()
        self.before = 0.0  # seconds of earlier processes, from the checkpoint resumed from
        self.process = process
        self.earlier: list[dict[str, Any]] = []  # their stamps, from the same checkpoint
        self._loaded: dict[str, Any] = {}

    def elapsed(self) -> float:
        """Seconds: earlier processes' (from the checkpoint) plus this one's so far."""
        return self.before + time.perf_counter() - self.start

    def processes(self) -> list[dict[str, Any]]:
        """The stamps of every process that trained the run, the first first."""
        return [*self.earlier, *([self.process] if self.process is not None else [])]

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed_s": self.elapsed(), "processes": self.processes()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = dict(state_dict or {})

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # only the checkpoint training resumes from counts: Lightning also restores callback
        # states when it tests a checkpoint of this same run
        self.before = float(self._loaded.get("elapsed_s", 0.0))
        self.earlier = list(self._loaded.get("processes") or [])
        if "elapsed_s" in self._loaded and "processes" not in self._loaded:
            self.earlier = [{"commit": None, "started_at": None}]  # saved before stamps were


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


def _glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` through ctypes, or None where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class ReleaseFreedMemory(pl.Callback):
    """Give the pages of freed CPU tensors back to the operating system every
    ``every_n_steps`` training steps and after every validation, with glibc's
    ``malloc_trim(0)`` (malloc_trim(3)).

    Why: where a model's tensor shapes change from batch to batch (the Transformer's
    feed-forward slot runs only the real tokens of each batch, :mod:`midl.transformer`),
    glibc's heap fragments: freed blocks lie between live ones, glibc keeps them, and the
    process's resident memory grows all run long (an IMDB Transformer run: 9.3 GiB after 6
    epochs, 10.2 GiB after 10; an IMDB LSTM run stays at 1.3 GiB). Measured on the 2-core
    AMD EPYC (``make bench``'s transformer section: 48 training steps, batch 64, varying
    real-token counts, one thread): resident memory grew by 878 MB without it and by 3 MB with
    it every 8 steps (1.70 vs 1.76 s per step). The price is that the next steps fault the
    released pages back in: a CIFAR-10 CNN step followed by a release every step took 1.29x
    as long, so where shapes do not change it costs time and saves nothing, and only the
    Transformer setting turns it on (``configs/experiment/setting/imdb_transformer.yaml``).
    A no-op where the C library is not glibc (macOS, musl); CUDA memory is not touched
    (PyTorch's caching allocator keeps it by design).

    Args:
        every_n_steps: training steps between releases (>= 1).

    Raises:
        ValueError: ``every_n_steps`` < 1.
    """

    def __init__(self, every_n_steps: int = 8) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be >= 1")
        self.every_n_steps = every_n_steps
        self._trim = _glibc_malloc_trim()

    @property
    def available(self) -> bool:
        """Whether this process's C library is glibc (else :meth:`release` does nothing)."""
        return self._trim is not None

    def release(self) -> None:
        """Return freed heap pages to the operating system now (no-op without glibc)."""
        if self._trim is not None:
            self._trim(0)

    def step_done(self, batch_idx: int) -> None:
        """The schedule: release after training step ``batch_idx`` (0-based) if it completes a
        group of ``every_n_steps``; called by the Lightning hook and by ``make bench``."""
        if (batch_idx + 1) % self.every_n_steps == 0:
            self.release()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs,
                           batch, batch_idx: int) -> None:
        self.step_done(batch_idx)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.release()


class NoiseMemorization(pl.Callback):
    """Measure how many flipped training labels the model fits (:func:`midl.metrics.memorization`).

    Only in runs with label noise (a data module whose ``noise_mask`` is set); otherwise it
    does nothing. At the end of training it predicts the whole training set in eval mode with
    the final weights and keeps the result in :attr:`result` (``midl.train`` stores it in
    ``metrics.json`` under ``memorization``). With ``every_n_epochs`` > 0 it also logs
    ``noise/memorized`` and ``noise/unflipped_acc`` after every n-th validation, so a pilot's
    curves show when memorization sets in (one extra pass over the training set each time).

    Args:
        every_n_epochs: epochs between logged measurements; 0 = only at the end of training.

    Raises:
        ValueError: if ``every_n_epochs`` is negative or not an int.
    """

    def __init__(self, every_n_epochs: int = 0) -> None:
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) \
                or every_n_epochs < 0:
            raise ValueError(f"every_n_epochs={every_n_epochs!r} must be an int >= 0 "
                             "(0 = only at the end of training)")
        self.every_n_epochs = every_n_epochs
        self.result: dict[str, float | int] | None = None

    @staticmethod
    def measure(trainer: pl.Trainer, pl_module: pl.LightningModule
                ) -> dict[str, float | int] | None:
        """:func:`midl.metrics.memorization` of ``pl_module`` on the training set of the
        trainer's data module, in eval mode and the trainer's precision; None without noise."""
        from midl.metrics.memorization import memorization, predict

        data = trainer.datamodule
        if getattr(data, "noise_mask", None) is None or getattr(data, "train_set", None) is None:
            return None
        was_training = pl_module.training
        pl_module.eval()
        try:
            with trainer.precision_plugin.forward_context():
                predictions = predict(
                    pl_module.net, data.train_set.x, batch_size=data.eval_batch_size,
                    transform=lambda x: data.transform(x.to(pl_module.device), train=False))
        finally:
            pl_module.train(was_training)
        return memorization(predictions, data.train_set.y.cpu(), data.clean_train_labels.cpu())

    def on_validation_epoch_end(self, trainer: pl.Trainer,
                                pl_module: pl.LightningModule) -> None:
        if (not self.every_n_epochs or trainer.sanity_checking
                or (trainer.current_epoch + 1) % self.every_n_epochs):
            return
        result = self.measure(trainer, pl_module)
        if result is not None:
            pl_module.log("noise/memorized", result["memorized"])
            pl_module.log("noise/unflipped_acc", result["unflipped_acc"])

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.result = self.measure(trainer, pl_module)
