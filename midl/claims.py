"""The claims audit: every claim of the paper (``results/claims.yaml``) judged on our runs.

Usage::

    python -m midl.claims --scale cpu                      # make claims SCALE=cpu
    python -m midl.claims --scale cpu --runs outputs/grid_*/multirun results/runs/cpu
    python -m midl.claims --scale smoke --readme none      # leave results/README.md alone

The code lives in :mod:`midl.reporting.claims` (claims file, cells, judging, outputs, plots);
this module is its command line and the statement of its rules. Writes
``<out>/<scale>/claims.md``, ``claims.csv`` (one line per claim, unrounded), the forest
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
  against 0); a / b (``ratio``): for a metric identical in every seed the ratio of the
  values, else the geometric mean of per-seed ratios, judged on logs (paired or Welch on
  log values). CPU latency: where ``results/<scale>/latency_sessions.json`` (``make latency``,
  :mod:`midl.timing`) times both arms of the claim's table in interleaved sessions, the
  geometric mean of the per-session ratios of the arms' medians, one-sample t on their logs
  over sessions (:mod:`midl.metrics.interleaved`); else the per-run medians, each run timed
  in a session of its own, and only where both arms' values were measured on one machine
  (else "no data", naming the machines: milliseconds of two machines do not compare). With
  ``relative_to`` (a second column), each arm's value of a seed is first its change from that
  column in the same seed (e.g. noise40 - clean), and the paper's number likewise; from
  committed summaries (no per-seed values) the change has a mean but no known spread;
- paired by seed (``ttest_rel``) when both arms are runs of the same setting and label noise
  with the same seeds, else Welch's unequal-variance t-test (``ttest_ind(equal_var=False)``,
  or ``ttest_ind_from_stats`` on table summaries); one-sample: ``ttest_1samp``;
- the 95% t-interval (shown; a 95% percentile bootstrap over seeds beside it in
  ``claims.csv``), the 90% t-interval (equivalence), and the two-sided p-value against no
  effect (unadjusted, kept in ``claims.csv``); n per arm is the number of seeds;
- the paper's effect with the band its printed digits allow: each printed number +- half a
  unit of its last digit (1.7 -> 1.65..1.75; a difference of two numbers +- both halves; a
  ratio from the extremes of both bands).

Margins. Every claim carries ``margin``, the smallest effect of interest, with a one-line
``margin_reason`` (``claims.yaml``), fixed before judging; the code reads it and never
derives it from the data; a claim without one is a load error, except an analytic claim
(computed from the configs, judged against the paper's printed digits) and one not testable
at any scale. Units are the effect's; a ratio's margin is a fraction (0.1: +-10%, judged as
log(1.1) on the log scale).

Verdicts, by these fixed rules. Write the claimed direction as s = +1 (higher) or -1 (lower)
and orient every number by it (x -> s x; ratios on logs, no effect = 0); m is the margin, r the
paper's effect (its band [r-, r+]), [lo, hi] our 95% interval and [lo90, hi90] our 90% one:

1. *not testable here*: ``claims.yaml`` marks the claim so at this scale, or its cells cannot
   be measured on this machine (e.g. GPU latency on a CPU machine).
2. *no data*: an arm has no value (runs or analyses missing).
3. A point, when the effect has no spread: a deterministic metric identical in every seed,
   an analytic value, or (any metric) seeds that came out identical; then lo = hi = lo90 =
   hi90 = the value and no p-value. A ``deterministic`` metric whose seeds differ is judged
   with statistics like any other. Fewer than 2 values per arm: *inconclusive* (no spread).
4. ``kind: noninferiority`` ("maintains or exceeds"): *not worse* if lo > -m, *worse* if
   hi < -m, else *inconclusive*.
5. *absent* (TOST at 5% per side): -m < lo90 and hi90 < m, with at least 3 seeds (2 degrees
   of freedom: two seeds can agree by luck and fake a tiny spread); a point: |x| < m; an
   analytic value without a margin: x = 0.
6. *opposite* if hi < 0; if lo > 0: *held* if hi >= r- (the interval reaches the paper's band
   or lies beyond it; no r: held), else *smaller than claimed*.
7. Otherwise *inconclusive*, with the seeds per arm that would decide it: the smallest n at
   which a t-test has 80% power (noncentral t) to exclude 0 if the true effect is r (or m,
   if r is missing or below m), or, for non-inferiority, to show lo > -m if the truth is 0;
   planned at the one-sided 80% upper confidence bound of the observed std (chi-square),
   since a std from five seeds is not known.
8. ``direction: either`` (a check of our own, not a claim): *absent* by rule 5, else
   *differs (a > b)* / *differs (a < b)* if the 95% interval excludes 0, else
   *inconclusive*.

Where two apply: an interval that excludes 0 but whose 90% interval lies inside +-m is
*absent* (rule 5 before rule 6), with a note "differs from zero but within the margin": the
margin is by definition the smallest effect that matters, so a detectable but smaller effect
answers the paper's claim as no effect of interest would; the unadjusted p in ``claims.csv``
still shows that it differs from zero.

Many claims at once (multiplicity). Each verdict that a test reached (held, smaller than
claimed, opposite, differs: the two-sided p against 0; absent: the TOST p, the larger of the
two one-sided p at +-m; not worse / worse: twice the one-sided p at -m, so that every
decision is at 0.05) has a decision p-value (``decision_p``). :func:`adjust_for_multiplicity`
adjusts them over the distinct claims: a claim with ``repeats: <id>`` (the same cells and
metric as an earlier claim, e.g. Table 11 = Table 3's runs, the FLOP count of the abstract and
of Table 5) is shown but left out of the adjustment and of every tally (it takes its
original's adjusted values where its decision's p is the same). The headline (``claims.md``
and the README block lead with it) uses Holm's step-down method (family-wise error 0.05): a
decision whose Holm-adjusted p is >= 0.05 counts as *inconclusive* there and is marked ``‡``
in the tables. The Benjamini-Hochberg q-value (``scipy.stats.false_discovery_control``; a
false discovery rate) is reported beside it (``q_value``). Adding claims does not only raise
BH q-values: BH on p = .01, .03, .5 gives q(.03) = .045, and a repeated .01 lowers it to .04;
hence repeats are left out. Exact values need no adjustment.

The paper's regime. A scale may set an accuracy target per setting (``targets`` in
``configs/scale/<scale>.yaml``: the test accuracy its baseline must reach,
:mod:`midl.reporting.targets`). The header lists the target check of every setting a claim
compares on trained values; a claim judged on a setting whose baseline misses its target
(``not met``, or ``not met so far`` while seeds are missing) is marked ``§`` and its note names
the setting and the baseline's accuracy (:mod:`midl.reporting.claims.targets`): there the
authors' objection "you did not test our regime" applies. FLOPs, latency and memory depend on
the architecture alone and are never marked. The mark changes no verdict.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from midl.reporting.claims import *  # noqa: F403  (the audit's API, importable from here)
from midl.reporting.claims import CLAIMS_FILE, README, ROOT, ClaimsError, audit, ours_text
from midl.reporting.scales import ScaleError


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
