"""Judging one claim: its effect over seeds (paired or Welch t, bootstrap; ratios on logs), the
paper's effect with the band of its printed digits, the verdict by the fixed rules against the
claim's margin, and the Benjamini-Hochberg q-values of the decisions over the distinct claims
(the rules: ``midl/claims.py``'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml
from scipy import stats

from midl.metrics.interleaved import FILE, arm_ratios, ratio_effect
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
    DECIDED,
    Effect,
    decide,
    half_unit,
    one_sample_effect,
    paired_effect,
    printed_band,
    seeds_for_power,
    welch_effect,
    welch_from_summary,
)
from midl.reporting.tables import Row, TableSpec
from midl.runs.provenance import commit_text

FDR = 0.05  # family-wise error rate of the headline (Holm) and the BH q-value's threshold


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979; family-wise error): the i-th smallest
    p times (M - i + 1), made non-decreasing in that order, capped at 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out, running, m = [0.0] * len(p_values), 0.0, len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


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
    q_value: float | None = None  # Benjamini-Hochberg over the distinct claims' decisions
    holm_p: float | None = None  # Holm over the same: the headline's adjustment
    decision_p: float | None = None  # the p-value of the test that reached the verdict
    band: tuple[float, float] | None = None  # the paper's effect as its printed digits allow
    note: str = ""  # where two rules applied (rules, "Where two apply")
    below_target: str = ""  # compared settings whose baseline misses its accuracy target

    @property
    def exact(self) -> bool:
        """Judged as a point: declared exact with identical seeds, or no spread seen."""
        return self.effect.estimate is not None and self.effect.se == 0

    @property
    def adjusted(self) -> str:
        """The headline verdict: a decision whose Holm-adjusted p is not below :data:`FDR`
        reads *inconclusive*; exact values and other verdicts are unchanged."""
        if (self.verdict in DECIDED and self.decision_p is not None
                and (self.holm_p is None or self.holm_p >= FDR)):
            return "inconclusive"
        return self.verdict

    @property
    def summaries_without_spread(self) -> bool:
        """At least 2 values per arm but no spread: a change between two columns of committed
        table summaries (``relative_to`` without per-seed values)."""
        return not self.effect.spread and self.effect.n_a >= 2 and self.effect.n_b >= 2

    @property
    def maybe_chance(self) -> bool:
        """A decision reached by a test whose Holm-adjusted p is at least :data:`FDR` (its
        headline verdict is *inconclusive*)."""
        return self.adjusted != self.verdict


def adjust_for_multiplicity(judgements: Sequence[Judgement]) -> int:
    """Set each judgement's ``holm_p`` (Holm, the headline's) and ``q_value``
    (Benjamini-Hochberg): its decision's p-value (``decision_p``) adjusted over the distinct
    claims with one (a claim with ``repeats`` is left out, and takes its original's values
    where its decision's p is the same); module docstring, "Many claims at once".

    Args:
        judgements: all judgements of one audit; changed in place (others keep ``None``).

    Returns:
        M, the number of p-values adjusted together.
    """
    tested = [j for j in judgements if j.claim.repeats is None
              and j.decision_p is not None and math.isfinite(j.decision_p)]
    if tested:
        ps = [float(j.decision_p) for j in tested]  # type: ignore[arg-type]
        q = stats.false_discovery_control(ps, method="bh")
        for j, value, h in zip(tested, q, holm(ps), strict=True):
            j.q_value, j.holm_p = float(value), h
    by_id = {j.claim.id: j for j in judgements}
    for j in judgements:
        original = by_id.get(str(j.claim.repeats))
        if (j.claim.repeats is not None and original is not None
                and j.decision_p is not None and original.decision_p == j.decision_p):
            j.q_value, j.holm_p = original.q_value, original.holm_p
    return len(tested)


def distinct(judgements: Sequence[Judgement]) -> list[Judgement]:
    """The judgements of claims that repeat no other (the tallies count these)."""
    return [j for j in judgements if j.claim.repeats is None]


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


def judge(claim: Claim, tables: dict[str, TableCells], scale: str,
          sessions: Mapping[str, Any] | None = None) -> Judgement:
    """Apply the module docstring's statistics and rules to one claim.

    Args:
        claim: the claim.
        tables: the cells of every table the claims name (:func:`load_tables`).
        scale: the scale judged.
        sessions: the scale's interleaved latency sessions
            (:func:`midl.metrics.interleaved.load_sessions`) or None; a CPU latency ratio
            whose table and arms they hold is judged on them (:func:`_session_effect`).
    """
    blocked = claim.not_testable
    if blocked and scale in (blocked.get("scales") or [scale]):
        return Judgement(claim, "not testable here", reason=str(blocked.get("reason", "")))
    if claim.effect == "analytic":
        return _judge_analytic(claim)
    spec = SPECS[str(claim.table)]
    metric = str(claim.metric)
    a, b, ra, rb, used = _arms(claim, tables, metric)
    column = next(c for c in spec.columns if c.key == used)
    unit = {"%": "pts", "": ""}.get(column.unit, column.unit)
    if claim.effect == "ratio":
        unit = "x"
    digits = column.digits + 1
    table = tables.get(spec.name)
    source = "" if table is None else table.source
    if used != metric:
        source += f"; {used} (no {metric} recorded)"
    paper, band = claim.paper_effect, None
    if paper is not None:
        band = printed_band(paper)
    else:
        paper, band = _paper_effect(claim, tables, spec)
    out = Judgement(claim, "no data", paper=paper, unit=unit, digits=digits, source=source,
                    metric=used, band=band)
    interleaved = _session_effect(claim, sessions)
    if interleaved is not None:
        out.effect, out.source = interleaved
        _decide(out)
        return out
    cells = [c for c in (a, b) if c is not None]
    if any(c.na for c in cells):
        out.verdict, out.reason = "not testable here", next(c.na for c in cells if c.na)
        return out
    if a is None or a.n == 0 or (rb is not None and (b is None or b.n == 0)):
        missing = claim.a if a is None or a.n == 0 else claim.b
        out.reason = f"no {claim.compared(used)} value for {missing}"
        return out
    machines = sorted(frozenset().union(*(c.machines for c in cells)))
    if len(machines) > 1:  # milliseconds of two machines do not compare
        out.reason = (f"{claim.compared(used)} values measured on {len(machines)} machines "
                      f"({'; '.join(machines)}), which do not compare: time both arms on one "
                      "machine (make latency)")
        return out
    out.effect = _effect(claim, a, b, spec, used, ra, rb)
    _decide(out)
    return out


def _judge_analytic(claim: Claim) -> Judgement:
    """An analytic claim: its exact value (:func:`analytic_value`) against the paper's
    printed digits."""
    value, how = analytic_value(str(claim.analytic))
    effect = Effect(value, value, value, method="analytic (exact)", se=0.0)
    out = Judgement(claim, "", effect, claim.paper_effect, claim.unit or "", 1, how)
    if claim.paper_effect is not None:
        out.band = printed_band(claim.paper_effect)
    _decide(out)
    return out


def _arms(claim: Claim, tables: dict[str, TableCells], metric: str
          ) -> tuple[Cell | None, Cell | None, Row, Row | None, str]:
    """The claim's cells ``a`` and ``b`` (None for a one-sample claim) with their rows, and the
    metric they hold: ``metric``, or the claim's ``fallback_metric`` where an arm has no
    ``metric`` values and both have the fallback's.

    Returns:
        ``(a, b, row_a, row_b, metric_used)``.
    """
    a, ra = _arm(tables, claim, str(claim.a), metric)
    b, rb = (None, None) if claim.effect == "one_sample" else _arm(tables, claim, str(claim.b),
                                                                   metric)
    if claim.fallback_metric and (a is None or a.n == 0 or (b is not None and b.n == 0)):
        fa, _ = _arm(tables, claim, str(claim.a), claim.fallback_metric)
        fb = None if rb is None else _arm(tables, claim, str(claim.b), claim.fallback_metric)[0]
        if fa is not None and fa.n and (rb is None or (fb is not None and fb.n)):
            return fa, fb, ra, rb, claim.fallback_metric
    return a, b, ra, rb, metric


def _session_effect(claim: Claim, sessions: Mapping[str, Any] | None
                    ) -> tuple[Effect, str] | None:
    """A CPU latency ratio from interleaved sessions: the geometric mean of the per-session
    ratios of the arms' medians with its t-interval over sessions
    (:func:`midl.metrics.interleaved.arm_ratios`, :func:`~midl.metrics.interleaved.ratio_effect`)
    and its source; None unless ``sessions`` time both arms of the claim's table."""
    if (sessions is None or claim.effect != "ratio" or claim.metric != "latency_cpu"
            or claim.b is None):
        return None
    record = sessions.get("tables", {}).get(str(claim.table))
    if record is None:
        return None
    spec = SPECS[str(claim.table)]
    a, b = find_row(spec, str(claim.a)).block, find_row(spec, str(claim.b)).block
    try:
        ratios = arm_ratios(record, a, b)
    except KeyError:
        return None
    n_seeds = len({m.split("/", 1)[1] for m in record["models"]})
    source = (f"{FILE}: {len(ratios)} interleaved sessions x {n_seeds} seeds at batch "
              f"{record['batch_size']} ({commit_text(record.get('commit'))}, "
              f"{record.get('date')})")
    return ratio_effect(ratios), source


def _additive(j: Judgement, value: float | None) -> float | None:
    """A value on the scale the verdict is judged on: the effect itself, or its log for a
    ratio (so that ``x`` and ``1/x`` are equally far from no effect)."""
    if value is None:
        return None
    if j.claim.effect != "ratio":
        return value
    return math.log(value) if value > 0 else -math.inf


def _decide(out: Judgement) -> None:
    """Set the verdict, its decision p-value and note, and (inconclusive) the seeds per arm
    that would decide it (module docstring, rules)."""
    claim, e = out.claim, out.effect
    margin = claim.margin
    if margin is not None and claim.effect == "ratio":
        margin = math.log(1 + margin)  # +-10% of a ratio: log(1.1) on the log scale
    band = (None if out.band is None else
            tuple(sorted(_additive(out, v) for v in out.band)))  # type: ignore[misc]
    decision = decide(claim.direction, _additive(out, e.estimate), e.se, e.df,
                      _additive(out, out.paper), margin, claim.kind, band)
    out.verdict, out.decision_p, out.note = decision.verdict, decision.p, decision.note
    if out.verdict != "inconclusive":
        return
    if out.summaries_without_spread:
        out.reason = "a change from table summaries (no per-seed values): no spread known"
    elif not e.spread:
        out.reason = "fewer than 2 values per arm: no spread known"
    elif margin is not None:
        s = -1.0 if claim.direction == "lower" else 1.0
        r = _additive(out, out.paper)
        r = None if r is None else s * r
        if claim.kind == "noninferiority":  # show lo > -margin when the truth is 0
            out.seeds_needed = seeds_for_power(e.spread, margin, e.n_a, one_sided=True)
        else:  # exclude 0 when the truth is the paper's effect (or the margin)
            delta = r if r is not None and r > margin else margin
            out.seeds_needed = seeds_for_power(e.spread, delta, e.n_a)


def _paper_effect(claim: Claim, tables: dict[str, TableCells], spec: TableSpec
                  ) -> tuple[float | None, tuple[float, float] | None]:
    """The paper's effect from its cells and the band its printed digits allow (each printed
    number +- half a unit of its last digit: a difference of two numbers +- two half-units,
    of two changes four; a ratio from the extremes of both bands)."""
    metric = claim.paper_metric or str(claim.metric)
    pa, _ = _arm(tables, claim, str(claim.a), metric)
    if pa is None or pa.paper is None:
        return None, None
    rows = [str(claim.a)] if claim.effect == "one_sample" else [str(claim.a), str(claim.b)]
    raw = [_raw_paper(tables, claim, row, col) for row in rows
           for col in (metric, claim.relative_to) if col is not None]
    half = sum(half_unit(v) for v in raw if v is not None)  # each printed number's rounding
    if claim.effect == "one_sample":
        return pa.paper, printed_band(pa.paper, half=half)
    pb, _ = _arm(tables, claim, str(claim.b), metric)
    if pb is None or pb.paper is None:
        return None, None
    if claim.effect == "ratio":
        (al, ah), (bl, bh) = printed_band(pa.paper), printed_band(pb.paper)
        return pa.paper / pb.paper, (al / bh, ah / bl) if bl > 0 else None
    value = pa.paper - pb.paper
    return value, printed_band(value, half=half)


def _raw_paper(tables: dict[str, TableCells], claim: Claim, row_name: str, metric: str
               ) -> float | None:
    """The paper's number of one cell as printed (no change from another column)."""
    table = tables.get(str(claim.table))
    if table is None:
        return None
    cell = table.cells.get((find_row(SPECS[str(claim.table)], row_name).label, metric))
    return None if cell is None else cell.paper


def _effect(claim: Claim, a: Cell, b: Cell | None, spec: TableSpec, metric: str, ra: Row,
            rb: Row | None) -> Effect:
    spread = max(a.sd or 0.0, (b.sd or 0.0) if b is not None else 0.0)
    if claim.exact and spread == 0:
        value = (a.mean / b.mean if claim.effect == "ratio"
                 else a.mean - (b.mean if b is not None else 0.0))
        return Effect(value, value, value, n_a=a.n, n_b=0 if b is None else b.n, se=0.0,
                      method="deterministic (identical in every seed)")
    prefix = (f"deterministic, but seeds differ (max std {spread:.3g}): judged with "
              "statistics; " if claim.exact else "")
    if claim.effect == "ratio":
        if b is None or a.values is None or b.values is None:
            return Effect(None if a.mean is None or b is None or not b.mean
                          else a.mean / b.mean, n_a=a.n, n_b=0 if b is None else b.n,
                          method=prefix + "ratio of table summaries (no per-seed values)")
        logs = Cell(values={k: math.log(v) for k, v in a.values.items() if v > 0})
        logs_b = Cell(values={k: math.log(v) for k, v in b.values.items() if v > 0})
        e = _effect_of_values(logs, logs_b, spec, metric, ra, rb)
        for name in ("estimate", "low", "high", "boot_low", "boot_high"):
            value = getattr(e, name)
            setattr(e, name, None if value is None else math.exp(value))
        e.log, e.method = True, prefix + e.method + " on logs (geometric-mean ratio)"
        return e
    e = _effect_of_values(a, b, spec, metric, ra, rb)
    e.method = prefix + e.method
    return e


def _effect_of_values(a: Cell, b: Cell | None, spec: TableSpec, metric: str, ra: Row,
                      rb: Row | None) -> Effect:
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

