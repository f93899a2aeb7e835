"""The claims audit: every claim of the paper (``results/claims.yaml``) judged on our runs.

Usage::

    python -m midl.claims --scale cpu                      # make claims SCALE=cpu
    python -m midl.claims --scale cpu --runs outputs/grid_*/multirun results/runs/cpu
    python -m midl.claims --scale smoke --readme none      # leave results/README.md alone

Writes ``<out>/<scale>/claims.md``, ``claims.csv`` (one line per claim, unrounded), the forest
plot ``claims.png`` and one paper-vs-ours bar figure per CIFAR-10 table
(``claims_<table>.png``), and rewrites the marked block of ``results/README.md``
(``--readme``); every file is written atomically.

Where the numbers come from. A claim names two cells of a table of
:mod:`midl.reporting.tables` (or Figure 3's Spearman correlation, :data:`FIGURE3`); the cells
are filled exactly as the table report fills them: :func:`midl.reporting.runs.collect_runs`
on the ``--runs`` folders (sweep folders or a directory of committed run records), then
:func:`midl.reporting.render.build_table` (the same run selection and seeds as ``make
tables``). A table without any counted run falls back to its committed
``<out>/<scale>/<table>.csv`` (mean, sample std and n per cell; no per-seed values, so only
Welch's interval and no bootstrap); the report says which source each table used. The paper's
effect is computed from the paper's numbers of the same cells (``results/paper_reference.yaml``)
or, where no table holds it, given in ``claims.yaml`` (``paper_effect``).

Statistics (``scipy.stats``), per claim, over seeds; units are the metric's (accuracy in
percentage points):

- effect: mean(a) - mean(b) (``difference``); the mean of a's values (``one_sample``,
  against 0); mean(a) / mean(b) (``ratio``, deterministic metrics only). With
  ``relative_to`` (a second column), each arm's value of a seed is first its change from that
  column in the same seed, metric - relative_to (e.g. the accuracy lost to label noise,
  noise40 - clean), and the paper's number likewise: a difference of changes, so "degrades
  more slowly" is tested as such rather than as a higher accuracy under noise; from
  committed summaries (no per-seed values) the change has a mean but no known spread;
- paired by seed (``ttest_rel``) when both arms are runs of the same setting and label noise
  with the same seeds (then they share data, split and batch order: only the block differs),
  else Welch's unequal-variance t-test (``ttest_ind(equal_var=False)``, or
  ``ttest_ind_from_stats`` on table summaries); one-sample: ``ttest_1samp``;
- the interval shown and judged is the 95% t-interval; a 95% percentile bootstrap over seeds
  (``scipy.stats.bootstrap``, 10,000 resamples, seeded; paired resamples for paired claims) is
  reported beside it (``claims.csv``: ``boot_low``, ``boot_high``);
- the p-value is the two-sided one of the same t-test; n per arm is the number of seeds.

Verdicts, by these fixed rules. Write the claimed direction as s = +1 (higher) or -1 (lower),
the effect's neutral value as z (0; 1 for a ratio), our interval as s (CI - z) = [lo, hi] and
the paper's effect as r = s (paper - z):

1. *not testable here*: ``claims.yaml`` marks the claim so at this scale, or its cells cannot
   be measured on this machine (e.g. GPU latency on a CPU machine).
2. *no data*: an arm has no value (runs or analyses missing).
3. Deterministic claims (``deterministic: true`` or ``effect: analytic``): the value v is exact
   (FLOP counts are identical in every seed; ``analytic`` ones are computed from the configs),
   so the interval is the point. *opposite* if v < 0, *not found* if v = 0, *weaker than
   claimed* if 0 < v < 0.98 r (2% for the paper's rounding), else *held*.
4. *inconclusive* if an arm has fewer than 2 values (no spread is known).
5. Otherwise: *opposite* if hi < 0; *held* if lo > 0 and (no r, or hi >= r); *weaker than
   claimed* if lo > 0 and hi < r; if the interval includes 0: *inconclusive* if it also
   includes r or there is no r, *not found* if it excludes r.
6. ``direction: either`` (a check of our own, not a claim): *differs (a > b)* or *differs
   (a < b)* if the interval excludes 0, else *no difference detected*.

Many claims at once (multiplicity). Each verdict uses its own 95% interval, so among M
claims tested together a few differences from zero at p just below 0.05 are expected by
chance alone. :func:`adjust_for_multiplicity` gives every claim with a p-value its
Benjamini-Hochberg q-value over the M such claims (``scipy.stats.false_discovery_control``;
Benjamini & Hochberg 1995, false discovery rate); a claim that repeats one comparison in two
tables counts once per claim, which can only raise the q-values. The verdict is not changed:
where it states a difference from zero (*opposite*, *held*, *weaker than claimed*,
*differs*) and q >= :data:`FDR`, ``claims.md`` marks it ``‡`` (may be a chance finding).
The q-value says nothing about *not found* (an interval that excludes the paper's effect).

Seeds needed (inconclusive claims): the smallest number of seeds per arm whose t-interval at
the observed spread (the std of the paired differences, or each arm's std for Welch) is
narrower than r (half-width < r / 2), so that it cannot include both 0 and r (without r:
whose half-width is below the observed |effect|, so that it would exclude 0 at the observed
effect); ``> 100000`` if none is.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from midl.reporting.effects import (
    DIRECTIONS,
    MAX_SEEDS,
    NONZERO_VERDICTS,
    Effect,
    one_sample_effect,
    paired_effect,
    seeds_needed,
    verdict,
    welch_effect,
    welch_from_summary,
)
from midl.reporting.render import build_table, paper_entry
from midl.reporting.runs import Run, collect_runs
from midl.reporting.scales import ScaleError, analysis_seeds, parse_seeds, scale_settings
from midl.reporting.tables import TABLES, Column, Extractor, Row, TableSpec
from midl.runs.io import atomic_write_text
from midl.runs.provenance import commit_text, git_commit

ROOT = Path(__file__).resolve().parent.parent
CLAIMS_CODE = ("midl/claims.py", "midl/reporting", "results/claims.yaml",
               "results/paper_reference.yaml")
CLAIMS_FILE = ROOT / "results" / "claims.yaml"
PAPER_REFERENCE = ROOT / "results" / "paper_reference.yaml"
README = ROOT / "results" / "README.md"
BEGIN = "<!-- claims:begin (generated by `make claims`; do not edit by hand) -->"
END = "<!-- claims:end -->"

EFFECTS = ("difference", "one_sample", "ratio", "analytic")
FDR = 0.05  # false discovery rate below which a difference from zero is not marked
ANALYTIC = ("anr_reduction",)


def _spearman(run: Run) -> float | None:
    result = run.analysis("smi")
    return None if result is None else result["smi"]["mi_frequency_spearman"]


FIGURE3 = TableSpec(
    "figure3", "Figure 3: per-neuron MI vs activation frequency of MID-L's neurons", None,
    rows=(Row("mnist", "mnist_mlp", "midl", None), Row("cifar10", "cifar10_cnn", "midl", None)),
    columns=(Column("spearman", "Spearman(MI, frequency)", "", None,
                    Extractor("spearman", _spearman, needs="smi"), digits=3),))
"""Figure 3 as a one-column table: Spearman's rho between each MID-L neuron's MI with the
labels and its activation frequency (``midl.evaluate analysis=[smi]``), per run."""

SPECS: dict[str, TableSpec] = {**TABLES, "figure3": FIGURE3}


class ClaimsError(ValueError):
    """A malformed claims file, a claim naming an unknown table, row or column, or a README
    without the generated block's markers."""


