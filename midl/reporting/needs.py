"""Which analyses the tables need, on which runs: read by the table analyses' command line
(:mod:`midl.reporting.analyses`) and by the analyses inside a training job
(:func:`midl.analyses.in_job`).

The tables' columns say what they need (:mod:`midl.reporting.tables`); the scale says on
which seeds (``efficiency_seeds``, ``smi_seeds``, ``seeds``; :mod:`midl.reporting.scales`).
"""

from __future__ import annotations

from typing import Any

from midl.reporting.runs import Run, RunKey
from midl.reporting.scales import parse_seeds, scale_settings
from midl.reporting.tables import CIFAR10C_FILE, FIGURES, TABLES

ANALYSIS_NAMES = ("efficiency", "smi", "tsne", "cifar10c")
"""The analyses a table may need (each a ``midl.evaluate`` invocation, :mod:`midl.analyses`)."""


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
                     RunKey.of_row(row, noise, seed, scale))] = None
    return list(out)


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
