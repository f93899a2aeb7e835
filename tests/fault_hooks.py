"""Fault-injection hooks for tests that interrupt real training processes.

A test that signals a run "after a while" depends on the machine's speed: on a loaded machine
the signal lands in the wrong epoch, or after the run ended. :class:`PauseAt` makes the run
announce the exact point it reached and wait there, so the test acts on an event instead::

    +callbacks.pause._target_=fault_hooks.PauseAt +callbacks.pause.epoch=1
    +callbacks.pause.batch=20

(with this folder on ``PYTHONPATH``). The test waits for the run's ``paused.json``, then sends
its signal to the pid written there.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

MARKER = "paused.json"


class PauseAt(pl.Callback):
    """After training batch ``batch`` (0-based) of epoch ``epoch`` (0-based), write
    ``<default_root_dir>/paused.json`` (``{"pid", "epoch", "batch"}``, atomically) and wait
    there until the process receives ``signal_name`` (the handlers already installed then
    run as usual), or, with ``signal_name=None``, until the process is killed. A run resumed
    from a checkpoint (the rerun or requeue of the interrupted run) or one that finds the
    marker already there does not pause. If the process that started the run ends while it
    waits (the test is gone), the run stops with an error instead of waiting on.

    Args:
        epoch: epoch at which to pause.
        batch: batch index within that epoch after which to pause.
        signal_name: the signal awaited (``SIGTERM``, ``SIGUSR2``), or ``None`` to wait for
            SIGKILL.
        timeout_s: give up waiting after this long and go on (so a broken test fails on its
            assertions instead of hanging); not a timing assumption of the tests.
    """

    def __init__(self, epoch: int, batch: int, signal_name: str | None = "SIGTERM",
                 timeout_s: float = 3600.0) -> None:
        self.epoch, self.batch, self.timeout_s = epoch, batch, timeout_s
        self.signal = None if signal_name is None else signal.Signals[signal_name]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        marker = Path(trainer.default_root_dir) / MARKER
        if ((trainer.current_epoch, batch_idx) != (self.epoch, self.batch)
                or trainer.ckpt_path is not None or marker.exists()):
            return
        parent = os.getppid()
        received: list[int] = []
        previous = None
        if self.signal is not None:
            previous = signal.getsignal(self.signal)

            def note(signum: int, frame: Any) -> None:
                received.append(signum)
                if callable(previous):
                    previous(signum, frame)

            signal.signal(self.signal, note)
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "epoch": self.epoch,
                                   "batch": self.batch}))
        os.replace(tmp, marker)
        deadline = time.monotonic() + self.timeout_s
        try:
            while not received and time.monotonic() < deadline:
                if os.getppid() != parent:
                    raise RuntimeError("PauseAt: the process that started this run ended")
                time.sleep(0.01)
        finally:
            if self.signal is not None:
                signal.signal(self.signal, previous)


def wait_for_pause(folder: Path, process: Any, pattern: str = f"**/{MARKER}",
                   timeout_s: float = 3600.0) -> dict:
    """Wait until a run under ``folder`` has written its ``paused.json``; return its content.

    Raises:
        AssertionError: if ``process`` (a ``Popen``) ends first (with its stderr), or after
            ``timeout_s`` (a hang guard only).
    """
    deadline = time.monotonic() + timeout_s
    while not (found := list(folder.glob(pattern))):
        if process.poll() is not None:
            raise AssertionError(f"the run ended (status {process.returncode}) before pausing: "
                                 f"{process.stderr.read()[-3000:] if process.stderr else ''}")
        assert time.monotonic() < deadline, f"no {MARKER} under {folder} after {timeout_s} s"
        time.sleep(0.05)
    return json.loads(found[0].read_text())
