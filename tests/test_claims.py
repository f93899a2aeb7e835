"""The claims audit: verdict rules on synthetic records with known effects, the
statistics against scipy.stats, the claims file, the README block and the layering."""

from __future__ import annotations

import ast
import csv
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from midl import claims as audit
from midl.claims import Cell, Claim, TableCells, judge
from midl.reporting import effects
from midl.reporting.effects import verdict
from midl.reporting.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent
NOISE20 = TABLES["table3"]  # rows dropout / midl of one setting: paired by seed


def records(mean: float, sd: float, n: int, seed: int) -> dict[int, float]:
    """Per-seed values of one arm: ``mean`` plus seeded Gaussian noise of std ``sd``."""
    rng = np.random.default_rng(seed)
    return {s: float(mean + sd * rng.standard_normal()) for s in range(n)}


def claim(direction: str = "higher", **kwargs) -> Claim:
    fields = {"id": "synthetic", "group": "Table 3", "source": "test", "quote": "q",
              "direction": direction, "table": "table3", "metric": "noise20", "a": "midl",
              "b": "dropout", **kwargs}
    return Claim(**fields)


def tables(a: dict[int, float], b: dict[int, float], paper_a: float, paper_b: float,
           spec=NOISE20) -> dict[str, TableCells]:
    labels = {r.block: r.label for r in spec.rows}
    cells = {(labels["midl"], "noise20"): Cell(values=a, paper=paper_a),
             (labels["dropout"], "noise20"): Cell(values=b, paper=paper_b)}
    return {spec.name: TableCells(spec, "synthetic records", cells)}


def judged(effect: float, sd: float, n: int, paper_effect: float, direction: str = "higher"):
    base = records(40.0, 2.0, n, seed=1)
    noise = records(0.0, sd, n, seed=2)
    a = {s: base[s] + effect + noise[s] for s in base}  # paired: shared seed effect
    return judge(claim(direction), tables(a, base, 40.0 + paper_effect, 40.0), "cpu")


# ------------------------------------------------------------------------ the verdict rules
def test_true_effect_with_small_spread_is_held():
    j = judged(effect=5.0, sd=0.5, n=5, paper_effect=5.0)
    assert j.verdict == "held", audit.ours_text(j)
    assert j.effect.method.startswith("paired t")
    assert j.effect.low > 0 and j.effect.low <= 5.0 <= j.effect.high


def test_no_effect_with_many_seeds_is_not_found():
    j = judged(effect=0.0, sd=1.0, n=200, paper_effect=5.0)
    assert j.verdict == "not found", audit.ours_text(j)
    assert j.effect.low < 0 < j.effect.high < 5.0


def test_no_effect_with_two_seeds_is_inconclusive_and_says_how_many_would_resolve():
    j = judged(effect=0.0, sd=3.0, n=2, paper_effect=5.0)
    assert j.verdict == "inconclusive", audit.ours_text(j)
    assert j.seeds_needed is not None and j.seeds_needed > 2
    # at the observed spread, that many seeds give an interval narrower than the effect
    spread = j.effect.spread
    assert 2 * effects.half_width(spread, j.seeds_needed) < 5.0
    assert 2 * effects.half_width(spread, j.seeds_needed - 1) >= 5.0


def test_negative_effect_is_opposite():
    j = judged(effect=-5.0, sd=0.5, n=5, paper_effect=5.0)
    assert j.verdict == "opposite", audit.ours_text(j)


def test_smaller_effect_than_the_paper_is_weaker_than_claimed():
    j = judged(effect=2.0, sd=0.3, n=10, paper_effect=12.0)
    assert j.verdict == "weaker than claimed", audit.ours_text(j)


def test_lower_is_better_claims_flip_the_sign():
    j = judged(effect=-3.0, sd=0.3, n=5, paper_effect=-3.0, direction="lower")
    assert j.verdict == "held"
    assert judged(effect=3.0, sd=0.3, n=5, paper_effect=-3.0, direction="lower").verdict == (
        "opposite")


