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
