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
from midl.reporting.claims.cells import cells_from_csv
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
              "b": "dropout", "margin": 1.0, "margin_reason": "1 point", **kwargs}
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


def test_no_effect_with_many_seeds_is_absent():
    j = judged(effect=0.0, sd=1.0, n=200, paper_effect=5.0)
    assert j.verdict == "absent", audit.ours_text(j)
    assert j.decision_p is not None and j.decision_p < 0.05  # the TOST p-value


def test_no_effect_with_two_seeds_is_inconclusive_and_says_how_many_would_resolve():
    j = judged(effect=0.0, sd=3.0, n=2, paper_effect=5.0)
    assert j.verdict == "inconclusive", audit.ours_text(j)
    assert j.seeds_needed is not None and j.seeds_needed > 2
    # that many seeds give 80% power at the upper bound of the observed spread
    plan = effects._planning_spread(j.effect.spread, 2)
    assert plan[0] > j.effect.spread[0]
    assert effects.power(plan, j.seeds_needed, 5.0) >= 0.8 > effects.power(
        plan, j.seeds_needed - 1, 5.0)


def test_power_is_the_noncentral_t():
    # paired, sd 1, n 10, effect 1: ncp sqrt(10), df 9
    crit = stats.t.ppf(0.975, 9)
    expected = stats.nct.sf(crit, 9, np.sqrt(10)) + stats.nct.cdf(-crit, 9, np.sqrt(10))
    assert effects.power((1.0,), 10, 1.0) == pytest.approx(expected)


def test_negative_effect_is_opposite():
    j = judged(effect=-5.0, sd=0.5, n=5, paper_effect=5.0)
    assert j.verdict == "opposite", audit.ours_text(j)


def test_smaller_effect_than_the_paper_is_smaller_than_claimed():
    j = judged(effect=2.0, sd=0.3, n=10, paper_effect=12.0)
    assert j.verdict == "smaller than claimed", audit.ours_text(j)


def test_lower_is_better_claims_flip_the_sign():
    j = judged(effect=-3.0, sd=0.3, n=5, paper_effect=-3.0, direction="lower")
    assert j.verdict == "held"
    assert judged(effect=3.0, sd=0.3, n=5, paper_effect=-3.0, direction="lower").verdict == (
        "opposite")


def t_se(half95: float, df: float = 4.0) -> float:
    """The standard error whose 95% t half-width at ``df`` is ``half95``."""
    return half95 / stats.t.ppf(0.975, df)


@pytest.mark.parametrize(("estimate", "half", "paper", "margin", "expected"), [
    (2.0, 1.0, 2.0, 0.5, "held"), (2.0, 1.0, 0.5, 0.5, "held"),
    (2.0, 1.0, 5.0, 0.5, "smaller than claimed"), (1.0, 2.0, 2.0, 0.5, "inconclusive"),
    (0.0, 0.3, 2.0, 1.0, "absent"), (-2.0, 1.0, 2.0, 0.5, "opposite"),
    (0.0, 1.0, None, 0.5, "inconclusive"), (None, None, 2.0, 0.5, "inconclusive"),
    (0.3, 0.2, 2.0, 1.0, "absent")])  # differs from zero, yet inside the margin: absent
def test_rules_on_intervals(estimate, half, paper, margin, expected):
    se = None if half is None else t_se(half)
    assert verdict("higher", estimate, se, 4.0, paper, margin) == expected


def test_where_two_apply_absent_wins_and_says_so():
    d = effects.decide("higher", 0.3, t_se(0.2), 4.0, 2.0, 1.0)
    assert d.verdict == "absent" and "within the margin" in d.note