@pytest.mark.parametrize(("low", "high", "paper", "expected"), [
    (1.0, 3.0, 2.0, "held"), (1.0, 3.0, 0.5, "held"), (1.0, 3.0, 5.0, "weaker than claimed"),
    (-1.0, 3.0, 2.0, "inconclusive"), (-1.0, 1.0, 2.0, "not found"),
    (-3.0, -1.0, 2.0, "opposite"), (-1.0, 1.0, None, "inconclusive"), (None, None, 2.0,
                                                                       "inconclusive")])
def test_rules_on_intervals(low, high, paper, expected):
    assert verdict("higher", low, high, paper) == expected


def test_exact_values_and_checks_of_our_own():
    assert verdict("higher", 0.98, 0.98, 1.7, neutral=1.0, exact=True) == "opposite"
    assert verdict("higher", 1.69, 1.69, 1.7, neutral=1.0, exact=True) == "held"  # rounding
    assert verdict("higher", 50.0, 50.0, 55.0, exact=True) == "weaker than claimed"
    assert verdict("either", 0.5, 1.0, None) == "differs (a > b)"
    assert verdict("either", -0.5, 1.0, None) == "no difference detected"
    with pytest.raises(ValueError, match="direction must be one of"):
        verdict("up", 0.0, 1.0, None)


# ------------------------------------------------------------------------------ statistics
def test_paired_and_welch_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 6), rng.normal(0.0, 2.0, 6)
    paired = effects.paired_effect(a, b)
    ci = stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ci.low, ci.high))
    assert paired.boot_low < paired.estimate < paired.boot_high
    welch = effects.welch_effect(a, b)
    test = stats.ttest_ind(a, b, equal_var=False)
    assert (welch.low, welch.high) == pytest.approx(tuple(test.confidence_interval(0.95)))
    assert welch.p_value == pytest.approx(test.pvalue)
    summary = effects.welch_from_summary(a.mean(), a.std(ddof=1), 6, b.mean(), b.std(ddof=1), 6)
    assert (summary.low, summary.high, summary.p_value) == pytest.approx(
        (welch.low, welch.high, welch.p_value))
    assert summary.boot_low is None  # no per-seed values: no bootstrap


def test_q_values_are_benjamini_hochberg_and_mark_only_unadjusted_differences():
    p_values = [0.001, 0.04, 0.3, 0.8]
    verdicts = ["held", "opposite", "not found", "inconclusive"]
    judgements = [audit.Judgement(claim(id=f"c{i}"), v, effects.Effect(1.0, 0.1, 2.0,
                                                                       p_value=p, n_a=5))
                  for i, (p, v) in enumerate(zip(p_values, verdicts, strict=True))]
    exact = audit.Judgement(claim(id="exact", deterministic=True), "opposite",
                            effects.Effect(-1.0, -1.0, -1.0))
    assert audit.adjust_for_multiplicity([*judgements, exact]) == 4
    # independent Benjamini-Hochberg: q_(i) = min over j >= i of p_(j) * M / j
    m, order = len(p_values), np.argsort(p_values)
    expected, running = [0.0] * m, 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        expected[i] = running
    assert [j.q_value for j in judgements] == pytest.approx(expected)
    assert expected[1] > audit.FDR > p_values[1]  # significant alone, not among four tests
    assert [j.maybe_chance for j in judgements] == [False, True, False, False]
    assert exact.q_value is None and not exact.maybe_chance
    md = audit.markdown([*judgements, exact], [])
    assert "adjusted for the 4 claims" in md
    rows = {line.split("|")[1].strip(" `"): line for line in md.splitlines()
            if line.startswith("| `")}
    assert "**opposite** ‡" in rows["c1"] and "‡" not in rows["c0"] + rows["exact"]
    block = audit.readme_block([*judgements, exact], "cpu")
    assert block.count("‡") == 2 and "adjusted for the 4 claims" in block  # c1 + legend
    csv_rows = audit.csv_text([*judgements, exact], []).splitlines()
    q_column = csv_rows[0].split(",").index("q_value")
    assert float(csv_rows[2].split(",")[q_column]) == pytest.approx(expected[1])


