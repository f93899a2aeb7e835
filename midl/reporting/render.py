"""Aggregate seeds into table cells and render them as Markdown, CSV and LaTeX.

A cell holds our mean and sample standard deviation (ddof = 1) over the complete runs of the
expected seeds, their count n, the paper's number (and its std where the paper prints one) and
the difference ours - paper. Marks:

- ``*``: n < 5 (fewer than the paper's five runs, including cells with no run at all);
- ``†``: |ours - paper| > 2 x our std (needs n >= 2; with std 0 any difference is marked,
  except float rounding: a mean within 1e-6 of the paper's number, relative, is equal);
- ``‡``: a column of machine-bound values (latency, memory: ``Extractor.machine``) measured
  on more than one machine; a note under the table names each machine's rows and seeds, since
  milliseconds of different machines do not compare.

A cell whose runs did not train on the paper's dataset (the SVHN stand-in, a subset the files
imposed: :func:`midl.reporting.runs.data_caveat`) shows the paper's number beside ours but no
difference and no ``†``: they measure different data (FLOPs, latency and memory, which depend
on the model and the input shape alone, are compared as usual).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midl.reporting.columns import Extractor
from midl.reporting.numbers import fmt  # noqa: F401  (render.fmt: the one formatter)
from midl.reporting.runs import NotCounted, Run, RunKey, data_caveat, expected_config, select_runs
from midl.reporting.tables import CIFAR10C_FILE, Column, Row, TableSpec

REPO = Path(__file__).resolve().parents[2]


def shown(path: str | Path) -> str:
    """``path`` relative to the repository when it lies inside it, so that a table made from
    the committed records reads the same in every clone; other paths as given."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)

FULL_N = 5  # the paper's runs per result (Table 12)


@dataclass
class CellResult:
    """One rendered cell (units as in the column)."""

    row: str
    column: str
    values: list[float]
    seeds: list[int]
    paper: float | None
    paper_std: float | None
    note: str = ""
    na: str | None = None  # ours is not measurable here (e.g. "n/a (no GPU)")
    # (seed, record section) of counted runs that lack the value (e.g. test_last of runs
    # recorded before the final weights were tested): named in the cell, never dropped silently
    lacking: list[tuple[int, str]] = field(default_factory=list)
    # why ours is not the paper's measurement (midl.reporting.runs.data_caveat: "stand-in",
    # "subset"): then no difference to the paper is taken and no `†` is given
    caveat: str | None = None
    # the machine each value was measured on, for machine-bound values (Extractor.machine)
    machines: list[str] = field(default_factory=list)
    mixed_machines: bool = False  # its column holds values of more than one machine

    @property
    def n(self) -> int:
        """Counted values (seeds)."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        """Mean over the counted values (None without one)."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over the counted values (None below two)."""
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def diff(self) -> float | None:
        """Ours minus the paper's value (None where either is missing or ours is a caveat's
        stand-in)."""
        if self.mean is None or self.paper is None or self.caveat is not None:
            return None
        return self.mean - self.paper

    @property
    def marks(self) -> str:
        """``†`` (ours differs from the paper by more than 2 standard deviations), ``‡`` (its
        column mixes machines), ``*`` (fewer than the paper's 5 runs)."""
        if self.na is not None:
            return ""
        out = ""
        if (self.diff is not None and self.std is not None and abs(self.diff) > 2 * self.std
                and not math.isclose(self.mean, self.paper, rel_tol=1e-6, abs_tol=1e-9)):
            out += "†"
        if self.mixed_machines:
            out += "‡"
        if self.n < FULL_N:
            out += "*"
        return out


@dataclass
class TableResult:
    """A rendered table: its spec, cells by (row label, column key) and run bookkeeping."""

    spec: TableSpec
    cells: dict[tuple[str, str], CellResult]
    expected: list[RunKey]
    counted: list[Run]
    failed: list[Run]
    incomplete: list[Run]
    missing: list[RunKey]
    missing_analyses: list[str] = field(default_factory=list)
    not_counted: list[NotCounted] = field(default_factory=list)
    machine_notes: list[str] = field(default_factory=list)  # see machine_notes()