def test_exact_values_use_the_printed_digits_and_the_margin():
    band = effects.printed_band(1.7)
    assert band == pytest.approx((1.65, 1.75))
    log = np.log
    # 1.66x against a printed 1.7: within the band, held (a 2% tolerance would not allow it)
    assert verdict("higher", log(1.66), 0.0, None, log(1.7), log(1.1),
                   band=(log(1.65), log(1.75))) == "held"
    assert verdict("higher", log(1.6), 0.0, None, log(1.7), log(1.1),
                   band=(log(1.65), log(1.75))) == "smaller than claimed"
    assert verdict("higher", log(0.98), 0.0, None, log(1.7), log(1.1)) == "absent"
    assert verdict("higher", log(0.8), 0.0, None, log(1.7), log(1.1)) == "opposite"
    assert verdict("higher", 50.0, 0.0, None, 55.0, band=effects.printed_band(55)) == (
        "smaller than claimed")
    assert effects.printed_band(6.8, terms=2) == pytest.approx((6.7, 6.9))
    assert effects.half_unit(0.084) == pytest.approx(0.0005)
    assert verdict("either", 0.75, t_se(0.25), 4.0, margin=0.1) == "differs (a > b)"
    assert verdict("either", 0.0, t_se(0.05), 4.0, margin=0.1) == "absent"
    with pytest.raises(ValueError, match="direction must be one of"):
        verdict("up", 0.0, 1.0, 4.0)
    with pytest.raises(ValueError, match="margin must be > 0"):
        verdict("higher", 0.0, 1.0, 4.0, margin=0.0)
    with pytest.raises(ValueError, match="non-inferiority claim needs a margin"):
        verdict("higher", None, None, None, kind="noninferiority")  # before the data


def test_noninferiority():
    assert verdict("higher", -0.2, t_se(0.4), 4.0, margin=1.0,
                   kind="noninferiority") == "not worse"
    assert verdict("higher", -3.0, t_se(0.5), 4.0, margin=1.0,
                   kind="noninferiority") == "worse"
    assert verdict("higher", -0.8, t_se(1.0), 4.0, margin=1.0,
                   kind="noninferiority") == "inconclusive"


# ---------------------------------------------------- seeded simulations through the verdict
def simulate(effect: float, sd: float, n: int, paper: float, margin: float = 1.0,
             kind: str = "superiority", draws: int = 300, seed: int = 0) -> dict[str, float]:
    """Verdict frequencies of ``draws`` paired experiments: n seeds, per-seed differences
    N(effect, sd), through :func:`paired_effect` and :func:`decide`."""
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for _ in range(draws):
        diff = rng.normal(effect, sd, n)
        e = effects.one_sample_effect(diff)
        v = verdict("higher", e.estimate, e.se, e.df, paper, margin, kind)
        counts[v] = counts.get(v, 0) + 1
    return {k: c / draws for k, c in counts.items()}


CIFAR10_SD = 0.86  # the std of paired per-seed differences of our CIFAR-10 accuracies (pts)


def test_simulated_verdict_frequencies():
    assert simulate(5.0, 0.5, 5, paper=5.0).get("held", 0) >= 0.95
    assert simulate(0.0, 0.2, 5, paper=5.0).get("absent", 0) >= 0.95
    assert simulate(0.0, 20.0, 5, paper=5.0).get("inconclusive", 0) >= 0.90
    assert simulate(2.5, 0.5, 10, paper=5.0).get("smaller than claimed", 0) >= 0.90
    assert simulate(-5.0, 0.5, 5, paper=5.0).get("opposite", 0) >= 0.95
    assert simulate(0.0, CIFAR10_SD, 2, paper=5.0).get("absent", 0) == 0
    assert simulate(-0.2, 0.3, 5, paper=0.7, kind="noninferiority").get(
        "not worse", 0) >= 0.95


def test_half_the_papers_effect_at_our_cifar10_spread_is_never_called_absent():
    """The old "not found" called half the paper's effect absent 16% of the time; a margin
    well below the effect cannot (issue 28)."""
    assert simulate(0.5 * 4.2, 1.3, 5, paper=4.2).get("absent", 0) == 0


def test_zero_spread_and_deterministic_with_spread():
    base = {s: 40.0 for s in range(5)}
    same = {s: 40.0 + 5.6e-17 for s in range(5)}
    j = judge(claim(margin=1.0, margin_reason="r"), tables(same, base, 45.0, 40.0), "cpu")
    assert j.verdict == "absent" and j.exact and "no spread" in audit.ours_text(j)
    varying = records(42.0, 0.5, 5, seed=3)
    j = judge(claim(deterministic=True, margin=1.0, margin_reason="r"),
              tables(varying, base, 42.0, 40.0), "cpu")
    assert not j.exact and j.effect.p_value is not None
    assert j.effect.method.startswith("deterministic, but seeds differ")
    assert j.verdict == "held"