# ------------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Claim:
    """One claim of ``results/claims.yaml`` (field meanings in that file's header)."""

    id: str
    group: str
    source: str
    quote: str
    direction: str
    effect: str = "difference"
    table: str | None = None
    metric: str | None = None
    a: str | None = None
    b: str | None = None
    deterministic: bool = False
    paper_metric: str | None = None
    fallback_metric: str | None = None
    paper_effect: float | None = None
    analytic: str | None = None
    relative_to: str | None = None
    unit: str | None = None
    not_testable: dict[str, Any] | None = None
    note: str = ""

    @property
    def neutral(self) -> float:
        """The effect's no-effect value: 1 for a ratio, else 0."""
        return 1.0 if self.effect == "ratio" else 0.0

    def compared(self, metric: str) -> str:
        """The compared quantity's label: ``metric``, or ``(metric − relative_to)``."""
        return metric if self.relative_to is None else f"({metric} − {self.relative_to})"

    @property
    def exact(self) -> bool:
        """Whether the claim is judged without statistics (rule 3)."""
        return self.deterministic or self.effect == "analytic"


def _row(spec: TableSpec, name: str) -> Row:
    by_label = [r for r in spec.rows if r.label == name]
    by_block = [r for r in spec.rows if r.block == name]
    if len(by_label) == 1:
        return by_label[0]
    if len(by_block) == 1:
        return by_block[0]
    raise ClaimsError(f"{spec.name} has no row {name!r} (a label, or a block unique in the "
                      f"table): rows are {[r.label for r in spec.rows]}")