def paper_entry(paper: dict[str, Any], spec: TableSpec, row: Row) -> dict[str, Any] | None:
    """The paper's row matching ``row.paper_match`` in ``paper[spec.paper_key]``, or None."""
    if spec.paper_key is None or row.paper_match is None:
        return None
    for entry in paper.get(spec.paper_key) or []:
        if all(entry.get(k) == v for k, v in row.paper_match.items()):
            return entry
    return None


def has_analysis(run: Run, needs: str) -> bool:
    """Whether ``run`` holds the result of the analysis ``needs`` (see
    :mod:`midl.reporting.analyses`)."""
    if needs == "cifar10c":
        return run.side_json(CIFAR10C_FILE) is not None
    return run.analysis(needs) is not None


def _cell_source(row: Row, column: Column):
    cell = row.cells.get(column.key)
    if cell is not None:
        noise = cell.noise if cell.noise is not None else row.noise
        return cell.value, noise, cell.na
    noise = column.noise if column.noise is not None else row.noise
    return column.value, noise, column.na


def _expected_keys(spec: TableSpec, seeds: list[int], scale: str | None) -> list[RunKey]:
    keys: dict[RunKey, None] = {}
    for row in spec.rows:
        for column in spec.columns:
            extractor, noise, _ = _cell_source(row, column)
            if extractor is not None:
                for seed in seeds:  # every seed's training run, whatever the column
                    keys[RunKey.of_row(row, noise, seed, scale)] = None
    return list(keys)


def build_table(spec: TableSpec, runs: list[Run], seeds: list[int], scale: str | None,
                paper: dict[str, Any], analysis_seeds: dict[str, list[int]] | None = None,
                expected=expected_config) -> TableResult:
    """Fill ``spec`` from ``runs`` (only runs of ``scale`` and of the expected ``seeds`` count).

    ``analysis_seeds`` maps an analysis (``efficiency``, ``smi``) to the seeds that get it at
    this scale (default: all ``seeds``); a column needing it aggregates those seeds only.
    A cell counts, per seed, the one complete run whose recorded configuration equals the one
    ``expected(key)`` composes (:func:`midl.reporting.runs.select_runs`); runs of the same
    key configured otherwise are listed as not counted, never chosen.

    Raises:
        midl.reporting.runs.DuplicateRunError: two complete runs of one configuration and seed.
    """
    analysis_seeds = analysis_seeds or {}
    keys = _expected_keys(spec, seeds, scale)
    selection = select_runs(runs, keys, expected)
    index = selection.counted
    cells: dict[tuple[str, str], CellResult] = {}
    missing_analyses: list[str] = []
    for row in spec.rows:
        entry = paper_entry(paper, spec, row)
        for column in spec.columns:
            extractor, noise, na = _cell_source(row, column)
            paper_value = entry.get(column.paper_field) if entry and column.paper_field else None
            paper_std = (entry.get("std") if entry and column.paper_field == "accuracy"
                         else None)
            result = CellResult(row.label, column.key, [], [], paper_value, paper_std,
                                note=row.note)
            if extractor is None:
                result.na = na
                cells[(row.label, column.key)] = result
                continue
            cell_seeds = analysis_seeds.get(extractor.needs, seeds)
            runs_by_seed = {seed: index.get(RunKey.of_row(row, noise, seed, scale))
                            for seed in seeds if seed in cell_seeds}
            missing_analyses += _fill(result, extractor, runs_by_seed)
            if not result.values and extractor.needs == "efficiency" and column.na != "n/a":
                result.na = na  # e.g. a GPU column without any GPU measurement
            cells[(row.label, column.key)] = result
    unfinished = [selection.unfinished[k] for k in keys if k in selection.unfinished]
    notes, mixed_columns = machine_notes(spec, cells)
    for (_, column_key), cell in cells.items():
        cell.mixed_machines = column_key in mixed_columns and bool(cell.machines)
    return TableResult(
        spec, cells, keys,
        counted=[index[k] for k in keys if k in index],
        failed=[r for r in unfinished if r.status == "failed"],
        incomplete=[r for r in unfinished if r.status == "incomplete"],
        missing=[k for k in keys if k not in index and k not in selection.unfinished],
        missing_analyses=sorted(set(missing_analyses)),
        not_counted=selection.not_counted,
        machine_notes=notes)