def test_latency_as_a_ratio_of_per_seed_medians():
    spec = TABLES["table10"]
    labels = [r.label for r in spec.rows]  # dropout, midl
    dropout = {0: 0.30, 1: 0.32, 2: 0.31, 3: 0.29, 4: 0.30}
    midl = {s: 0.6 * v * (1 + 0.01 * (s - 2)) for s, v in dropout.items()}
    cells = {(labels[0], "latency_cpu"): Cell(values=dropout, paper=41.3),
             (labels[1], "latency_cpu"): Cell(values=midl, paper=27.1)}
    c = claim(group="Table 10", table="table10", metric="latency_cpu", a="midl",
              b=labels[0], effect="ratio", direction="lower", margin=0.1, margin_reason="r")
    j = judge(c, {"table10": TableCells(spec, "hand-made", cells)}, "cpu")
    assert j.effect.estimate == pytest.approx(0.6, rel=1e-3) and j.effect.log
    assert j.paper == pytest.approx(27.1 / 41.3)
    assert j.band == pytest.approx((27.05 / 41.35, 27.15 / 41.25))
    assert j.verdict == "held"  # 0.60 is beyond the paper's 0.656
    assert audit.margin_text(j) == "±10%"


def test_latency_from_interleaved_sessions_replaces_the_per_run_medians():
    spec = TABLES["table10"]
    labels = [r.label for r in spec.rows]  # dropout, midl
    blocked = {0: 0.30, 1: 0.31}  # per-run medians, timed blocked by arm: MID-L looks 2x
    cells = {(labels[0], "latency_cpu"): Cell(values=blocked, paper=41.3),
             (labels[1], "latency_cpu"): Cell(values={0: 0.60, 1: 0.63}, paper=27.1)}
    c = claim(group="Table 10", table="table10", metric="latency_cpu", a="midl",
              b=labels[0], effect="ratio", direction="lower", margin=0.1, margin_reason="r")
    ratios = [1.01, 0.99, 1.0, 1.02, 0.98, 1.0]  # interleaved: the same cost, session by session
    sessions = {"tables": {"table10": {
                    "commit": {"hash": "a" * 40, "dirty": False}, "date": "2026-12-06",
                    "batch_size": 1, "models": ["dropout/seed=0", "midl/seed=0"],
                    "sessions": [{"order": ["dropout/seed=0", "midl/seed=0"],
                                  "median_ms": {"dropout/seed=0": 0.3,
                                                "midl/seed=0": 0.3 * r}} for r in ratios]}}}
    table = {"table10": TableCells(spec, "hand-made", cells)}
    assert judge(c, table, "cpu").effect.estimate == pytest.approx(2.0, rel=0.02)
    j = judge(c, table, "cpu", sessions)
    assert j.effect.estimate == pytest.approx(stats.gmean(ratios))
    assert j.effect.n_a == len(ratios) and j.verdict == "absent"
    assert j.source.startswith("latency_sessions.json: 6 interleaved sessions x 1 seeds")
    other = {"tables": {"table5": sessions["tables"]["table10"]}}  # not this claim's table
    assert judge(c, table, "cpu", other).effect.estimate == pytest.approx(2.0, rel=0.02)


def test_per_run_latencies_of_two_machines_are_not_compared(tmp_path):
    spec = TABLES["table10"]
    labels = [r.label for r in spec.rows]  # dropout, midl
    dropout = {0: 0.30, 1: 0.32, 2: 0.31}
    midl = {s: 0.6 * v for s, v in dropout.items()}
    c = claim(group="Table 10", table="table10", metric="latency_cpu", a="midl",
              b=labels[0], effect="ratio", direction="lower", margin=0.1, margin_reason="r")

    def judged(machine_a: str, machine_b: str):
        cells = {(labels[0], "latency_cpu"): Cell(values=dropout, machines=frozenset({machine_a})),
                 (labels[1], "latency_cpu"): Cell(values=midl, machines=frozenset({machine_b}))}
        return judge(c, {"table10": TableCells(spec, "hand-made", cells)}, "cpu")

    assert judged("AMD EPYC (AVX512)", "AMD EPYC (AVX512)").verdict == "held"
    j = judged("AMD EPYC (AVX512)", "AMD EPYC (AVX2)")
    assert j.verdict == "no data" and j.effect.estimate is None
    assert j.reason == ("latency_cpu values measured on 2 machines (AMD EPYC (AVX2); "
                        "AMD EPYC (AVX512)), which do not compare: time both arms on one "
                        "machine (make latency)")
    # the committed table's machines column carries the same information
    csv_path = tmp_path / "table10.csv"
    csv_path.write_text("row,column,ours_mean,ours_std,n,paper,ours_text,machines\n"
                        f"{labels[0]},latency_cpu,0.31,0.01,3,,0.31,AMD EPYC (AVX512)\n"
                        f"{labels[1]},latency_cpu,0.19,0.01,3,,0.19,AMD EPYC (AVX2); Xeon\n")
    from_csv = cells_from_csv(spec, csv_path)
    assert from_csv.cells[(labels[1], "latency_cpu")].machines == {"AMD EPYC (AVX2)", "Xeon"}
    assert judge(c, {"table10": from_csv}, "cpu").reason.startswith(
        "latency_cpu values measured on 3 machines")


