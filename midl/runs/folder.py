"""A run folder's state between processes: who works in it, whether it holds a finished
result that may be reused, and what a killed process left behind.

- :func:`run_lock`: a per-folder lock (``filelock``); a second process started with the same
  overrides refuses at once (:class:`RunLockedError`, naming the folder and the holder's pid)
  instead of training into the same files.
- :func:`finished_record`: the folder's ``metrics.json``, or None when there is none or it is
  corrupt or empty (then set aside as ``metrics.json.corrupt-<time>``, so the run is redone and
  the report lists it); leftovers of an interrupted atomic write (``.metrics.json.*.tmp``)
  are removed.
- :func:`twin_folder`, :func:`adopt_twin`: a single run (``<task>/runs/<name>``) and a
  one-job sweep (``<task>/multirun/<name>``) of the same overrides find each other's
  finished result.
- :func:`adopt_record`: a run skipped for its committed run record gets that record's
  result in its folder.
- :func:`stale_message`: why a recorded result or checkpoint is not reused when its
  result-relevant settings differ from the current ones, and how to proceed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from midl.runs.io import atomic_write_json, atomic_write_text
from midl.runs.provenance import config_hash

log = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
PID_NAME = ".run.pid"


class RunRefusedError(RuntimeError):
    """The run folder cannot be used as asked (nothing was changed in it)."""


class RunLockedError(RunRefusedError):
    """Another process holds the run folder's lock."""


class StaleResultError(RunRefusedError):
    """The folder's result or checkpoint was made with other result-relevant settings."""


@contextmanager
def run_lock(folder: str | Path) -> Iterator[Path]:
    """Hold ``<folder>/.run.lock`` for the block; write this process's pid to ``.run.pid``.

    Yields the folder. Only the first process of a multi-GPU run (``LOCAL_RANK`` 0 or unset)
    locks; the others work under its lock.

    Raises:
        RunLockedError: at once, if another process holds the lock; names the folder and the
            holder's pid (``.run.pid``; "unknown" if it has not written it yet).
    """
    folder = Path(folder)
    if os.environ.get("LOCAL_RANK", "0") != "0":
        yield folder
        return
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = (folder / PID_NAME).read_text().strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise RunLockedError(
            f"{folder} is in use by another process (pid {holder}) started with the same "
            "overrides: wait for it to finish, stop it, or choose another folder") from None
    try:
        atomic_write_text(folder / PID_NAME, f"{os.getpid()}\n")
        yield folder
    finally:
        (folder / PID_NAME).unlink(missing_ok=True)
        lock.release()


def set_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<UTC time>`` in its folder, log why, and return
    the new path (never overwrites: a counter is added if the name exists)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    path.rename(target)
    log.warning("%s %s: set aside as %s", path, reason, target.name)
    return target


def remove_write_leftovers(folder: str | Path, name: str = "metrics.json") -> list[Path]:
    """Delete the temporary files ``.<name>.*.tmp`` an atomic write leaves when it is killed
    (:func:`midl.runs.io.atomic_write`; ``name`` may be a glob pattern, e.g. ``*.ckpt``); returns
    those deleted. Call it only under :func:`run_lock`, when no write of this folder can be
    in flight."""
    removed = []
    for tmp in Path(folder).glob(f".{name}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    if removed:
        log.info("removed leftovers of an interrupted write: %s",
                 ", ".join(p.name for p in removed))
    return removed


def finished_record(folder: str | Path) -> dict[str, Any] | None:
    """The run's ``metrics.json`` record if the run finished, else None.

    A ``metrics.json`` that is empty, not JSON, or not a record with test metrics (a kill
    or a full disk outside midl's atomic writes, or an edit) is set aside as
    ``metrics.json.corrupt-<time>`` with a warning, so the run is redone.
    """
    folder = Path(folder)
    remove_write_leftovers(folder)
    path = folder / "metrics.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        set_aside(path, f"is not readable JSON ({type(error).__name__}: {error}); the run is "
                  "redone")
        return None
    if not isinstance(record, dict) or not isinstance(record.get("test"), dict):
        set_aside(path, "holds no test metrics; the run is redone")
        return None
    return record


