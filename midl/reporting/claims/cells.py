"""A claim's numbers: the cells of the tables it names, from run records (as ``midl.report``
fills them) or from the committed ``<table>.csv``, and the paper's number of each cell."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midl.reporting.claims.spec import SPECS
from midl.reporting.render import build_table, paper_entry
from midl.reporting.runs import Run
from midl.reporting.scales import analysis_seeds, parse_seeds, scale_settings
from midl.reporting.tables import TableSpec


@dataclass
class Cell:
    """One table cell: per-seed values (runs) or a summary (committed table), and the paper's
    number. ``na``: the text of a cell not measurable here (e.g. ``n/a (no GPU)``).
    ``machines``: the machines a machine-bound value (latency, memory) was measured on
    (:func:`midl.reporting.columns.measured_on`); empty for other values."""

    values: dict[int, float] | None = None
    mean: float | None = None
    sd: float | None = None
    n: int = 0
    paper: float | None = None
    na: str | None = None
    machines: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.values is not None:
            v = np.array(list(self.values.values()), dtype=float)
            self.n = len(v)
            self.mean = float(v.mean()) if len(v) else None
            self.sd = float(v.std(ddof=1)) if len(v) > 1 else None


def change_from(cell: Cell | None, base: Cell | None) -> Cell | None:
    """``cell`` - ``base`` per seed (the seeds both have), the paper's numbers likewise: the
    change of one row from one column to another (module docstring, ``relative_to``). From
    summaries (no per-seed values) the change of the means, with no spread (n = the smaller
    n). None where either cell is missing."""
    if cell is None or base is None:
        return None
    paper = (None if cell.paper is None or base.paper is None else cell.paper - base.paper)
    na = cell.na or base.na
    machines = cell.machines | base.machines
    if cell.values is not None and base.values is not None:
        return Cell(values={s: v - base.values[s] for s, v in cell.values.items()
                            if s in base.values}, paper=paper, na=na, machines=machines)
    mean = (None if cell.mean is None or base.mean is None else cell.mean - base.mean)
    return Cell(mean=mean, n=min(cell.n, base.n) if mean is not None else 0, paper=paper,
                na=na, machines=machines)


@dataclass
class TableCells:
    """The cells of one table and where they came from (``runs`` or the committed CSV)."""

    spec: TableSpec
    source: str
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)


def cells_from_runs(spec: TableSpec, runs: list[Run], scale: str,
                    paper: dict[str, Any]) -> TableCells | None:
    """The table's cells from run records (as ``midl.report`` fills them); None if no run of
    the table is counted at ``scale``."""
    settings = scale_settings(scale)
    result = build_table(spec, runs, parse_seeds(settings["seeds"]), scale, paper,
                         analysis_seeds(settings))
    if not result.counted:
        return None
    cells = {key: Cell(values=dict(zip(c.seeds, c.values, strict=True)), paper=c.paper,
                       na=c.na, machines=frozenset(c.machines))
             for key, c in result.cells.items()}
    return TableCells(spec, f"{len(result.counted)} run records", cells)


def cells_from_csv(spec: TableSpec, path: Path) -> TableCells | None:
    """The table's cells from its committed ``<table>.csv`` (``midl.report``'s columns
    ``row, column, ours_mean, ours_std, n, paper, ours_text, machines``); None if the file is
    absent."""
    if not path.exists():
        return None
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    cells = {}
    for rec in csv.DictReader(lines):
        number = {k: float(rec[k]) if rec.get(k) not in (None, "") else None
                  for k in ("ours_mean", "ours_std", "paper")}
        n = int(rec["n"]) if rec.get("n") else 0
        na = rec["ours_text"] if rec.get("ours_text", "").startswith("n/a") else None
        machines = frozenset(m for m in (rec.get("machines") or "").split("; ") if m)
        cells[(rec["row"], rec["column"])] = Cell(mean=number["ours_mean"],
                                                  sd=number["ours_std"], n=n,
                                                  paper=number["paper"], na=na,
                                                  machines=machines)
    return TableCells(spec, f"committed table {path.name} (summaries)", cells)


def paper_cells(spec: TableSpec, paper: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    """The paper's number of every cell of ``spec`` (None where the paper has none)."""
    out = {}
    for row in spec.rows:
        entry = paper_entry(paper, spec, row)
        for column in spec.columns:
            out[(row.label, column.key)] = (entry.get(column.paper_field)
                                            if entry and column.paper_field else None)
    return out


def load_tables(names: Sequence[str], runs: list[Run], scale: str, results: Path,
                paper: dict[str, Any]) -> dict[str, TableCells]:
    """Every named table's cells: from runs where any is counted, else from
    ``results/<scale>/<table>.csv``; tables with neither are left out."""
    out = {}
    for name in names:
        spec = SPECS[name]
        cells = cells_from_runs(spec, runs, scale, paper) if runs else None
        if cells is None:
            cells = cells_from_csv(spec, results / scale / f"{name}.csv")
        if cells is not None:
            for key, value in paper_cells(spec, paper).items():  # the paper file is the truth
                cells.cells.setdefault(key, Cell()).paper = value
            out[name] = cells
    return out

