"""The claims audit (the command line and its rules: :mod:`midl.claims`), in layers:

- :mod:`~midl.reporting.claims.spec`: :class:`Claim`, :func:`load_claims` and its checks;
- :mod:`~midl.reporting.claims.cells`: the tables' cells, from run records or committed CSVs;
- :mod:`~midl.reporting.claims.judge`: effects, verdicts and q-values (:func:`judge`);
- :mod:`~midl.reporting.claims.targets`: claims judged where a baseline misses its accuracy
  target (marked, verdicts unchanged);
- :mod:`~midl.reporting.claims.render`: ``claims.md``, ``claims.csv``, the README block;
- :mod:`~midl.reporting.claims.plots`: the forest plot and the paper-vs-ours bars;
- :func:`audit` (here): all of it for one scale, every output written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from midl.metrics.interleaved import FILE as SESSIONS_FILE
from midl.metrics.interleaved import load_sessions
from midl.reporting.claims.cells import (
    Cell,
    TableCells,
    cells_from_csv,
    cells_from_runs,
    change_from,
    load_tables,
    paper_cells,
)
from midl.reporting.claims.judge import (
    FDR,
    Judgement,
    adjust_for_multiplicity,
    analytic_value,
    distinct,
    judge,
)
from midl.reporting.claims.render import (
    BEGIN,
    CLAIMS_CODE,
    CSV_FIELDS,
    END,
    README,
    chance_note,
    csv_text,
    header_lines,
    headline,
    margin_text,
    markdown,
    ours_text,
    readme_block,
    replace_block,
    tally,
)
from midl.reporting.claims.spec import (
    ANALYTIC,
    CLAIMS_FILE,
    EFFECTS,
    FIGURE3,
    PAPER_REFERENCE,
    ROOT,
    SPECS,
    Claim,
    ClaimsError,
    check_cells,
    find_row,
    load_claims,
)
from midl.reporting.claims.targets import mark_below_target, target_checks
from midl.reporting.runs import collect_runs
from midl.reporting.scales import scale_settings
from midl.runs.io import atomic_write_text

__all__ = ["ANALYTIC", "BEGIN", "CLAIMS_CODE", "CLAIMS_FILE", "CSV_FIELDS", "EFFECTS", "END",
           "FDR", "FIGURE3", "PAPER_REFERENCE", "README", "ROOT", "SPECS", "Cell", "Claim",
           "ClaimsError", "Judgement", "TableCells", "adjust_for_multiplicity",
           "analytic_value", "audit", "cells_from_csv", "cells_from_runs", "chance_note",
           "change_from", "check_cells", "csv_text", "distinct", "find_row", "header_lines",
           "headline", "judge", "margin_text", "tally",
           "load_claims", "load_tables", "markdown", "ours_text", "paper_cells",
           "readme_block", "replace_block"]


def audit(scale: str, run_dirs: Sequence[str | Path], out: Path,
          claims_path: Path = CLAIMS_FILE, paper_path: Path = PAPER_REFERENCE,
          readme: Path | None = README, command: str = "python -m midl.claims"
          ) -> tuple[list[Judgement], list[Path]]:
    """Judge every claim at ``scale`` and write the outputs (:mod:`midl.claims`).

    Raises:
        ClaimsError: for a malformed claims file or README block; ScaleError: unknown scale.
    """
    from midl.reporting.claims.plots import cifar10_tables, plot_bars, plot_forest

    scale_settings(scale)  # an unknown scale fails here, before anything is read
    claims = load_claims(claims_path)
    paper = yaml.safe_load(Path(paper_path).read_text())
    dirs = [d for d in run_dirs if Path(d).is_dir()]
    runs = collect_runs(dirs) if dirs else []
    names = list(dict.fromkeys([c.table for c in claims if c.table] + cifar10_tables()))
    tables = load_tables(names, runs, scale, out, paper)
    sessions = load_sessions(out / scale / SESSIONS_FILE)
    judgements = [judge(c, tables, scale, sessions) for c in claims]
    adjust_for_multiplicity(judgements)
    checks = target_checks(claims, runs, scale)
    mark_below_target(judgements, checks)
    header = header_lines(scale, tables, command, checks)
    folder = out / scale
    written = [atomic_write_text(folder / "claims.md", markdown(judgements, header)),
               atomic_write_text(folder / "claims.csv", csv_text(judgements, header))]
    written.append(plot_forest(judgements, folder / "claims.png", scale))
    for name in cifar10_tables():
        if name in tables:
            written.append(plot_bars(tables[name], folder / f"claims_{name}.png", scale))
    if readme is not None:
        text = Path(readme).read_text()
        written.append(atomic_write_text(readme, replace_block(
            text, readme_block(judgements, scale, tables), readme)))
    return judgements, written