def test_claims_on_a_setting_whose_baseline_misses_its_target_are_marked():
    """The authors' objection "you did not test our regime": a claim compared on trained values
    of a setting whose baseline is below the scale's accuracy target carries a mark and a note
    naming the baseline's accuracy; FLOP, latency and analytic claims never do; no verdict
    changes."""
    from midl.reporting.claims.judge import Judgement
    from midl.reporting.claims.targets import mark_below_target, trained_settings
    from midl.reporting.targets import TargetCheck

    by_id = {c.id: c for c in audit.load_claims()}
    assert trained_settings(by_id["t8_imdb"]) == ("imdb_lstm",)
    assert trained_settings(by_id["t3_noise40"]) == ("cifar10_cnn",)
    for exempt in ("t5_flops", "t5_latency_cpu", "abstract_anr"):
        assert trained_settings(by_id[exempt]) == ()
    judgements = [Judgement(by_id[i], "inconclusive") for i in ("t8_imdb", "t3_noise40",
                                                                 "t5_latency_cpu")]
    checks = [TargetCheck("imdb_lstm", 85.0, (83.62,), 5),          # not met so far
              TargetCheck("cifar10_cnn", 80.0, (83.0, 83.5), 5)]    # met so far
    mark_below_target(judgements, checks)
    imdb, cifar, latency = judgements
    assert imdb.below_target == "imdb_lstm: Dropout baseline 83.62% < 85.0% (n = 1 of 5)"
    assert cifar.below_target == "" and latency.below_target == ""
    assert imdb.verdict == "inconclusive"
    header = ["- Data: hand-made", *(c.line() for c in checks)]
    md = audit.markdown(judgements, header)
    row = next(line for line in md.splitlines() if line.startswith("| `t8_imdb`"))
    assert "**inconclusive** §" in row
    assert "**inconclusive** §" not in next(line for line in md.splitlines()
                                             if line.startswith("| `t3_noise40`"))
    assert "§ baseline below its accuracy target: imdb_lstm: Dropout baseline 83.62%" in md
    assert "- Accuracy target (imdb_lstm, Dropout baseline, test accuracy): >= 85.0%" in md
    rows = {r["id"]: r for r in csv.DictReader(
        line for line in audit.csv_text(judgements, header).splitlines()
        if not line.startswith("#"))}
    assert rows["t8_imdb"]["below_target"] == imdb.below_target
    assert rows["t3_noise40"]["below_target"] == ""


def test_target_checks_come_from_the_baseline_runs_of_the_compared_settings(tmp_path,
                                                                            monkeypatch):
    from test_run_selection import SCALE, SETTING, make_run

    from midl.reporting.claims import targets
    from midl.reporting.runs import collect_runs

    for seed, acc in enumerate((0.96, 0.97)):
        make_run(tmp_path, f"dropout_{seed}", "dropout", seed=seed, acc=acc)
    runs = collect_runs([tmp_path])
    settings = dict(targets.scale_settings(SCALE), seeds="0,1",
                    targets={SETTING: 97.5, "adult_mlp": 84.5})
    monkeypatch.setattr(targets, "scale_settings", lambda name: settings)
    mnist = claim(id="mnist", table="baselines", metric="acc", a="mnist / midl",
                  b="mnist / dropout")
    check, = targets.target_checks([mnist, claim(id="flops", table="baselines",
                                                  metric="flops", a="mnist / midl",
                                                  b="mnist / dropout")], runs, SCALE)
    assert (check.setting, check.verdict) == (SETTING, "not met")
    assert check.values == pytest.approx((96.0, 97.0))
    assert targets.target_checks([mnist], [], SCALE) == []  # committed tables: no seeds


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