def load_claims(path: str | Path = CLAIMS_FILE) -> list[Claim]:
    """Read and check the claims file.

    Raises:
        ClaimsError: for an unknown field, effect, direction, table, row or column, a
            duplicate id, or a missing required field (the message names the claim).
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    fields = set(Claim.__dataclass_fields__)
    claims, seen = [], set()
    for item in data.get("claims") or []:
        name = item.get("id", "?")
        unknown = sorted(set(item) - fields)
        if unknown:
            raise ClaimsError(f"claim {name}: unknown field(s) {unknown}; allowed: "
                              f"{sorted(fields)}")
        missing = [f for f in ("id", "group", "source", "quote", "direction") if f not in item]
        if missing:
            raise ClaimsError(f"claim {name}: missing field(s) {missing}")
        claim = Claim(**item)
        if claim.id in seen:
            raise ClaimsError(f"claim id {claim.id!r} appears twice")
        seen.add(claim.id)
        if claim.effect not in EFFECTS:
            raise ClaimsError(f"claim {name}: effect {claim.effect!r}; allowed: {EFFECTS}")
        if claim.direction not in DIRECTIONS:
            raise ClaimsError(f"claim {name}: direction {claim.direction!r}; allowed: "
                              f"{DIRECTIONS}")
        if claim.effect == "analytic":
            if claim.analytic not in ANALYTIC:
                raise ClaimsError(f"claim {name}: analytic {claim.analytic!r}; allowed: "
                                  f"{ANALYTIC}")
        else:
            _check_cells(claim)
        claims.append(claim)
    if not claims:
        raise ClaimsError(f"{path}: no claims (expected a list under `claims:`)")
    return claims


def _check_cells(claim: Claim) -> None:
    spec = SPECS.get(str(claim.table))
    if spec is None:
        raise ClaimsError(f"claim {claim.id}: table {claim.table!r}; allowed: {sorted(SPECS)}")
    columns = [c.key for c in spec.columns]
    for metric in (claim.metric, claim.paper_metric, claim.fallback_metric, claim.relative_to):
        if metric is not None and metric not in columns:
            raise ClaimsError(f"claim {claim.id}: {spec.name} has no column {metric!r}: "
                              f"columns are {columns}")
    if claim.metric is None or claim.a is None:
        raise ClaimsError(f"claim {claim.id}: needs `metric` and `a`")
    if claim.relative_to is not None and (claim.effect != "difference" or claim.exact):
        raise ClaimsError(f"claim {claim.id}: relative_to needs effect `difference` (not "
                          f"{claim.effect!r}) and a metric that varies over seeds")
    _row(spec, claim.a)
    if claim.effect == "one_sample":
        return
    if claim.b is None:
        raise ClaimsError(f"claim {claim.id}: effect {claim.effect} needs `b`")
    _row(spec, claim.b)


# ------------------------------------------------------------------------------------- cells
@dataclass
class Cell:
    """One table cell: per-seed values (runs) or a summary (committed table), and the paper's
    number. ``na``: the text of a cell not measurable here (e.g. ``n/a (no GPU)``)."""

    values: dict[int, float] | None = None
    mean: float | None = None
    sd: float | None = None
    n: int = 0
    paper: float | None = None
    na: str | None = None

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
    if cell.values is not None and base.values is not None:
        return Cell(values={s: v - base.values[s] for s, v in cell.values.items()
                            if s in base.values}, paper=paper, na=na)
    mean = (None if cell.mean is None or base.mean is None else cell.mean - base.mean)
    return Cell(mean=mean, n=min(cell.n, base.n) if mean is not None else 0, paper=paper,
                na=na)


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
                       na=c.na) for key, c in result.cells.items()}
    return TableCells(spec, f"{len(result.counted)} run records", cells)


def cells_from_csv(spec: TableSpec, path: Path) -> TableCells | None:
    """The table's cells from its committed ``<table>.csv`` (``midl.report``'s columns
    ``row, column, ours_mean, ours_std, n, paper, ours_text``); None if the file is absent."""
    if not path.exists():
        return None
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    cells = {}
    for rec in csv.DictReader(lines):
        number = {k: float(rec[k]) if rec.get(k) not in (None, "") else None
                  for k in ("ours_mean", "ours_std", "paper")}
        n = int(rec["n"]) if rec.get("n") else 0
        na = rec["ours_text"] if rec.get("ours_text", "").startswith("n/a") else None
        cells[(rec["row"], rec["column"])] = Cell(mean=number["ours_mean"],
                                                  sd=number["ours_std"], n=n,
                                                  paper=number["paper"], na=na)
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


# ---------------------------------------------------------------------------------- judging
@dataclass
class Judgement:
    """A claim with our effect, the paper's, the verdict and how it was reached."""

    claim: Claim
    verdict: str
    effect: Effect = field(default_factory=Effect)
    paper: float | None = None
    unit: str = ""
    digits: int = 2
    source: str = ""
    seeds_needed: int | None = None
    reason: str = ""
    metric: str = ""  # the column compared (the claim's, or its fallback)
    q_value: float | None = None  # Benjamini-Hochberg over the audit (adjust_for_multiplicity)

    @property
    def summaries_without_spread(self) -> bool:
        """At least 2 values per arm but no spread: a change between two columns of committed
        table summaries (``relative_to`` without per-seed values)."""
        return not self.effect.spread and self.effect.n_a >= 2 and self.effect.n_b >= 2

    @property
    def maybe_chance(self) -> bool:
        """A difference from zero (not an exact one) whose q-value is at least :data:`FDR`."""
        return (self.verdict in NONZERO_VERDICTS and not self.claim.exact
                and self.q_value is not None and self.q_value >= FDR)


