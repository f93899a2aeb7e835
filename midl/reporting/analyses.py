"""Run the analyses a table needs on its complete runs, once: a run that already has the
result is skipped, so an interrupted ``make tables`` continues where it stopped.

Usage::

    python -m midl.reporting.analyses TABLE SWEEP_DIR... --scale S

What runs (the table's columns say what they need, :mod:`midl.reporting.tables`):

- ``efficiency``: ``midl.evaluate analysis=[flops,latency,memory] eval_name=efficiency`` on
  the runs of the scale's ``efficiency_seeds`` (latency and memory at batch 1 and 64; a CNN
  is timed in the scale's ``channels_last`` layout, whatever layout it was trained in);
- ``smi``: ``midl.evaluate analysis=[smi] eval_name=smi`` on the runs of ``smi_seeds`` (also
  draws Figure 3 next to the run);
- ``tsne`` (figures): ``midl.evaluate analysis=[tsne] eval_name=tsne`` on the seed-0 MID-L
  and Dropout runs (Figure 4, side by side);
- ``cifar10c``: ``midl.evaluate eval_data=cifar10c +data.severity=3 eval_name=cifar10c_s3``
  (the scale's corruptions), summarised in ``cifar10c_severity3.json``.

Evaluations run in this process (one Python start for all). The scale sets their sizes
(``latency_repeats``, ``smi_directions``, ``max_eval_samples``). A failing analysis is logged
with its traceback, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from midl.extras import dropped_log_lines, quiet_console
from midl.reporting.runs import (
    DuplicateRunError,
    Run,
    RunKey,
    collect_runs,
    read_run,
    select_runs,
)
from midl.reporting.scales import parse_seeds, scale_settings
from midl.reporting.tables import ANALYSES, CIFAR10C_FILE, FIGURES, TABLES, table_names
from midl.runs.records import save_run_record

log = logging.getLogger("midl.reporting.analyses")


def needed(table: str, scale: str) -> list[tuple[str, RunKey]]:
    """``(analysis, run key)`` pairs that ``table`` needs at ``scale``."""
    settings = scale_settings(scale)
    seeds = {"efficiency": parse_seeds(settings["efficiency_seeds"]),
             "smi": parse_seeds(settings["smi_seeds"]),
             "cifar10c": parse_seeds(settings["seeds"])}
    out: dict[tuple[str, RunKey], None] = {}
    if table == "figures":
        for panels in FIGURES.values():
            for _, setting, eval_name, _ in panels:
                # Figure 4 shows MID-L next to its Dropout baseline
                for block in ("midl", "dropout") if eval_name == "tsne" else ("midl",):
                    out[(eval_name, RunKey(setting, block, 0.0, 0, scale))] = None
        return list(out)
    spec = TABLES.get(table)
    if spec is None:
        return []
    for row in spec.rows:
        for column in spec.columns:
            cell = row.cells.get(column.key)
            extractor = cell.value if cell is not None else column.value
            noise = (cell.noise if cell is not None and cell.noise is not None
                     else column.noise if cell is None and column.noise is not None
                     else row.noise)
            if extractor is None or extractor.needs is None:
                continue
            if extractor.needs == "efficiency" and "gpu" in extractor.name:
                continue  # measured by the CPU analysis' run only when on CUDA
            for seed in seeds[extractor.needs]:
                out[(extractor.needs,
                     RunKey(row.setting, row.block, noise, seed, scale, row.regime))] = None
    return list(out)


def tested_checkpoint(run: Run) -> str:
    """The checkpoint the run was tested with (``metrics.json``), else ``last.ckpt``.

    Raises:
        FileNotFoundError: if the run has no checkpoint.
    """
    tested = run.record.get("tested_checkpoint")
    if tested and tested != "final weights" and Path(tested).exists():
        return tested
    last = run.path / "checkpoints" / "last.ckpt"
    if last.exists():
        return str(last)
    raise FileNotFoundError(f"no checkpoint in {run.path / 'checkpoints'}")


def has_result(run: Run, analysis: str, settings: dict[str, Any]) -> bool:
    """Whether ``run`` already holds ``analysis`` (for CIFAR-10-C: on the same corruptions)."""
    if analysis == "cifar10c":
        side = run.side_json(CIFAR10C_FILE)
        if side is None:
            return False
        wanted = settings.get("cifar10c_corruptions")
        done = sorted(k for k in side.get("accuracy", {}) if k != "mean")
        return wanted is None and len(done) == 15 or wanted is not None and done == sorted(wanted)
    return run.analysis(analysis) is not None


def run_analysis(run: Run, analysis: str, settings: dict[str, Any], device: str = "cpu") -> None:
    """Run one analysis on one run (results land in the run's folder)."""
    import midl.evaluate  # noqa: F401  (Lightning loaded: its console can be quieted)

    quiet_console()  # Lightning's tip banner, once per evaluation otherwise (midl.extras)
    with dropped_log_lines():  # and its accelerator lines, once per evaluation's Trainer
        _run_analysis(run, analysis, settings, device)


def _run_analysis(run: Run, analysis: str, settings: dict[str, Any], device: str) -> None:
    if analysis == "cifar10c":  # midl.evaluate eval_data=cifar10c, summarised in CIFAR10C_FILE
        from hydra import compose, initialize_config_dir

        from midl.evaluate import CONFIG_DIR, evaluate
        from midl.runs.io import atomic_write_json

        corruptions = settings.get("cifar10c_corruptions")
        overrides = [f"ckpt_path='{tested_checkpoint(run)}'", "analysis=[]",
                     "eval_data=cifar10c", "eval_name=cifar10c_s3", f"device={device}",
                     "+data.severity=3",
                     "+data.corruptions=" + ("null" if corruptions is None
                                             else f"[{','.join(corruptions)}]")]
        with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
            result = evaluate(compose("evaluate", overrides=overrides))
        atomic_write_json(run.path / CIFAR10C_FILE, {
            "severity": 3, "accuracy": result["test_parts"], "checkpoint": result["checkpoint"],
            "corruption_source": (result.get("data") or {}).get("corruption_source"),
            "evaluation": "python -m midl.evaluate eval_data=cifar10c: metrics.json "
                          "analysis.cifar10c_s3"})
        return
    from hydra import compose, initialize_config_dir

    from midl.evaluate import CONFIG_DIR, evaluate

    n = settings["max_eval_samples"]
    # quoted: run folder names hold '=' and ','
    overrides = [f"ckpt_path='{tested_checkpoint(run)}'",
                 f"analysis=[{','.join(ANALYSES[analysis])}]", f"eval_name={analysis}",
                 f"device={device}", f"latency.repeats={settings['latency_repeats']}",
                 f"latency.warmup={min(20, settings['latency_repeats'])}",
                 f"smi.n_directions={settings['smi_directions']}", f"smi.max_samples={n}",
                 f"tsne.n_samples={n}"]
    model = run.record.get("config", {}).get("model", {})
    if analysis == "efficiency" and "channels_last" in model:
        # a layout, not a result setting: every CNN of a scale is timed in the scale's layout
        overrides.append(f"+model.channels_last={bool(settings.get('channels_last'))}")
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("evaluate", overrides=overrides)
    evaluate(cfg)


@contextlib.contextmanager
def _outside_hydra() -> Iterator[None]:
    """Set the running Hydra app aside for the block (a training job's), so that
    ``initialize_config_dir`` may compose another config; restored afterwards."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        restore_gh_from_backup(backup)


def in_job(run_dir: str | Path, names: str | Sequence[str] = "tables",
           device: str = "cpu") -> list[str]:
    """The analyses inside the training job: run, on the finished run in ``run_dir``, the
    analyses that a table of its scale needs for it (:func:`needed` over every table, so
    e.g. SMI only on the scale's ``smi_seeds``), with :func:`run_analysis`, skipping those
    it already holds; none for a run that its table would not count (another configuration
    than the cell's, :func:`midl.reporting.runs.select_runs`). Called by ``midl.train``
    after ``metrics.json`` and before the run's record is written (configured as
    ``analyses: {_target_: ..., _partial_: true}``, see ``configs/scale/cpu.yaml``), so
    the record is complete when it is written.

    Args:
        run_dir: the run folder (with ``.hydra/`` and a complete ``metrics.json``).
        names: ``"tables"`` (every analysis the tables need) or a list restricting them to
            these names (``efficiency``, ``smi``, ``tsne``, ``cifar10c``).
        device: where the analyses run (``cpu`` | ``cuda``).

    Returns:
        The analyses run now (empty if the run is of no table, or holds them all).

    Raises:
        ValueError: for an unknown analysis name.
        Exception: whatever an analysis raises (the run is then not finished: its rerun
            skips the training and runs the missing analyses).
    """
    allowed = ("efficiency", "smi", "tsne", "cifar10c")
    if not isinstance(names, str) or names != "tables":
        unknown = sorted(set(names) - set(allowed))
        if unknown or isinstance(names, str):
            raise ValueError(f"analyses names={names!r}: choose 'tables' or a list of "
                             f"{list(allowed)}")
    run = read_run(Path(run_dir).resolve())
    if run is None or not run.complete or run.key.scale is None:
        return []
    with _outside_hydra():  # a run configured otherwise than its table's cell is not counted
        if run.key not in select_runs([run], [run.key]).counted:
            return []
    settings = scale_settings(run.key.scale)
    wanted = list(dict.fromkeys(analysis for table in table_names()
                                for analysis, key in needed(table, run.key.scale)
                                if key == run.key))
    ran = []
    for analysis in wanted:
        if names != "tables" and analysis not in names:
            continue
        if has_result(run, analysis, settings):
            continue
        log.info("%s on %s (inside the training job)", analysis, run.path)
        with _outside_hydra():  # the evaluation composes its own config
            run_analysis(run, analysis, settings, device)
        ran.append(analysis)
        run = read_run(run.path) or run  # holds the new result
    return ran


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
