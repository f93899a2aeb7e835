"""What one ``make tables`` did, said at its end: runs trained / skipped / failed, files
written, wall time.

Usage (the Makefile's ``tables`` target calls it last)::

    python -m midl.reporting.session RUN_LOG --since EPOCH_SECONDS \
        --written results/smoke results/runs/smoke [--title "make tables SCALE=smoke"]

``RUN_LOG`` is the JSON-lines file every run appended its outcome to (``$MIDL_RUN_LOG``,
:func:`midl.runs.outcome.note_outcome`); ``--written`` folders are searched for the files changed
since ``--since`` (the start of the session). Prints a few lines; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

OUTCOMES = ("trained", "skipped", "failed", "refused", "preempted")


def read_outcomes(log: str | Path) -> dict[str, str]:
    """``{run folder: last outcome}`` from a run log (missing file: none; unreadable lines
    are ignored). A run retried in the session counts once, with its last outcome."""
    outcomes: dict[str, str] = {}
    try:
        lines = Path(log).read_text(encoding="utf-8").splitlines()
    except OSError:
        return outcomes
    for line in lines:
        try:
            item = json.loads(line)
            outcomes[str(item["run"])] = str(item["outcome"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return outcomes


def written_since(folders: Sequence[str | Path], since: float) -> dict[str, list[Path]]:
    """``{folder: files below it modified at or after since}`` (hidden files left out)."""
    out = {}
    for folder in folders:
        root = Path(folder)
        files = [p for p in sorted(root.rglob("*")) if root.is_dir() and p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(root).parts)
                 and p.stat().st_mtime >= since]
        out[str(folder)] = files
    return out


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def session_summary(log: str | Path, since: float, written: Sequence[str | Path],
                    title: str = "session", now: float | None = None) -> dict[str, Any]:
    """The counts and lines :func:`main` prints: ``runs`` (outcome counts, every outcome of
    :data:`OUTCOMES` present), ``failed`` (the folders of failed and refused runs),
    ``written`` (files per folder), ``wall_s`` and ``lines``."""
    outcomes = read_outcomes(log)
    runs = {k: 0 for k in OUTCOMES}
    for outcome in outcomes.values():
        runs[outcome] = runs.get(outcome, 0) + 1
    failed = sorted(run for run, o in outcomes.items() if o in ("failed", "refused"))
    files = written_since(written, since)
    wall = (time.time() if now is None else now) - since
    lines = [f"== {title}: done in {_duration(wall)}",
             "   runs: " + ", ".join(f"{runs[k]} {k}" for k in OUTCOMES
                                     if runs[k] or k in ("trained", "skipped", "failed"))
             + " (skipped: finished before, same settings)",
             "   files written: " + ("; ".join(f"{len(v)} under {k}" for k, v in files.items())
                                     or "none")]
    lines += [f"   failed or refused: {run}" for run in failed]
    return {"runs": runs, "failed": failed,
            "written": {k: [str(p) for p in v] for k, v in files.items()},
            "wall_s": round(wall, 1), "lines": lines}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Print the summary of a session (see the module docstring); returns it."""
    parser = argparse.ArgumentParser(prog="python -m midl.reporting.session",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="the run log ($MIDL_RUN_LOG) of the session")
    parser.add_argument("--since", type=float, required=True,
                        help="start of the session (seconds since the epoch)")
    parser.add_argument("--written", nargs="*", default=[],
                        help="folders whose files changed in the session are counted")
    parser.add_argument("--title", default="session", help="first line's name of the session")
    args = parser.parse_args(argv)
    summary = session_summary(args.log, args.since, args.written, args.title)
    print("\n".join(summary["lines"]))
    return summary


if __name__ == "__main__":
    main()
