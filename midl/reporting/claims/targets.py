"""Claims judged outside the paper's accuracy regime: where the baseline of a compared setting
misses the scale's accuracy target (:mod:`midl.reporting.targets`), the authors' first
objection ("you did not test our regime") applies to the verdict, so the claims page marks it.

Only claims whose compared values depend on training are marked: a column of the architecture
alone (FLOPs, latency, memory: :attr:`midl.reporting.columns.Extractor.of_model_only`) does not
change with how well the model trained. The verdict itself is unchanged: the mark says where
it was reached, not what it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from midl.reporting.claims.judge import Judgement
from midl.reporting.claims.spec import SPECS, Claim, find_row
from midl.reporting.runs import Run
from midl.reporting.scales import parse_seeds, scale_settings
from midl.reporting.targets import TargetCheck, check_targets


def trained_settings(claim: Claim) -> tuple[str, ...]:
    """The settings (``+experiment/setting`` names) of the rows ``claim`` compares, in the order
    a, b, where its compared columns (``metric``, ``relative_to``) depend on training; () for an
    analytic claim or one that compares only architecture-bound columns."""
    if claim.table is None or claim.effect == "analytic":
        return ()
    spec = SPECS[claim.table]
    columns = {c.key: c for c in spec.columns}
    compared = [columns[m] for m in (claim.metric, claim.relative_to) if m is not None]
    if all(c.value is None or c.value.of_model_only for c in compared):
        return ()
    rows = [find_row(spec, name) for name in (claim.a, claim.b) if name is not None]
    return tuple(dict.fromkeys(row.setting for row in rows))


def target_checks(claims: Sequence[Claim], runs: list[Run], scale: str) -> list[TargetCheck]:
    """The accuracy-target check of every setting the claims compare on trained values and
    that has a target at ``scale`` (``configs/scale/<scale>.yaml``'s ``targets``), from the
    baseline's counted runs among ``runs``; [] without runs (committed tables hold no seeds).

    Raises:
        ValueError: a target that is not a percentage (:func:`check_targets`).
    """
    if not runs:
        return []
    settings = scale_settings(scale)
    names = [s for c in claims for s in trained_settings(c)]
    return check_targets(names, settings.get("targets"), runs, parse_seeds(settings["seeds"]),
                         scale)


def mark_below_target(judgements: Sequence[Judgement], checks: Sequence[TargetCheck]) -> None:
    """Set :attr:`Judgement.below_target` of each judgement that compares a setting whose
    baseline misses its target (verdict ``not met`` or ``not met so far``), e.g.
    ``imdb_lstm: Dropout baseline 83.62% < 85.0% (n = 1 of 5)``."""
    missed = {c.setting: c for c in checks if c.missed}
    for j in judgements:
        texts = [_missed_text(missed[s]) for s in trained_settings(j.claim) if s in missed]
        j.below_target = "; ".join(texts)


def _missed_text(check: TargetCheck) -> str:
    return (f"{check.setting}: {check.baseline_name} baseline {check.mean:.2f}% < "
            f"{check.target:.1f}% (n = {len(check.values)} of {check.seeds_expected})")


__all__ = ["mark_below_target", "target_checks", "trained_settings"]