def adjust_for_multiplicity(judgements: Sequence[Judgement]) -> int:
    """Set each judgement's ``q_value``: the Benjamini-Hochberg adjusted p-value (a
    probability in [0, 1], >= the claim's p) over every judgement with a finite p-value
    (module docstring, "Many claims at once").

    Args:
        judgements: all judgements of one audit; changed in place (others keep ``None``).

    Returns:
        M, the number of p-values adjusted together.
    """
    tested = [j for j in judgements
              if j.effect.p_value is not None and math.isfinite(j.effect.p_value)]
    if tested:
        q = stats.false_discovery_control([j.effect.p_value for j in tested], method="bh")
        for j, value in zip(tested, q, strict=True):
            j.q_value = float(value)
    return len(tested)


def analytic_value(name: str) -> tuple[float, str]:
    """Value and derivation of an analytic claim (``claims.yaml``: ``analytic``).

    ``anr_reduction``: 100 (1 - k/d) % of neurons for the MID-L block of
    ``configs/block/midl.yaml`` in each backbone of ``configs/model/`` (k = the block's
    ``resolve_top_k(top_k, d)``); the largest over backbones ("up to").

    Raises:
        ClaimsError: for an unknown name.
    """
    if name != "anr_reduction":
        raise ClaimsError(f"unknown analytic claim {name!r}; allowed: {ANALYTIC}")
    from midl.blocks.midl import resolve_top_k

    top_k = yaml.safe_load((ROOT / "configs" / "block" / "midl.yaml").read_text())["top_k"]
    parts = []
    for path in sorted((ROOT / "configs" / "model").glob("*.yaml")):
        d = (yaml.safe_load(path.read_text()) or {}).get("hidden_dim")
        if isinstance(d, int):
            k = resolve_top_k(top_k, d)
            parts.append((100.0 * (1 - k / d), f"{path.stem}: k={k} of d={d}"))
    value = max(v for v, _ in parts)
    return value, f"analytic: 1 - k/d at top_k={top_k} ({'; '.join(t for _, t in parts)})"