def twin_folder(folder: str | Path) -> Path | None:
    """The folder the same overrides get in the other mode of Hydra's folder layout
    (``configs/hydra/default.yaml``): ``<task>/multirun/<name>`` for the single run
    ``<task>/runs/<name>`` and the reverse; None for a folder outside that layout (e.g. one
    named with ``hydra.run.dir=...``)."""
    folder = Path(folder)
    other = {"runs": "multirun", "multirun": "runs"}.get(folder.parent.name)
    return folder.parent.parent / other / folder.name if other else None


def adopt_twin(folder: str | Path, settings_hash: str) -> dict[str, Any] | None:
    """Take over the finished result of ``folder``'s twin (:func:`twin_folder`) if it was
    made with the same settings; return the adopted record, else None (nothing changed).

    The twin is only read: its ``metrics.json`` counts if it holds test metrics, is not a
    debug run's and its settings hash (:func:`midl.runs.provenance.config_hash` of its resolved
    ``config``) is ``settings_hash``. Its top-level files
    that ``folder`` lacks (side results such as ``cifar10c_severity3.json``, figures; not its
    log, lock or ``error.txt``) are copied, then ``metrics.json`` with ``copied_from`` naming
    the twin, written last and atomically. Checkpoints stay in the twin, where the record's
    ``tested_checkpoint`` points.
    """
    folder = Path(folder)
    twin = twin_folder(folder)
    if twin is None or not (twin / "metrics.json").is_file():
        return None
    try:
        record = json.loads((twin / "metrics.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if (not isinstance(record, dict) or not isinstance(record.get("test"), dict)
            or not isinstance(record.get("config"), dict) or record.get("debug")):
        return None
    if config_hash(record["config"]) != settings_hash:
        log.info("%s holds a result of other settings: not adopted", twin)
        return None
    for path in sorted(twin.iterdir()):
        if (not path.is_file() or path.name.startswith(".") or path.suffix == ".log"
                or path.name in ("metrics.json", "error.txt") or (folder / path.name).exists()):
            continue
        shutil.copy2(path, folder / path.name)
    record = {**record, "copied_from": str(twin)}
    atomic_write_json(folder / "metrics.json", record, one_line_lists=True)
    log.info("the finished run %s has the same settings (config hash %s): its result is "
             "copied here, not retrained (force=true retrains)", twin, settings_hash)
    return record


def adopt_record(folder: str | Path, record: dict[str, Any], source: str | Path
                 ) -> dict[str, Any]:
    """Give ``folder`` the result of the committed run record ``record`` (read from
    ``source``) that a run skips for: its side results (``side_files``, e.g.
    ``cifar10c_severity3.json``) as files the folder lacks, then ``metrics.json`` (the record
    without its record bookkeeping, ``copied_from`` naming ``source``: relative to the
    repository when inside it), written last and atomically. The folder then reports like a
    run made there (``midl.report``, ``midl.summarize``); nothing was trained (no
    checkpoints). Returns the written ``metrics.json`` content."""
    folder, source = Path(folder), Path(source)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (record.get("side_files") or {}).items():
        if (Path(name).name == name and not name.startswith(".") and name.endswith(".json")
                and not (folder / name).exists()):
            atomic_write_json(folder / name, content)
    repo = Path(__file__).resolve().parents[2]
    try:
        shown = str(source.resolve().relative_to(repo))
    except ValueError:
        shown = str(source)
    metrics = {k: v for k, v in record.items()
               if k not in ("record_format", "side_files", "job")}
    metrics["copied_from"] = shown
    atomic_write_json(folder / "metrics.json", metrics, one_line_lists=True)
    log.info("the committed run record %s has the same settings: its result is copied to "
             "%s, not retrained (force=true retrains)", shown, folder / "metrics.json")
    return metrics


def stale_message(what: str, differences: list[tuple[str, Any, Any]]) -> str:
    """``<what> was made with other settings (key: recorded a, now b; ...)`` and the ways on
    (``force=true``, or a new folder)."""
    named = "; ".join(f"{k}: recorded {a!r}, now {b!r}" for k, a, b in differences)
    return (f"{what} was made with other settings ({named}), so it is not reused. Rerun with "
            "force=true to redo the run in this folder (replacing it), or choose a new folder "
            "(an override that names it, or hydra.run.dir=...).")
