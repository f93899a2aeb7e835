"""Judging one claim: its effect over seeds (paired or Welch t, bootstrap), the paper's effect,
the verdict by the fixed rules and the Benjamini-Hochberg q-values over the audit (the rules:
``midl/claims.py``'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import yaml
from scipy import stats

from midl.reporting.claims.cells import Cell, TableCells, change_from
from midl.reporting.claims.spec import (
    ANALYTIC,
    ROOT,
    SPECS,
    Claim,
    ClaimsError,
    find_row,
)
from midl.reporting.effects import (
    NONZERO_VERDICTS,
    Effect,
    one_sample_effect,
    paired_effect,
    seeds_needed,
    verdict,
    welch_effect,
    welch_from_summary,
)
from midl.reporting.tables import Row, TableSpec

FDR = 0.05  # false discovery rate below which a difference from zero is not marked


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
    row = find_row(spec, row_name)
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

