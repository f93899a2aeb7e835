"""Run the analyses a table needs on its complete runs, once: a run that already has the
result is skipped, so an interrupted ``make tables`` continues where it stopped.

Usage::

    python -m midl.reporting.analyses TABLE SWEEP_DIR... --scale S

What a table needs comes from its columns (:mod:`midl.reporting.needs`); each analysis is a
``midl.evaluate`` of the run's tested checkpoint (``efficiency``, ``smi``, ``tsne``,
``cifar10c``: :mod:`midl.analyses`, the library the training job uses too).

Evaluations run in this process (one Python start for all). The scale sets their sizes
(``latency_repeats``, ``smi_directions``, ``max_eval_samples``). A failing analysis is logged
with its traceback, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from midl.analyses import run_analysis
from midl.reporting.needs import has_result, needed
from midl.reporting.runs import DuplicateRunError, collect_runs, select_runs
from midl.reporting.scales import scale_settings
from midl.runs.records import save_run_record

log = logging.getLogger("midl.reporting.analyses")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m midl.reporting.analyses",
                                     description="Run the analyses a table needs, once.")
    parser.add_argument("table")
    parser.add_argument("sweep_dirs", nargs="+")
    parser.add_argument("--scale", required=True)
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[analyses] %(message)s")
    settings = scale_settings(args.scale)
    runs = collect_runs([d for d in args.sweep_dirs if Path(d).is_dir()])
    jobs = needed(args.table, args.scale)
    try:  # only the run of the table's configuration gets the analysis (as the report counts)
        counted = select_runs(runs, list(dict.fromkeys(key for _, key in jobs))).counted
    except DuplicateRunError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures, done, skipped, absent = 0, 0, 0, 0
    for analysis, key in jobs:
        run = counted.get(key)
        if run is None or not run.complete:
            absent += 1
            continue
        if has_result(run, analysis, settings):
            skipped += 1
            continue
        if run.is_record:  # a committed record without its run folder: no checkpoint here
            absent += 1
            continue
        log.info("%s on %s", analysis, run.path)
        try:
            run_analysis(run, analysis, settings, args.device)
            save_run_record(run.path)  # the run's record holds the new result (and side file)
            done += 1
        except Exception:  # one failing analysis must not stop the others
            failures += 1
            log.error("%s failed on %s:\n%s", analysis, run.path, traceback.format_exc())
    print(json.dumps({"table": args.table, "ran": done, "already_done": skipped,
                      "run_not_complete": absent, "failed": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