def test_bh_counter_example_repeats_can_lower_q_values():
    """The old docstring said a repeated claim "can only raise the q-values": false."""
    q3 = stats.false_discovery_control([0.01, 0.03, 0.5], method="bh")
    q4 = stats.false_discovery_control([0.01, 0.01, 0.03, 0.5], method="bh")
    assert q3[1] == pytest.approx(0.045) and q4[2] == pytest.approx(0.04)


def test_decisions_are_adjusted_over_distinct_claims_holm_for_the_headline():
    p_values = [0.001, 0.04, 0.3, 0.8]
    verdicts = ["held", "opposite", "absent", "inconclusive"]
    judgements = [audit.Judgement(claim(id=f"c{i}", margin=1.0, margin_reason="r"), v,
                                  effects.Effect(1.0, 0.1, 2.0, p_value=p, n_a=5, se=0.1,
                                                 df=4.0),
                                  decision_p=None if v == "inconclusive" else p)
                  for i, (p, v) in enumerate(zip(p_values, verdicts, strict=True))]
    repeat = audit.Judgement(claim(id="again", repeats="c1", margin=1.0, margin_reason="r"),
                             "opposite", effects.Effect(1.0, 0.1, 2.0, p_value=0.04),
                             decision_p=0.04)
    exact = audit.Judgement(claim(id="exact", deterministic=True, margin=1.0,
                                  margin_reason="r"), "opposite",
                            effects.Effect(-1.0, -1.0, -1.0, se=0.0))
    everything = [*judgements, repeat, exact]
    assert audit.adjust_for_multiplicity(everything) == 3  # c0, c1, c2: not the repeat
    assert [j.holm_p for j in judgements[:3]] == pytest.approx([0.003, 0.08, 0.3])
    q = stats.false_discovery_control([0.001, 0.04, 0.3], method="bh")
    assert [j.q_value for j in judgements[:3]] == pytest.approx(q)
    assert repeat.q_value == judgements[1].q_value
    assert [j.adjusted for j in everything] == ["held", "inconclusive", "inconclusive",
                                                "inconclusive", "inconclusive", "opposite"]
    assert [j.maybe_chance for j in judgements] == [False, True, True, False]
    assert exact.q_value is None and not exact.maybe_chance
    assert audit.tally(everything) == "inconclusive 3, held 1, opposite 1"
    md = audit.markdown(everything, [])
    assert "Holm-adjusted over the 3 distinct claims" in md
    assert "1 repeats of another claim left out" in md
    rows = {line.split("|")[1].strip(" `"): line for line in md.splitlines()
            if line.startswith("| `")}
    assert "**opposite** ‡" in rows["c1"] and "‡" not in rows["c0"] + rows["exact"]
    assert "(repeats `c1`)" in rows["again"]
    block = audit.readme_block(everything, "cpu")
    assert "**Headline (5 distinct claims" in block
    (row,) = [r for r in csv.DictReader(io.StringIO(audit.csv_text(everything, [])))
              if r["id"] == "c1"]
    assert float(row["q_value"]) == pytest.approx(q[1])
    assert (row["verdict"], row["adjusted_verdict"], row["p_value"]) == (
        "opposite", "inconclusive", repr(0.04))


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
    # +10 +- ~0.8 excludes 0 and reaches the band of the paper's four printed numbers
    assert j.band == pytest.approx((10.8, 11.2)) and j.verdict == "held"
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
                    " table: table3, metric: acc, a: midl, b: dropout, margin: 1,"
                    " margin_reason: r}\n")
    with pytest.raises(audit.ClaimsError, match="no column 'acc'"):
        audit.load_claims(path)
    path.write_text("claims:\n  - {id: x, group: g, source: s, quote: q, direction: higher,"
                    " table: table3, metric: clean, a: midl, b: dropout}\n")
    with pytest.raises(audit.ClaimsError, match="no `margin`"):
        audit.load_claims(path)
    path.write_text("claims:\n  - {id: x, group: g, source: s, quote: q, direction: higher,"
                    " table: table3, metric: clean, a: midl, b: dropout, margin: 1,"
                    " margin_reason: r, repeats: y}\n")
    with pytest.raises(audit.ClaimsError, match="repeats 'y'"):
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