def _fill(result: CellResult, extractor: Extractor, runs_by_seed: dict[int, Run | None]
          ) -> list[str]:
    """Append to ``result`` each seed's value from its complete run (with the machine that
    measured it and the data's caveat), or the record section the run lacks; a run without
    the analysis ``extractor`` needs is returned as ``"<analysis>: <run folder>"``."""
    missing_analyses = []
    for seed, run in runs_by_seed.items():
        if run is None or not run.complete:
            continue
        value = extractor(run)
        if value is None:
            if extractor.needs is not None and not has_analysis(run, extractor.needs):
                missing_analyses.append(f"{extractor.needs}: {shown(run.path)}")
            elif (section := extractor.lacks(run)) is not None:
                result.lacking.append((seed, section))
            continue
        result.values.append(value)
        result.seeds.append(seed)
        if extractor.machine is not None:
            result.machines.append(extractor.machine(run))
        if not extractor.of_model_only:
            result.caveat = result.caveat or data_caveat(run.record.get("data"))
    return missing_analyses


def machine_notes(spec: TableSpec, cells: dict[tuple[str, str], CellResult]
                  ) -> tuple[list[str], set[str]]:
    """The columns whose machine-bound values (latency, memory) come from more than one
    machine: a note per such column naming, per machine, the rows and seeds measured on it,
    and the set of their column keys (whose valued cells :func:`build_table` marks ``‡``).
    Columns measured on one machine get neither."""
    notes, mixed = [], set()
    for column in spec.columns:
        column_cells = [cells[(row.label, column.key)] for row in spec.rows]
        by_machine: dict[str, list[str]] = {}
        for cell in column_cells:
            if not cell.machines:  # not machine-bound, or no value
                continue
            seeds: dict[str, list[int]] = {}
            for machine, seed in zip(cell.machines, cell.seeds, strict=True):
                seeds.setdefault(machine, []).append(seed)
            for machine, machine_seeds in seeds.items():
                by_machine.setdefault(machine, []).append(
                    f"{cell.row} (seeds {','.join(map(str, machine_seeds))})")
        if len(by_machine) < 2:
            continue
        mixed.add(column.key)
        where = "; ".join(f"{machine}: {', '.join(rows)}"
                          for machine, rows in sorted(by_machine.items()))
        notes.append(f"‡ {column.label}: measured on {len(by_machine)} machines, whose values "
                     f"do not compare with each other ({where}).")
    return notes, mixed


def ours_text(cell: CellResult, digits: int) -> str:
    """``mean ± std (n=k)``, ``mean (n=1)``, ``missing (n=0)`` or the cell's n/a text;
    counted runs that lack the value are named (``(n=1; seeds 0,1,2,3 lack test_last)``)."""
    if cell.na is not None:
        return cell.na
    lacking = ""
    if cell.lacking:
        sections = sorted({section for _, section in cell.lacking})
        seeds = ",".join(str(seed) for seed, _ in cell.lacking)
        lacking = f"; seeds {seeds} lack {', '.join(sections)}"
    if cell.n == 0:
        return f"missing (n=0{lacking})"
    std = f" ± {fmt(cell.std, digits)}" if cell.std is not None else ""
    return f"{fmt(cell.mean, digits)}{std} (n={cell.n}{lacking})"


def paper_text(cell: CellResult, digits: int) -> str:
    """The paper's number (± its std where printed), or ``not reported``."""
    if cell.paper is None:
        return "not reported"
    std = f" ± {cell.paper_std:g}" if cell.paper_std is not None else ""
    return f"{cell.paper:g}{std}"


def cell_text(cell: CellResult, digits: int) -> str:
    """One table cell: ``ours / paper / Δ marks``."""
    diff = fmt(cell.diff, digits, signed=True) if cell.diff is not None else "–"
    if cell.caveat is not None:
        diff += f" ({cell.caveat} data: not comparable)"
    marks = f" {cell.marks}" if cell.marks else ""
    return f"{ours_text(cell, digits)} / {paper_text(cell, digits)} / Δ {diff}{marks}"


