"""A training run's outcome in its folder: reuse of a finished result, the ``metrics.json``
record, the in-job analyses and run record after it, ``error.txt`` and the run log.

``midl.train`` calls these around the training itself; nothing here loads torch or
Lightning. The record's keys and their order are those of ``metrics.json`` (first the test
metrics, as the console shows them, then the bookkeeping).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from midl.runs.folder import (
    RunRefusedError,
    StaleResultError,
    adopt_record,
    adopt_twin,
    finished_record,
    stale_message,
)
from midl.runs.io import atomic_write_text
from midl.runs.provenance import (
    config_differences,
    config_hash,
    git_commit,
    hardware,
    typed_command,
    versions,
)
from midl.runs.records import live_debug, live_job, read_record, record_path, save_run_record
from midl.runs.secrets import redact_secrets

log = logging.getLogger("midl.train")

RUN_LOG_ENV = "MIDL_RUN_LOG"
"""Environment variable naming a JSON-lines file to which every run appends its outcome."""


def now() -> str:
    """The current UTC time, ISO 8601 to the microsecond (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def existing_result(output_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The finished record of this run if it may be reused instead of training, else None.

    With ``cfg.force`` true, None at once: nothing is read. Otherwise reused only if
    ``output_dir/metrics.json`` holds a record whose result-relevant settings
    (:func:`midl.runs.provenance.config_hash` of its resolved ``config``) equal ``cfg``'s. A
    corrupt or empty ``metrics.json`` is set aside and the run redone
    (:func:`midl.runs.folder.finished_record`). Without a finished ``metrics.json``, the run's
    committed record (:func:`midl.runs.records.record_path`, e.g.
    ``results/runs/<scale>/...``) is reused by the same rule (never for a debug run), and its
    result copied into the folder (:func:`midl.runs.folder.adopt_record`, ``copied_from``),
    so the run reports where it was asked for; an incomplete record
    (:func:`midl.runs.records.read_record`) counts as none. A reused
    ``metrics.json`` whose record is missing gets one. Before the committed record, the
    finished run of the same overrides in the other folder mode is looked at (a single run
    ``<task>/runs/<name>`` for a sweep job ``<task>/multirun/<name>`` and the reverse): with
    the same settings, its result is copied here and reused
    (:func:`midl.runs.folder.adopt_twin`); with other settings it is left alone.

    Raises:
        StaleResultError: the record was made with other settings; the message names the
            differing keys and how to proceed. ``.hydra/config.yaml`` (rewritten by Hydra
            for this invocation) is restored from the record, so the folder stays consistent.
    """
    if cfg.get("force", False):
        return None
    record, where = finished_record(output_dir), f"The finished run in {output_dir}"
    current = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
    if record is None and (adopted := adopt_twin(output_dir, config_hash(current))):
        return finish_run(cfg, output_dir, adopted, only_if_missing=True)
    committed = record_path(current, output_dir)
    if record is None and committed is not None and live_debug() is None:
        record, where = read_record(committed), f"The committed run record {committed}"
    if record is None:
        return None
    recorded = record.get("config")
    if not isinstance(recorded, dict) or config_hash(recorded) != config_hash(current):
        differences = config_differences(recorded if isinstance(recorded, dict) else {},
                                         current)
        hydra_config = output_dir / ".hydra" / "config.yaml"
        if hydra_config.exists() and isinstance(recorded, dict):
            atomic_write_text(hydra_config, OmegaConf.to_yaml(OmegaConf.create(recorded)))
        raise StaleResultError(stale_message(where, differences))
    log.info("%s: this run is complete with the same settings (config hash %s), skipping it "
             "(force=true reruns it)", where, config_hash(current))
    if where.startswith("The committed"):  # the run reports where it was asked for too
        return adopt_record(output_dir, record, committed)
    if where.startswith("The finished run"):  # its analyses (if cut short) and record
        record = finish_run(cfg, output_dir, record, only_if_missing=True)
    return record


def run_record(cfg: DictConfig, results: dict[str, Any], *, run_hash: str,
               run_settings: dict[str, Any], wall_time_s: float,
               process_start: float,
               processes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The ``metrics.json`` record of a finished run, secrets redacted.

    Args:
        cfg: the run's config.
        results: what the training produced, in record order: ``test``, ``best_val``, and
            where present ``test_parts``, ``test_last``, ``memorization``; then
            ``tested_checkpoint``, ``epochs_trained``, ``resumed_from``, ``data``.
        run_hash: :func:`midl.runs.provenance.config_hash` of the resolved config.
        run_settings: :func:`midl.runs.provenance.result_config` of it.
        wall_time_s: training time of every process of the run (resumed runs add up).
        process_start: ``time.perf_counter()`` when this process started the run.
        processes: ``{"commit", "started_at"}`` of every process that trained the run, the
            first first (:meth:`midl.callbacks.TrainingClock.processes`; one when not
            resumed); this process's alone when None.
    """
    debug = live_debug()  # debug=fdr|limit|...: never a record (midl.runs.records)
    commit = git_commit()
    head = {k: results[k] for k in ("test", "best_val", "test_parts", "test_last")
            if k in results}
    return redact_secrets({  # the test metrics first, as the console shows them (main)
        **head,
        "task_name": cfg.task_name,
        "seed": cfg.seed,
        **({"debug": debug} if debug else {}),
        # label noise: the final weights' training accuracy on flipped / kept labels
        **({"memorization": results["memorization"]} if "memorization" in results else {}),
        "tested_checkpoint": results["tested_checkpoint"],
        "epochs_trained": results["epochs_trained"],
        "resumed_from": results["resumed_from"],
        "data": results["data"],
        "wall_time_s": round(wall_time_s, 3),  # every process's, when resumed
        "wall_time_process_s": round(time.perf_counter() - process_start, 3),  # this one's
        "finished_at": now(),          # UTC; a run skipped later keeps it
        "command": typed_command(),    # as typed: python -m midl.train ...
        "commit": commit,
        # every process that trained it (a resumed run: more than one)
        "processes": processes if processes is not None else [
            {"commit": commit, "started_at": None}],
        "hardware": hardware(),
        "versions": versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "config_hash": run_hash,        # midl.runs.provenance.config_hash of the settings below
        "result_config": run_settings,  # the settings that change a result
    })  # no secret from the environment reaches the record (midl/runs/secrets.py)


def finish_run(cfg: DictConfig, output_dir: Path, record: dict[str, Any],
               only_if_missing: bool = False) -> dict[str, Any]:
    """After ``metrics.json``: run the analyses ``cfg.analyses`` asks for (a partial callable
    taking the run folder, e.g. :func:`midl.analyses.in_job`; their results join
    ``metrics.json``), then write the run's record
    (:func:`midl.runs.records.save_run_record`; runs of a scale only), so the record is
    complete when it is written. Returns the final ``metrics.json`` record. With
    ``only_if_missing`` and no analysis run now, an existing record of the same settings is
    kept as it is."""
    ran = instantiate(cfg.analyses)(output_dir) if cfg.get("analyses") else []
    if ran:
        record = json.loads((output_dir / "metrics.json").read_text())
    save_run_record(output_dir, record, live_job(), only_if_missing=only_if_missing and not ran)
    return record


def note_outcome(output_dir: Path, outcome: str, seconds: float) -> None:
    """Append ``{"run", "outcome", "seconds"}`` as one line to the file ``$MIDL_RUN_LOG``
    names (nothing when it is unset). ``outcome``: ``trained``, ``skipped`` (a finished
    result of the same settings was reused), ``failed`` (``error.txt``), ``refused`` (locked
    folder or other settings) or ``preempted``. One short ``O_APPEND`` write per run, so the
    parallel jobs of a sweep can share the file; ``make tables`` sums it up at the end
    (:mod:`midl.reporting.session`)."""
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    line = json.dumps({"run": str(output_dir), "outcome": outcome, "seconds": round(seconds, 1)})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def record_failure(output_dir: Path, error: BaseException) -> Path:
    """Write ``error.txt`` (the traceback) into a failed run's folder, atomically."""
    text = "".join(traceback.format_exception(error))
    return atomic_write_text(output_dir / "error.txt", text)


class RunOutcome:
    """Context manager around one run of the entry point: what happens to its folder and
    the run log (:func:`note_outcome`) however the run ends.

    - finished (:meth:`done` called with the record): a stale ``error.txt`` is removed; the
      outcome is ``trained``, or ``skipped`` when the record is older than this run;
    - pre-empted (Lightning's ``SIGTERMException``: ``last.ckpt`` saved): ``error.txt``, then
      ``sys.exit(143)``, the shell's code for "terminated by SIGTERM";
    - refused (:class:`midl.runs.folder.RunRefusedError`): logged, the folder left as it was;
    - failed (any other exception): ``error.txt`` with the traceback; re-raised.
    """

    def __init__(self, output_dir: Path) -> None:
        self.output_dir, self.started, self.clock = output_dir, now(), time.perf_counter()

    def __enter__(self) -> RunOutcome:
        return self

    def done(self, record: dict[str, Any]) -> None:
        """The run finished (trained now, or reused) with ``record``."""
        (self.output_dir / "error.txt").unlink(missing_ok=True)
        trained = record.get("finished_at", "") >= self.started
        self._note("trained" if trained else "skipped")

    def _note(self, outcome: str) -> None:
        note_outcome(self.output_dir, outcome, time.perf_counter() - self.clock)

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> bool:
        exceptions = sys.modules.get("lightning.pytorch.utilities.exceptions")
        sigterm = getattr(exceptions, "SIGTERMException", None)
        if error is None or isinstance(error, SystemExit) and not (
                sigterm is not None and isinstance(error, sigterm)):
            return False
        if isinstance(error, SystemExit):  # pre-empted (SIGTERM, Ctrl-C): last.ckpt saved
            log.error("run pre-empted; traceback in %s", record_failure(self.output_dir, error))
            self._note("preempted")
            sys.exit(128 + signal.SIGTERM)
        if isinstance(error, RunRefusedError):  # the folder is left as it was (no error.txt)
            log.error("%s", error)
            self._note("refused")
        elif isinstance(error, Exception):
            log.error("run failed; traceback in %s", record_failure(self.output_dir, error))
            self._note("failed")
        return False
