"""The CSV logger of midl: a resumed run continues its curves instead of replacing them.

Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts, so a run resumed
from ``last.ckpt`` lost the rows of every epoch before the interruption. :class:`AppendingCSVLogger`
keeps them: ``midl.train`` first cuts the file back to the rows logged before the checkpoint it
resumes from (:meth:`AppendingCSVLogger.keep_rows_before`; none when a run starts afresh), and
the logger then appends. Each row is written when it is logged, so the file holds every row
logged before a kill.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from midl.runs.io import atomic_write_text


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer without the deletion of an existing ``metrics.csv``: its header
    becomes the known columns and new rows are appended."""

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class AppendingCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` that appends to an existing ``metrics.csv``
    (same arguments, but rows are written as they are logged: ``flush_logs_every_n_steps``
    defaults to 1, so a kill loses no logged row). Used by ``configs/logger/csv.yaml``."""

    def __init__(self, *args: Any, flush_logs_every_n_steps: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, flush_logs_every_n_steps=flush_logs_every_n_steps, **kwargs)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer (created on first use): it appends to an existing ``metrics.csv``."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    @property
    def metrics_file(self) -> Path:
        """``<save_dir>/<name>/<version>/metrics.csv``."""
        return Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE

    def keep_rows_before(self, step: int) -> int:
        """Cut ``metrics.csv`` back to its rows with ``step`` < ``step`` (atomically); delete it
        for ``step`` <= 0. Returns the number of rows kept.

        Rows logged after the checkpoint a run resumes from would otherwise appear twice.
        """
        path = self.metrics_file
        if not path.is_file():
            return 0
        if step <= 0:
            path.unlink()
            return 0
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            fields = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") not in (None, "")
                    and int(float(r["step"])) < step]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields)  # csv's \r\n, as Lightning writes
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(path, out.getvalue())
        return len(rows)


def finish_wandb(loggers: list[Any]) -> bool:
    """Close the W&B run if one of ``loggers`` is Lightning's ``WandbLogger``; returns whether
    it did. ``wandb`` is imported only then, and the logger class is looked up only if its
    module is loaded (a config without W&B never imports either)."""
    module = sys.modules.get("lightning.pytorch.loggers.wandb")
    if module is None or not any(isinstance(lg, module.WandbLogger) for lg in loggers):
        return False
    import wandb

    wandb.finish()
    return True
