"""``python -m midl.train`` that stops at the start of one epoch, for the crash tests.

Usage: ``MIDL_PAUSE_AT_EPOCH=3 MIDL_PAUSE_FILE=<path> python tests/run_paused.py <overrides>``.
At the start of epoch ``MIDL_PAUSE_AT_EPOCH`` (0-based; the previous epochs' checkpoints and
curves are written by then) the run writes its pid to ``MIDL_PAUSE_FILE`` and waits to be
killed: the test waits for that file, an event, instead of guessing a time.
"""

from __future__ import annotations

import os
import runpy
import time
from pathlib import Path

import midl.callbacks

_original = midl.callbacks.EpochSeed.on_train_epoch_start


def _pause(self, trainer, pl_module) -> None:
    _original(self, trainer, pl_module)
    if trainer.current_epoch == int(os.environ["MIDL_PAUSE_AT_EPOCH"]):
        Path(os.environ["MIDL_PAUSE_FILE"]).write_text(f"{os.getpid()}\n")
        while True:  # until the test kills this process
            time.sleep(60)


midl.callbacks.EpochSeed.on_train_epoch_start = _pause

if __name__ == "__main__":  # as ``python -m midl.train`` (Hydra finds configs/ from there)
    runpy.run_module("midl.train", run_name="__main__", alter_sys=True)