def _arm(tables: dict[str, TableCells], claim: Claim, row_name: str,
         metric: str) -> tuple[Cell | None, Row]:
    """The cell of row ``row_name`` and column ``metric`` (its change from the claim's
    ``relative_to`` column, :func:`change_from`, where the claim names one) and the row."""
    spec = SPECS[str(claim.table)]
    row = _row(spec, row_name)
    table = tables.get(spec.name)
    if table is None:
        return None, row
    cell = table.cells.get((row.label, metric))
    if claim.relative_to is not None:
        cell = change_from(cell, table.cells.get((row.label, claim.relative_to)))
    return cell, row


def _paired(spec: TableSpec, metric: str, ra: Row, rb: Row) -> bool:
    def noise(row: Row) -> float:
        cell = row.cells.get(metric)
        column = next(c for c in spec.columns if c.key == metric)
        if cell is not None and cell.noise is not None:
            return cell.noise
        return column.noise if column.noise is not None else row.noise
    return ra.setting == rb.setting and noise(ra) == noise(rb)


def judge(claim: Claim, tables: dict[str, TableCells], scale: str) -> Judgement:
    """Apply the module docstring's statistics and rules to one claim."""
    blocked = claim.not_testable
    if blocked and scale in (blocked.get("scales") or [scale]):
        return Judgement(claim, "not testable here", reason=str(blocked.get("reason", "")))
    if claim.effect == "analytic":
        value, how = analytic_value(str(claim.analytic))
        effect = Effect(value, value, value, method="analytic (exact)")
        return Judgement(claim, verdict(claim.direction, value, value, claim.paper_effect,
                                        claim.neutral, exact=True), effect, claim.paper_effect,
                         claim.unit or "", 1, how)
    spec = SPECS[str(claim.table)]
    metric = str(claim.metric)
    a, ra = _arm(tables, claim, str(claim.a), metric)
    b, rb = (None, None) if claim.effect == "one_sample" else _arm(tables, claim, str(claim.b),
                                                                   metric)
    used = metric
    if claim.fallback_metric and (a is None or a.n == 0 or (b is not None and b.n == 0)):
        fa, _ = _arm(tables, claim, str(claim.a), claim.fallback_metric)
        fb = None if rb is None else _arm(tables, claim, str(claim.b), claim.fallback_metric)[0]
        if fa is not None and fa.n and (rb is None or (fb is not None and fb.n)):
            a, b, used = fa, fb, claim.fallback_metric
    column = next(c for c in spec.columns if c.key == used)
    unit = {"%": "pts", "": ""}.get(column.unit, column.unit)
    if claim.effect == "ratio":
        unit = "x"
    digits = column.digits + 1
    table = tables.get(spec.name)
    source = "" if table is None else table.source
    if used != metric:
        source += f"; {used} (no {metric} recorded)"
    paper = claim.paper_effect
    if paper is None:
        paper = _paper_effect(claim, tables, spec)
    out = Judgement(claim, "no data", paper=paper, unit=unit, digits=digits, source=source,
                    metric=used)
    cells = [c for c in (a, b) if c is not None]
    if any(c.na for c in cells):
        out.verdict, out.reason = "not testable here", next(c.na for c in cells if c.na)
        return out
    if a is None or a.n == 0 or (rb is not None and (b is None or b.n == 0)):
        missing = claim.a if a is None or a.n == 0 else claim.b
        out.reason = f"no {claim.compared(used)} value for {missing}"
        return out
    out.effect = _effect(claim, a, b, spec, used, ra, rb)
    e = out.effect
    out.verdict = verdict(claim.direction, e.low, e.high, paper, claim.neutral, claim.exact)
    if out.verdict == "inconclusive":
        if out.summaries_without_spread:
            out.reason = "a change from table summaries (no per-seed values): no spread known"
        elif not e.spread:
            out.reason = "fewer than 2 values per arm: no spread known"
        else:
            s = 1.0 if claim.direction != "lower" else -1.0
            r = None if paper is None else s * (paper - claim.neutral)
            # width 2h < r: the interval cannot hold both 0 and r; no r: h < |effect|
            target = r / 2 if r is not None and r > 0 else abs(e.estimate - claim.neutral)
            out.seeds_needed = seeds_needed(e.spread, target)
    return out


