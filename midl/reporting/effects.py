"""Effects over seeds with their uncertainty, and the verdict rules of the claims audit.

The statistics and rules :mod:`midl.claims` applies (its docstring states them in full):
mean differences over seeds, paired by seed (``scipy.stats.ttest_rel``) or Welch's
unequal-variance t-test (``ttest_ind(equal_var=False)``, ``ttest_ind_from_stats`` on
summaries), one-sample t-tests, 95% t-intervals, percentile bootstrap intervals over seeds
(``scipy.stats.bootstrap``), the seeds per arm a t-interval of a given width needs at an
observed spread, and the fixed verdict rules. Units are the caller's (no conversion here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

DIRECTIONS = ("higher", "lower", "either")
VERDICTS = ("held", "weaker than claimed", "not found", "opposite", "inconclusive",
            "not testable here", "no data", "differs (a > b)", "differs (a < b)",
            "no difference detected")
# the verdicts of an interval that excludes the neutral value (a difference from zero)
NONZERO_VERDICTS = ("held", "weaker than claimed", "opposite", "differs (a > b)",
                    "differs (a < b)")
CONFIDENCE = 0.95
ROUNDING = 0.02  # the paper prints 2-3 significant digits (exact values within 2% hold)
MAX_SEEDS = 100_000
BOOTSTRAP_RESAMPLES = 10_000


@dataclass
class Effect:
    """Our effect and its uncertainty (units of the metric; ratio: x; see module docstring)."""

    estimate: float | None = None
    low: float | None = None           # 95% t-interval
    high: float | None = None
    boot_low: float | None = None      # 95% percentile bootstrap over seeds
    boot_high: float | None = None
    p_value: float | None = None
    n_a: int = 0
    n_b: int = 0
    method: str = ""
    spread: tuple[float, ...] = ()     # std of differences (paired, one-sample) or per arm


def _bootstrap(data: tuple[np.ndarray, ...], statistic, paired: bool) -> tuple[float, float]:
    result = stats.bootstrap(data, statistic, n_resamples=BOOTSTRAP_RESAMPLES, paired=paired,
                             vectorized=True, confidence_level=CONFIDENCE, method="percentile",
                             rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def one_sample_effect(a: np.ndarray) -> Effect:
    """Mean of ``a`` (n,) with its t-interval against 0 (``ttest_1samp``) and bootstrap."""
    a = np.asarray(a, dtype=float)
    effect = Effect(float(a.mean()), n_a=len(a), method="one-sample t")
    if len(a) < 2:
        return effect
    effect.spread = (float(a.std(ddof=1)),)
    if np.ptp(a) == 0:
        effect.low = effect.high = effect.boot_low = effect.boot_high = effect.estimate
        effect.method += " (no spread)"
        return effect
    test = stats.ttest_1samp(a, 0.0)
    ci = test.confidence_interval(CONFIDENCE)
    effect.low, effect.high, effect.p_value = float(ci.low), float(ci.high), float(test.pvalue)
    effect.boot_low, effect.boot_high = _bootstrap((a,), np.mean, paired=False)
    return effect


def paired_effect(a: np.ndarray, b: np.ndarray) -> Effect:
    """mean(a - b) over seeds, paired t-interval (``ttest_rel``) and paired bootstrap.

    Raises:
        ValueError: if ``a`` and ``b`` differ in length.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired arms need equal lengths, got {len(a)} and {len(b)}")
    effect = one_sample_effect(a - b)
    effect.n_b = len(b)
    effect.method = effect.method.replace("one-sample t", "paired t (by seed)")
    if len(a) >= 2 and np.ptp(a - b) > 0:
        effect.boot_low, effect.boot_high = _bootstrap((a, b), _mean_diff, paired=True)
    return effect