def test_relative_to_compares_each_arms_change_per_seed():
    """"Degrades more slowly": (noise - clean) per seed, MID-L's minus Dropout's, paired."""
    spec = TABLES["table3"]
    labels = {r.block: r.label for r in spec.rows}
    clean_a, clean_b = records(86.0, 1.0, 5, 10), records(85.0, 1.0, 5, 11)
    lost_a, lost_b = records(-10.0, 0.3, 5, 12), records(-20.0, 0.3, 5, 13)
    cells = {(labels["midl"], "clean"): Cell(values=clean_a, paper=86.4),
             (labels["dropout"], "clean"): Cell(values=clean_b, paper=85.3),
             (labels["midl"], "noise40"): Cell(values={s: clean_a[s] + lost_a[s]
                                                       for s in clean_a}, paper=55.8),
             (labels["dropout"], "noise40"): Cell(values={s: clean_b[s] + lost_b[s]
                                                          for s in clean_b}, paper=43.7)}
    table = {"table3": TableCells(spec, "synthetic", cells)}
    j = judge(claim(metric="noise40", relative_to="clean"), table, "cpu")
    change = [lost_a[s] - lost_b[s] for s in range(5)]
    ci = stats.ttest_1samp(change, 0.0).confidence_interval(0.95)
    assert j.effect.method.startswith("paired t")
    assert (j.effect.estimate, j.effect.low, j.effect.high) == pytest.approx(
        (np.mean(change), ci.low, ci.high))
    assert j.paper == pytest.approx((55.8 - 86.4) - (43.7 - 85.3))  # +11.0 points
    assert j.verdict == "weaker than claimed"  # +10 +- ~0.5 excludes 0 and the paper's +11
    # the level alone (MID-L's clean advantage of ~1 point included) is a different number
    level = judge(claim(metric="noise40"), table, "cpu")
    assert level.effect.estimate != pytest.approx(j.effect.estimate)
    assert "(noise40 − clean)" in audit.markdown([j], [])
    (row,) = csv.DictReader(io.StringIO(audit.csv_text([j], [])))
    assert (row["metric"], row["relative_to"]) == ("noise40", "clean")
    # a seed without its clean run is left out of that arm's changes
    cells[(labels["midl"], "clean")] = Cell(values={s: v for s, v in clean_a.items() if s < 4},
                                            paper=86.4)
    partial = judge(claim(metric="noise40", relative_to="clean"), table, "cpu")
    assert partial.effect.n_a == 4 and partial.effect.method.startswith("Welch")
    # from committed summaries: the change of the means, no spread, so no interval
    summary = {"table3": TableCells(spec, "csv", {
        key: Cell(mean=float(np.mean(list(c.values.values()))), sd=1.0, n=5, paper=c.paper)
        for key, c in cells.items()})}
    j = judge(claim(metric="noise40", relative_to="clean"), summary, "cpu")
    assert j.verdict == "inconclusive" and "table summaries" in j.reason
    assert f"`{j.claim.id}`: per-seed values (the run records" in audit.markdown([j], [])
    with pytest.raises(audit.ClaimsError, match="relative_to"):
        audit.check_cells(claim(metric="noise40", relative_to="clean", effect="one_sample"))
    with pytest.raises(audit.ClaimsError, match="no column 'cleen'"):
        audit.check_cells(claim(metric="noise40", relative_to="cleen"))


def test_a_claims_notes_line_joins_its_parts_without_double_punctuation():
    base = records(40.0, 2.0, 5, seed=1)
    j = judge(claim(note="The final weights. "), tables(base, base, 41.0, 40.0), "cpu")
    (line,) = [ln for ln in audit.markdown([j], []).splitlines()
               if ln.startswith(f"- `{j.claim.id}`: The final")]
    assert line == (f"- `{j.claim.id}`: The final weights; {j.effect.method.rstrip('.')}; "
                    f"source: {j.source}")