def _paper_effect(claim: Claim, tables: dict[str, TableCells], spec: TableSpec
                  ) -> float | None:
    metric = claim.paper_metric or str(claim.metric)
    pa, _ = _arm(tables, claim, str(claim.a), metric)
    if pa is None or pa.paper is None:
        return None
    if claim.effect == "one_sample":
        return pa.paper
    pb, _ = _arm(tables, claim, str(claim.b), metric)
    if pb is None or pb.paper is None:
        return None
    return pa.paper / pb.paper if claim.effect == "ratio" else pa.paper - pb.paper


def _effect(claim: Claim, a: Cell, b: Cell | None, spec: TableSpec, metric: str, ra: Row,
            rb: Row | None) -> Effect:
    if claim.exact:
        if claim.effect == "ratio":
            value = a.mean / b.mean
        else:
            value = a.mean - (b.mean if b is not None else 0.0)
        spread = max(a.sd or 0.0, (b.sd or 0.0) if b is not None else 0.0)
        method = ("deterministic (identical in every seed)" if spread == 0
                  else f"deterministic, but seeds differ (max std {spread:.3g})")
        return Effect(value, value, value, n_a=a.n, n_b=0 if b is None else b.n, method=method)
    if claim.effect == "ratio":
        raise ClaimsError(f"claim {claim.id}: a ratio needs `deterministic: true`")
    if b is None:
        if a.values is None:
            return Effect(a.mean, n_a=a.n, method="one-sample (summaries: no test)")
        return one_sample_effect(np.array(list(a.values.values())))
    if a.values is not None and b.values is not None:
        common = sorted(set(a.values) & set(b.values))
        if (rb is not None and _paired(spec, metric, ra, rb) and len(common) >= 2
                and set(a.values) == set(b.values)):
            return paired_effect(np.array([a.values[s] for s in common]),
                                 np.array([b.values[s] for s in common]))
        return welch_effect(np.array(list(a.values.values())),
                            np.array(list(b.values.values())))
    return welch_from_summary(a.mean, a.sd, a.n, b.mean, b.sd, b.n)


# ---------------------------------------------------------------------------------- outputs
def _fmt(value: float | None, digits: int, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2g}" if value >= 1e-3 else "<0.001"


def ours_text(j: Judgement) -> str:
    """``+1.30 pts [-0.4, +3.0]`` (t-interval) or the exact value, or the reason for none."""
    e = j.effect
    if e.estimate is None:
        return j.reason or "–"
    unit = f" {j.unit}" if j.unit else ""
    signed = j.claim.effect in ("difference", "one_sample")
    text = f"{_fmt(e.estimate, j.digits, signed)}{unit}"
    if j.claim.exact:
        return text + " (exact)"
    if e.low is None:
        return text + " (no interval)"
    return text + f" [{_fmt(e.low, j.digits, signed)}, {_fmt(e.high, j.digits, signed)}]"


def _paper_text(j: Judgement) -> str:
    if j.paper is None:
        return "–"
    signed = j.claim.effect in ("difference", "one_sample")
    return _fmt(j.paper, j.digits, signed) + (f" {j.unit}" if j.unit else "")


def _comparison(j: Judgement) -> str:
    c = j.claim
    if c.effect == "analytic":
        return f"{c.analytic} (analytic)"
    what = {"difference": f"{c.a} − {c.b}", "ratio": f"{c.a} / {c.b}",
            "one_sample": f"{c.a}"}[c.effect]
    return f"{c.table} {c.compared(str(j.metric or c.metric))}: {what}"


def chance_note(judgements: Sequence[Judgement]) -> str:
    """The legend of ``‡`` (:attr:`Judgement.maybe_chance`), naming M, the number of claims
    whose p-values were adjusted together (those with a ``q_value``)."""
    tested = sum(j.q_value is not None for j in judgements)
    return (f"‡: a difference from zero whose q (its p-value adjusted for the {tested} claims "
            f"with a p-value judged together, Benjamini-Hochberg) is >= {FDR:g}: it may be "
            "a chance finding. The verdict itself uses the claim's own 95% interval.")


def _seeds_text(j: Judgement) -> str:
    if j.verdict != "inconclusive":
        return ""
    if j.seeds_needed is not None:
        return str(j.seeds_needed)
    return f"> {MAX_SEEDS}" if j.effect.spread else "unknown (no spread)"


