"""Checkpoint files that survive crashes: written atomically, stamped with the configuration
that wrote them, verified before a run resumes from them.

- :class:`AtomicCheckpointIO` (a Lightning ``CheckpointIO`` plugin, passed to the ``Trainer`` by
  ``midl.train``) writes every checkpoint to a temporary file in the checkpoint's own folder,
  fsyncs it and renames it (:func:`midl.runs.io.atomic_write`). Lightning's own writer streams the
  bytes to the final path, so a full disk or a kill mid-write left a truncated ``last.ckpt``
  that every rerun then failed to load.
- :class:`ConfigStamp` (a callback added by ``midl.train``) stores the run's configuration hash
  and result-relevant settings (:func:`midl.runs.provenance.result_config`) in each checkpoint
  under ``"midl_config"``.
- :func:`resume_checkpoint` picks the checkpoint an interrupted run continues from: the newest
  one that loads, after setting aside any that does not (``<name>.corrupt-<time>``); it refuses
  one written with other settings (:class:`StaleCheckpointError`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins import TorchCheckpointIO

from midl.runs.folder import (
    StaleResultError,
    remove_write_leftovers,
    set_aside,
    stale_message,
)
from midl.runs.io import atomic_write
from midl.runs.provenance import config_differences
from midl.runs.provenance import config_hash as compute_hash

log = logging.getLogger(__name__)

STAMP_KEY = "midl_config"

RESUME_MAY_CHANGE: tuple[str, ...] = ("trainer.max_epochs",)
"""Settings a resumed run may change. A larger ``trainer.max_epochs`` continues training along
the same trajectory to the new count: each epoch's randomness depends only on ``(seed,
epoch)`` (:class:`midl.callbacks.EpochSeed`) and nothing (no learning-rate schedule) reads the
planned count, so the result equals an uninterrupted run with the new count."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into a temporary file beside the target, fsync, rename (local paths).

    Loading is Lightning's (:class:`~lightning.fabric.plugins.TorchCheckpointIO`).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically.

        Raises:
            TypeError: if ``storage_options`` is given (not supported, as in Lightning's).
            OSError: if writing fails (disk full); any earlier file at ``path`` is intact.
        """
        if storage_options is not None:
            raise TypeError(f"storage_options={storage_options!r} is not supported by "
                            "AtomicCheckpointIO")
        atomic_write(path, lambda f: torch.save(checkpoint, f))


class ConfigStamp(pl.Callback):
    """Store the run's configuration in every checkpoint it saves.

    Args:
        config_hash: :func:`midl.runs.provenance.config_hash` of the run's config.
        config: :func:`midl.runs.provenance.result_config` of it (to name what differs).
    """

    def __init__(self, config_hash: str, config: dict[str, Any]) -> None:
        self.config_hash = config_hash
        self.config = config

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[STAMP_KEY] = {"hash": self.config_hash, "config": self.config}


class StaleCheckpointError(StaleResultError):
    """A checkpoint in the run folder was written with other result-relevant settings."""


def _load(path: Path) -> dict[str, Any] | None:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, empty file, unpicklable content, ...
        log.debug("cannot load %s: %s", path, error)
        return None
    return checkpoint if isinstance(checkpoint, dict) and "state_dict" in checkpoint else None


def _stamp_hash(stamp: dict[str, Any]) -> str | None:
    """The stamp's hash, recomputed from its settings where it has them (so a later change
    of :data:`midl.runs.provenance.NOT_RESULT_KEYS` applies to older checkpoints too)."""
    if isinstance(stamp.get("config"), dict):
        return compute_hash(stamp["config"])
    return stamp.get("hash")


def _candidates(folder: Path) -> list[Path]:
    """The checkpoints newest (modification time) first; at equal times ``last*.ckpt`` (full
    training state, possibly mid-epoch) before the epoch checkpoints. Newest, not
    ``last.ckpt`` first: Lightning's ``ModelCheckpoint`` writes ``last-v1.ckpt`` when it finds
    a ``last.ckpt`` it did not write (e.g. one saved on SIGTERM), and that file then holds
    the later epochs."""
    return sorted(folder.glob("*.ckpt"), key=lambda p: (p.stat().st_mtime,
                                                        p.name.startswith("last")),
                  reverse=True)


def resume_checkpoint(folder: str | Path, config_hash: str, config: dict[str, Any]
                      ) -> tuple[Path | None, int]:
    """The checkpoint an interrupted run resumes from, and its ``global_step``.

    Temporary files of interrupted checkpoint writes are removed first. Then it tries the
    ``*.ckpt`` of ``folder`` newest first (``last*.ckpt`` first at equal times). A file that
    does not load (``torch.load(weights_only=True)``) or holds no training state is set aside
    (:func:`set_aside`) with a warning, and the next one is tried; ``(None, 0)`` if none is
    left (the run starts from scratch). Checkpoints written before stamps existed are used
    with a warning that their settings cannot be checked.

    Args:
        folder: the run's ``checkpoints/`` folder (need not exist).
        config_hash: :func:`midl.runs.provenance.config_hash` of the current config.
        config: the current :func:`midl.runs.provenance.result_config`.

    Raises:
        StaleCheckpointError: the first loadable checkpoint was written with other settings
            (other than :data:`RESUME_MAY_CHANGE`); the message names the differing keys and
            how to proceed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None, 0
    remove_write_leftovers(folder, "*.ckpt")  # a kill mid-write leaves .<name>.ckpt.*.tmp
    for path in _candidates(folder):
        checkpoint = _load(path)
        if checkpoint is None:
            set_aside(path, "does not load (truncated or corrupt)")
            continue
        stamp = checkpoint.get(STAMP_KEY)
        if stamp is None:
            log.warning("%s has no configuration stamp (written by an older midl): resuming "
                        "from it without checking its settings", path)
        elif _stamp_hash(stamp) != config_hash:
            differences = config_differences(stamp.get("config") or {}, config)
            if not differences or any(key not in RESUME_MAY_CHANGE
                                      for key, _, _ in differences):
                raise StaleCheckpointError(stale_message(
                    f"{path} (training state to resume from)", differences)
                    + " Resuming would train one run with both settings.")
            log.info("resuming %s with %s", path, "; ".join(
                f"{key} {old!r} -> {new!r}" for key, old, new in differences))
        return path, int(checkpoint.get("global_step", 0))
    return None, 0