def test_arms_of_different_settings_are_not_paired():
    spec = TABLES["table2"]
    rows = [r.label for r in spec.rows if r.setting == "lowdata_cifar10_mlp"]
    other = next(r.label for r in spec.rows if r.setting == "lowdata_mnist_mlp")
    cells = {(rows[1], "acc"): Cell(values=records(50, 1, 5, 3), paper=70.0),
             (other, "acc"): Cell(values=records(40, 1, 5, 4), paper=60.0)}
    c = claim(group="Table 2", table="table2", metric="acc", a=rows[1], b=other)
    j = judge(c, {"table2": TableCells(spec, "synthetic", cells)}, "cpu")
    assert j.effect.method.startswith("Welch") and j.verdict == "held"


def test_missing_and_unmeasurable_arms():
    empty = tables({}, records(40, 1, 5, 0), 50.0, 40.0)
    assert judge(claim(), empty, "cpu").verdict == "no data"
    gpu = claim(table="table10", metric="latency_gpu", a="midl", b="dropout", direction="lower")
    spec = TABLES["table10"]
    cells = {(r.label, "latency_gpu"): Cell(values={}, na="n/a (no GPU)") for r in spec.rows}
    assert judge(gpu, {"table10": TableCells(spec, "x", cells)}, "cpu").verdict == (
        "not testable here")
    marked = claim(not_testable={"reason": "fixture", "scales": ["cpu"]})
    assert judge(marked, {}, "cpu").verdict == "not testable here"
    assert judge(marked, {}, "paper").verdict == "no data"


def test_analytic_anr_reduction_follows_top_k():
    value, how = audit.analytic_value("anr_reduction")
    assert value == pytest.approx(50.0) and "top_k=0.5" in how


# ---------------------------------------------------------------------- files and layering
def test_the_claims_file_is_valid_and_covers_every_table():
    loaded = audit.load_claims()
    groups = {c.group for c in loaded}
    assert {f"Table {n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)} <= groups
    assert {"Abstract", "Figure 3"} <= groups


def test_bad_claims_are_refused_with_the_bad_value(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - {id: x, group: g, source: s, quote: q, direction: up}\n")
    with pytest.raises(audit.ClaimsError, match="direction 'up'"):
        audit.load_claims(path)
    path.write_text("claims:\n  - {id: x, group: g, source: s, quote: q, direction: higher,"
                    " table: table3, metric: acc, a: midl, b: dropout}\n")
    with pytest.raises(audit.ClaimsError, match="no column 'acc'"):
        audit.load_claims(path)


def test_readme_block_is_replaced_and_the_rest_kept():
    text = f"intro\n{audit.BEGIN}\nold verdicts\n{audit.END}\noutro\n"
    new = audit.replace_block(text, f"{audit.BEGIN}\nnew\n{audit.END}")
    assert new == f"intro\n{audit.BEGIN}\nnew\n{audit.END}\noutro\n"
    with pytest.raises(audit.ClaimsError, match="needs exactly one"):
        audit.replace_block("no markers", "x")


def test_audit_from_committed_tables_writes_every_output(tmp_path):
    results = tmp_path / "results"
    # the quick scale's committed tables: complete, made before run records existed
    shutil.copytree(ROOT / "results" / "quick", results / "quick",
                    ignore=shutil.ignore_patterns("*.png", "*.tex", "claims*"))
    readme = tmp_path / "README.md"
    readme.write_text(f"# keep\n{audit.BEGIN}\nhand-typed\n{audit.END}\n## keep too\n")
    judgements, written = audit.audit("quick", [], results, readme=readme, command="test")
    names = {p.name for p in written}
    assert {"claims.md", "claims.csv", "claims.png", "claims_table3.png",
            "README.md"} <= names
    text = readme.read_text()
    assert text.startswith("# keep\n") and text.endswith("## keep too\n")
    assert "hand-typed" not in text and "`t3_noise40`" in text
    by_id = {j.claim.id: j for j in judgements}
    assert by_id["t5_latency_gpu"].verdict == "not testable here"
    assert by_id["t3_noise40"].effect.method.startswith("Welch t (table summaries)")
    md = (results / "quick" / "claims.md").read_text()
    assert "## Inconclusive claims and what would resolve them" in md


def test_reporting_never_imports_the_entry_points():
    for path in (ROOT / "midl" / "reporting").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name not in ("midl.report", "midl.claims"), (path, name)