def markdown(judgements: list[Judgement], header: list[str]) -> str:
    """``claims.md``: the rules, the claims table, the inconclusive claims and the notes."""
    counts: dict[str, int] = {}
    for j in judgements:
        counts[j.verdict] = counts.get(j.verdict, 0) + 1
    lines = ["# Did the paper's claims hold?", "", *header, "",
             "Verdicts: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items(),
                                                                     key=lambda kv: -kv[1])),
             "", "Ours: our effect and its 95% t-interval over seeds (paired by seed where "
             "both arms share seeds and data, else Welch; the bootstrap interval is in "
             "`claims.csv`). Paper: the paper's effect from its tables. Accuracy effects in "
             "percentage points (pts). Rules: `midl/claims.py`'s docstring.", "",
             "q: the p-value adjusted for the number of claims tested together "
             "(Benjamini-Hochberg false discovery rate). " + chance_note(judgements), "",
             "| Claim | Paper says (source) | Comparison | Ours (95% CI) | p | q | n | Paper | "
             "Verdict | Seeds needed |", "|---|---|---|---|---|---|---|---|---|---|"]
    for j in judgements:
        c = j.claim
        n = f"{j.effect.n_a}/{j.effect.n_b}" if j.effect.n_b else str(j.effect.n_a or "–")
        mark = " ‡" if j.maybe_chance else ""
        lines.append(f"| `{c.id}` | “{c.quote}” ({c.source}) | {_comparison(j)} | "
                     f"{ours_text(j)} | {_p(j.effect.p_value)} | {_p(j.q_value)} | {n} | "
                     f"{_paper_text(j)} | **{j.verdict}**{mark} | {_seeds_text(j)} |")
    pending = [j for j in judgements if j.verdict == "inconclusive"]
    lines += ["", "## Inconclusive claims and what would resolve them", ""]
    if not pending:
        lines.append("None.")
    for j in pending:
        if j.seeds_needed is not None:
            how = (f"{j.seeds_needed} seeds per arm at the observed spread would give an "
                   "interval narrower than the paper's effect")
        elif j.effect.spread:
            how = f"more than {MAX_SEEDS} seeds per arm at the observed spread"
        elif j.summaries_without_spread:
            how = "per-seed values (the run records; the committed table holds summaries)"
        else:
            how = ("a spread: at least 2 measurements per arm (seeds; for Tables 5 and 10, "
                   "efficiency seeds)")
        lines.append(f"- `{j.claim.id}`: {how}.")
    notes = [j for j in judgements if j.claim.note or j.reason or j.source]
    lines += ["", "## Notes and sources", ""]
    for j in notes:
        parts = [p.strip().rstrip(".") for p in (j.claim.note, j.reason, j.effect.method,
                                                  f"source: {j.source}" if j.source else "")
                 if p.strip()]
        lines.append(f"- `{j.claim.id}`: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("id", "group", "source", "table", "metric", "relative_to", "a", "b", "effect",
              "direction", "unit", "estimate", "low", "high", "boot_low", "boot_high",
              "p_value", "q_value", "n_a", "n_b", "method", "paper", "verdict", "seeds_needed",
              "reason", "data_source")


def csv_text(judgements: list[Judgement], header: list[str]) -> str:
    """``claims.csv``: one line per claim, unrounded (fields :data:`CSV_FIELDS`)."""
    buffer = io.StringIO()
    buffer.write("".join(f"# {h}\n" for h in header))
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for j in judgements:
        c, e = j.claim, j.effect
        writer.writerow([c.id, c.group, c.source, c.table or "", j.metric or c.metric or "",
                         c.relative_to or "", c.a or "", c.b or "", c.effect, c.direction,
                         j.unit,
                         *["" if v is None else repr(float(v)) for v in
                           (e.estimate, e.low, e.high, e.boot_low, e.boot_high, e.p_value,
                            j.q_value)],
                         e.n_a, e.n_b, e.method, "" if j.paper is None else j.paper, j.verdict,
                         "" if j.seeds_needed is None else j.seeds_needed, j.reason, j.source])
    return buffer.getvalue()


