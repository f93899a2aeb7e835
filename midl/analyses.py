"""The analyses of a finished run, in its folder: each a :func:`midl.evaluation.evaluate` of
its tested checkpoint, composed from ``configs/evaluate.yaml``. Library code called by the
training job (:func:`in_job`, configured as ``analyses`` in ``configs/scale/*.yaml``) and by
the tables' command line (``python -m midl.reporting.analyses``).

- ``efficiency``: ``analysis=[flops,latency,memory] eval_name=efficiency`` (latency and
  memory at batch 1 and 64; a CNN is timed in the scale's ``channels_last`` layout, whatever
  layout it was trained in);
- ``smi``: ``analysis=[smi] eval_name=smi`` (also draws Figure 3 next to the run);
- ``tsne``: ``analysis=[tsne] eval_name=tsne`` (Figure 4);
- ``cifar10c``: ``eval_data=cifar10c +data.severity=3 eval_name=cifar10c_s3`` (the scale's
  corruptions), summarised in ``cifar10c_severity3.json``.

The scale sets their sizes (``latency_repeats``, ``smi_directions``, ``max_eval_samples``).
Which analyses a run needs is the tables' knowledge (:mod:`midl.reporting.needs`), asked
only inside :func:`in_job`. Nothing here loads torch or Lightning at import time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from midl.extras import dropped_log_lines, quiet_console

if TYPE_CHECKING:
    from midl.reporting.runs import Run

log = logging.getLogger("midl.analyses")

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


def run_analysis(run: Run, analysis: str, settings: dict[str, Any], device: str = "cpu") -> None:
    """Run one analysis (``efficiency``, ``smi``, ``tsne`` or ``cifar10c``) on one run with
    :func:`midl.evaluation.evaluate`; the results land in the run's folder.

    Raises:
        FileNotFoundError: the run has no checkpoint (:func:`tested_checkpoint`).
        KeyError: an unknown analysis.
    """
    import midl.evaluation  # noqa: F401  (Lightning loaded: its console can be quieted)

    quiet_console()  # Lightning's tip banner, once per evaluation otherwise (midl.extras)
    with dropped_log_lines():  # and its accelerator lines, once per evaluation's Trainer
        _run_analysis(run, analysis, settings, device)


def _run_analysis(run: Run, analysis: str, settings: dict[str, Any], device: str) -> None:
    if analysis == "cifar10c":  # midl.evaluate eval_data=cifar10c, summarised in CIFAR10C_FILE
        from hydra import compose, initialize_config_dir

        from midl.evaluation import CONFIG_DIR, evaluate
        from midl.reporting.tables import CIFAR10C_FILE
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

    from midl.evaluation import CONFIG_DIR, evaluate
    from midl.reporting.tables import ANALYSES

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
    analyses that a table of its scale needs for it (:func:`midl.reporting.needs.needed`
    over every table, so e.g. SMI only on the scale's ``smi_seeds``), with
    :func:`run_analysis`, skipping those it already holds; none for a run that its table
    would not count (another configuration than the cell's,
    :func:`midl.reporting.runs.select_runs`). Called by ``midl.train`` (through
    :func:`midl.runs.outcome.finish_run`) after ``metrics.json`` and before the run's record
    is written (configured as
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
    # which analyses the tables need for this run: the tables' knowledge, asked only here
    from midl.reporting.needs import ANALYSIS_NAMES as allowed
    from midl.reporting.needs import has_result, needed
    from midl.reporting.runs import read_run, select_runs
    from midl.reporting.scales import scale_settings
    from midl.reporting.tables import table_names

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