def markdown(result: TableResult, header: list[str]) -> str:
    """The table as Markdown: header lines, the paper's layout, notes and run bookkeeping."""
    spec = result.spec
    lines = [f"# {spec.title}", "", *header, "",
             "Each cell: **ours** mean ± std over seeds (n runs) / **paper** / Δ = ours − paper. "
             "Marks: `†` differs from the paper by more than 2 std; `*` n < 5"
             + ("; `‡` measured on more than one machine (see the notes)."
                if result.machine_notes else "."), ""]
    columns = spec.columns
    lines.append("| Row | " + " | ".join(f"{c.label}" for c in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for row in spec.rows:
        cells = [cell_text(result.cells[(row.label, c.key)], c.digits) for c in columns]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    notes = [*spec.notes, *sorted({r.note for r in spec.rows if r.note}),
             *result.machine_notes]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    lines += ["", *bookkeeping(result)]
    return "\n".join(lines) + "\n"


def bookkeeping(result: TableResult) -> list[str]:
    """Lines listing counted, failed, incomplete and missing runs, runs not counted because
    their configuration differs from the table's, and missing analyses."""
    lines = [f"Runs: {len(result.counted)} complete of {len(result.expected)} expected; "
             f"{len(result.failed)} failed, {len(result.incomplete)} incomplete, "
             f"{len(result.missing)} missing, {len(result.not_counted)} not counted."]
    for run in result.failed:
        lines.append(f"- failed (error.txt): `{shown(run.path)}`")
    for run in result.incomplete:
        lines.append(f"- incomplete ({run.note or 'no metrics.json'}): `{shown(run.path)}`")
    for item in result.not_counted:
        lines.append(f"- not counted: `{shown(item.run.path)}` {item.text()}")
    for key in result.missing:
        lines.append(f"- missing: setting={key.setting} block={key.block} "
                     f"label_noise={key.noise} seed={key.seed} scale={key.scale}"
                     + (f" regime={key.regime}" if key.regime != "standard" else "")
                     + (f" tuning={key.tuning}" if key.tuning != "none" else ""))
    for item in result.missing_analyses:
        lines.append(f"- analysis missing: {item}")
    return lines


def csv_text(result: TableResult, header: list[str]) -> str:
    """Long-format CSV: one line per cell with every number unrounded; header lines as
    ``#`` comments. ``caveat`` says why a cell with a paper number has no ``diff``
    (:func:`midl.reporting.runs.data_caveat`: ``stand-in`` or ``subset``; empty otherwise);
    ``machines`` the machines a machine-bound cell's values were measured on (empty for
    others)."""
    out = io.StringIO()
    for line in header:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "column", "unit", "ours_mean", "ours_std", "n", "seeds", "paper",
                     "paper_std", "diff", "caveat", "marks", "ours_text", "note", "machines"])
    for row in result.spec.rows:
        for column in result.spec.columns:
            cell = result.cells[(row.label, column.key)]
            writer.writerow([row.label, column.key, column.unit, _num(cell.mean), _num(cell.std),
                             cell.n, " ".join(map(str, cell.seeds)), _num(cell.paper),
                             _num(cell.paper_std), _num(cell.diff), cell.caveat or "", cell.marks,
                             ours_text(cell, column.digits), cell.note,
                             "; ".join(sorted(set(cell.machines)))])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _tex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("†", r"$^\dagger$"),
                 ("‡", r"$^\ddagger$"),
                 ("−", "-"), ("–", "--")):
        text = text.replace(a, b)
    return text


def latex(result: TableResult, header: list[str]) -> str:
    """The table as a LaTeX ``tabular`` (booktabs), header lines as ``%`` comments."""
    spec = result.spec
    lines = [f"% {line}" for line in header]
    lines.append(f"% {spec.title}. Cells: ours mean $\\pm$ std (n) / paper / $\\Delta$; "
                 "$^\\dagger$: > 2 std from the paper; *: n < 5.")
    lines.append("\\begin{tabular}{l" + "l" * len(spec.columns) + "}")
    lines.append("\\toprule")
    lines.append(" & ".join(["Row", *[_tex_escape(c.label) for c in spec.columns]]) + " \\\\")
    lines.append("\\midrule")
    for row in spec.rows:
        cells = [_tex_escape(cell_text(result.cells[(row.label, c.key)], c.digits))
                 for c in spec.columns]
        lines.append(" & ".join([_tex_escape(row.label), *cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"
