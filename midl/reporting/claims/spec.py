"""The claims file (``results/claims.yaml``): :class:`Claim`, :func:`load_claims` and its checks
against the tables' rows and columns (:data:`SPECS`). Rules: ``midl/claims.py``'s docstring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from midl.reporting.effects import DIRECTIONS, KINDS
from midl.reporting.runs import Run
from midl.reporting.tables import TABLES, Column, Extractor, Row, TableSpec

ROOT = Path(__file__).resolve().parents[3]
CLAIMS_FILE = ROOT / "results" / "claims.yaml"
PAPER_REFERENCE = ROOT / "results" / "paper_reference.yaml"

EFFECTS = ("difference", "one_sample", "ratio", "analytic")
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
    margin: float | None = None
    margin_reason: str = ""
    kind: str = "superiority"
    repeats: str | None = None

    @property
    def neutral(self) -> float:
        """The effect's no-effect value: 1 for a ratio, else 0."""
        return 1.0 if self.effect == "ratio" else 0.0

    def compared(self, metric: str) -> str:
        """The compared quantity's label: ``metric``, or ``(metric − relative_to)``."""
        return metric if self.relative_to is None else f"({metric} − {self.relative_to})"

    @property
    def exact(self) -> bool:
        """Whether the claim is declared exact (``deterministic`` or ``analytic``); a
        deterministic metric whose seeds differ is still judged with statistics."""
        return self.deterministic or self.effect == "analytic"

    @property
    def needs_margin(self) -> bool:
        """Every claim needs a margin except an analytic one (a value computed from the
        configs, judged against the paper's printed digits) and one not testable at any
        scale (nothing to judge)."""
        blocked_everywhere = bool(self.not_testable) and not self.not_testable.get("scales")
        return self.effect != "analytic" and not blocked_everywhere



def find_row(spec: TableSpec, name: str) -> Row:
    """The row of ``spec`` a claim names by ``name``: the row with that label, else the one row
    with that block.

    Raises:
        ClaimsError: no row has that label and no single row has that block (the message
            lists the table's rows).
    """
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
        _check_claim(claim, seen)
        claims.append(claim)
    if not claims:
        raise ClaimsError(f"{path}: no claims (expected a list under `claims:`)")
    return claims


def _check_claim(claim: Claim, earlier: set[str]) -> None:
    """Check one claim's values: effect, direction, kind, margin, ``repeats`` (one of the
    ``earlier`` ids), and its analytic quantity or table cells (:func:`check_cells`).

    Raises:
        ClaimsError: naming the claim, the bad value and what is allowed.
    """
    name = claim.id
    if claim.effect not in EFFECTS:
        raise ClaimsError(f"claim {name}: effect {claim.effect!r}; allowed: {EFFECTS}")
    if claim.direction not in DIRECTIONS:
        raise ClaimsError(f"claim {name}: direction {claim.direction!r}; allowed: "
                          f"{DIRECTIONS}")
    if claim.kind not in KINDS:
        raise ClaimsError(f"claim {name}: kind {claim.kind!r}; allowed: {KINDS}")
    if claim.needs_margin and claim.margin is None:
        raise ClaimsError(f"claim {name}: no `margin` (the smallest effect of interest, "
                          "fixed before judging, with its `margin_reason`)")
    if claim.margin is not None and (not isinstance(claim.margin, (int, float))
                                     or claim.margin <= 0 or not claim.margin_reason):
        raise ClaimsError(f"claim {name}: margin {claim.margin!r} must be a number > 0 "
                          "with a `margin_reason`")
    if claim.repeats is not None and claim.repeats not in earlier:
        raise ClaimsError(f"claim {name}: repeats {claim.repeats!r}, which is not a claim "
                          "listed before it")
    if claim.effect == "analytic":
        if claim.analytic not in ANALYTIC:
            raise ClaimsError(f"claim {name}: analytic {claim.analytic!r}; allowed: "
                              f"{ANALYTIC}")
    else:
        check_cells(claim)


def check_cells(claim: Claim) -> None:
    """Check that every table, column and row ``claim`` names exists (``a``, and ``b`` for a
    paired or two-sample effect) and that ``relative_to`` is used only with an effect it fits.

    Raises:
        ClaimsError: naming the claim, the bad value and what is allowed.
    """
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
    find_row(spec, claim.a)
    if claim.effect == "one_sample":
        return
    if claim.b is None:
        raise ClaimsError(f"claim {claim.id}: effect {claim.effect} needs `b`")
    find_row(spec, claim.b)