def readme_block(judgements: list[Judgement], scale: str,
                 tables: dict[str, TableCells] | None = None) -> str:
    """The generated verdict block of ``results/README.md`` (between the markers)."""
    sources = [t.source for t in (tables or {}).values()]
    from_runs = sum("run records" in s for s in sources)
    data = (f"run records ({from_runs} of {len(sources)} tables; the others from their "
            "committed CSV)" if from_runs else
            "the committed tables (no run records here: means, stds and n, so Welch intervals "
            "without pairing or bootstrap)")
    lines = [BEGIN, "",
             f"Generated by `make claims SCALE={scale}` from `results/claims.yaml` and {data}; "
             f"details, rules and sources in [`{scale}/claims.md`]({scale}/claims.md), "
             f"the forest plot in [`{scale}/claims.png`]({scale}/claims.png). Ours: effect "
             "with its 95% t-interval over seeds; accuracy in percentage points.", "",
             "| Group | Claim | Paper says | Ours (95% CI) | Paper | Verdict |",
             "|---|---|---|---|---|---|"]
    for j in judgements:
        mark = " ‡" if j.maybe_chance else ""
        lines.append(f"| {j.claim.group} | `{j.claim.id}` | “{j.claim.quote}” | {ours_text(j)} "
                     f"| {_paper_text(j)} | **{j.verdict}**{mark} |")
    lines += ["", chance_note(judgements), "", END]
    return "\n".join(lines)


def replace_block(text: str, block: str, path: Path | str = README) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` (markers included)
    replaced by ``block``.

    Raises:
        ClaimsError: if the markers are missing, repeated or out of order.
    """
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start or text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ClaimsError(f"{path}: needs exactly one {BEGIN!r} followed by one {END!r}")
    return text[:start] + block + text[stop + len(END):]


def header_lines(scale: str, tables: dict[str, TableCells], command: str) -> list[str]:
    """Scale, commit, command and where each table's numbers came from. The commit is the last
    one that changed the audit's code or its inputs other than the runs (:data:`CLAIMS_CODE`),
    so the same records give the same bytes in every later commit."""
    state = commit_text(git_commit(ROOT, CLAIMS_CODE))
    sources = "; ".join(f"{name}: {t.source}" for name, t in tables.items()) or "none"
    return [f"- Scale: `{scale}`; commit `{state}`; command `{command}`",
            f"- Data: {sources}"]


def audit(scale: str, run_dirs: Sequence[str | Path], out: Path,
          claims_path: Path = CLAIMS_FILE, paper_path: Path = PAPER_REFERENCE,
          readme: Path | None = README, command: str = "python -m midl.claims"
          ) -> tuple[list[Judgement], list[Path]]:
    """Judge every claim at ``scale`` and write the outputs (module docstring).

    Raises:
        ClaimsError: for a malformed claims file or README block; ScaleError: unknown scale.
    """
    from midl.reporting.claims_plots import cifar10_tables, plot_bars, plot_forest

    scale_settings(scale)  # an unknown scale fails here, before anything is read
    claims = load_claims(claims_path)
    paper = yaml.safe_load(Path(paper_path).read_text())
    dirs = [d for d in run_dirs if Path(d).is_dir()]
    runs = collect_runs(dirs) if dirs else []
    names = list(dict.fromkeys([c.table for c in claims if c.table] + cifar10_tables()))
    tables = load_tables(names, runs, scale, out, paper)
    judgements = [judge(c, tables, scale) for c in claims]
    adjust_for_multiplicity(judgements)
    header = header_lines(scale, tables, command)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m midl.claims",
                                     description="Judge the paper's claims on our runs.")
    parser.add_argument("--scale", required=True, help="smoke | cpu | paper")
    parser.add_argument("--runs", nargs="*", default=None,
                        help="folders of run records (default: outputs/grid_*/multirun and "
                             "results/runs/<scale>); missing ones are skipped")
    parser.add_argument("--out", default=str(ROOT / "results"), help="results root")
    parser.add_argument("--claims", default=str(CLAIMS_FILE))
    parser.add_argument("--readme", default=str(README),
                        help="README whose marked block is rewritten; 'none' to skip")
    args = parser.parse_args(argv)
    runs = args.runs
    if runs is None:
        runs = [*sorted((ROOT / "outputs").glob("grid_*/multirun")),
                ROOT / "results" / "runs" / args.scale]
    command = "python -m midl.claims " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        judgements, written = audit(args.scale, runs, Path(args.out), Path(args.claims),
                                    readme=None if args.readme == "none" else Path(args.readme),
                                    command=command)
    except (ClaimsError, ScaleError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for j in judgements:
        print(f"{j.claim.id:28s} {j.verdict:24s} {ours_text(j)}")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