def welch_effect(a: np.ndarray, b: np.ndarray) -> Effect:
    """mean(a) - mean(b), Welch's t-interval (``ttest_ind(equal_var=False)``) and an
    independent bootstrap of each arm."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    effect = Effect(float(a.mean() - b.mean()), n_a=len(a), n_b=len(b), method="Welch t")
    if len(a) < 2 or len(b) < 2:
        return effect
    effect.spread = (float(a.std(ddof=1)), float(b.std(ddof=1)))
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        effect.low = effect.high = effect.boot_low = effect.boot_high = effect.estimate
        effect.method += " (no spread)"
        return effect
    test = stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(CONFIDENCE)
    effect.low, effect.high, effect.p_value = float(ci.low), float(ci.high), float(test.pvalue)
    effect.boot_low, effect.boot_high = _bootstrap((a, b), _mean_diff, paired=False)
    return effect


def _welch_df(sa: float, na: int, sb: float, nb: int) -> float:
    va, vb = sa * sa / na, sb * sb / nb
    return (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1))


def welch_from_summary(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float,
                       n_b: int) -> Effect:
    """Welch's t-interval and p-value from means, sample stds (ddof 1) and counts
    (``ttest_ind_from_stats``; the interval with the Welch-Satterthwaite degrees of freedom).
    No bootstrap (no per-seed values)."""
    effect = Effect(mean_a - mean_b, n_a=n_a, n_b=n_b, method="Welch t (table summaries)")
    if n_a < 2 or n_b < 2 or sd_a is None or sd_b is None:
        return effect
    effect.spread = (sd_a, sd_b)
    se = math.sqrt(sd_a ** 2 / n_a + sd_b ** 2 / n_b)
    if se == 0:
        effect.low = effect.high = effect.estimate
        effect.method += " (no spread)"
        return effect
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, _welch_df(sd_a, n_a, sd_b, n_b)) * se
    effect.low, effect.high = effect.estimate - half, effect.estimate + half
    effect.p_value = float(stats.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b,
                                                      equal_var=False).pvalue)
    return effect


def half_width(spread: tuple[float, ...], n: int) -> float:
    """Half-width of the 95% t-interval with ``n`` seeds per arm at the given spread: one std
    (paired differences or one sample) or one per arm (Welch, equal n)."""
    if len(spread) == 1:
        return float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * spread[0] / math.sqrt(n))
    sa, sb = spread
    if sa == 0 and sb == 0:
        return 0.0
    se = math.sqrt((sa * sa + sb * sb) / n)
    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, _welch_df(sa, n, sb, n)) * se)


def seeds_needed(spread: tuple[float, ...], target: float) -> int | None:
    """Smallest n (seeds per arm) whose t-interval half-width is below ``target`` (> 0);
    None if more than :data:`MAX_SEEDS` would be needed or no spread is known."""
    if not spread or target <= 0:
        return None
    if half_width(spread, MAX_SEEDS) >= target:
        return None
    lo, hi = 2, MAX_SEEDS  # half_width decreases in n: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        if half_width(spread, mid) < target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def verdict(direction: str, low: float | None, high: float | None, paper: float | None,
            neutral: float = 0.0, exact: bool = False) -> str:
    """The verdict of :mod:`midl.claims`' rules 3-6 for our interval [low, high] (a point
    when ``exact``; None: fewer than 2 values per arm) and the paper's effect.

    Raises:
        ValueError: for an unknown ``direction``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if low is None or high is None:
        return "inconclusive"
    if direction == "either":
        if low > neutral:
            return "differs (a > b)"
        if high < neutral:
            return "differs (a < b)"
        return "no difference detected"
    s = 1.0 if direction == "higher" else -1.0
    lo, hi = sorted((s * (low - neutral), s * (high - neutral)))
    r = None if paper is None else s * (paper - neutral)
    if exact:
        v = lo
        if math.isclose(v, 0.0, abs_tol=1e-12):
            return "not found"
        if v < 0:
            return "opposite"
        return "weaker than claimed" if r is not None and v < (1 - ROUNDING) * r else "held"
    if hi < 0:
        return "opposite"
    if lo > 0:
        return "weaker than claimed" if r is not None and hi < r else "held"
    if r is None or lo <= r <= hi:
        return "inconclusive"
    return "not found"
