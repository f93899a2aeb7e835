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
KINDS = ("superiority", "noninferiority")
VERDICTS = ("held", "smaller than claimed", "absent", "opposite", "inconclusive", "not worse",
            "worse", "not testable here", "no data", "differs (a > b)", "differs (a < b)")
# the verdicts of an interval that excludes the neutral value (a difference from zero)
NONZERO_VERDICTS = ("held", "smaller than claimed", "opposite", "differs (a > b)",
                    "differs (a < b)")
# the verdicts that decide a claim (a test was passed): multiplicity-adjusted in the headline
DECIDED = (*NONZERO_VERDICTS, "absent", "not worse", "worse")
CONFIDENCE = 0.95
EQUIVALENCE_CONFIDENCE = 0.90  # TOST at 5% per side: the 90% interval inside +-margin
POWER = 0.80  # seeds needed: 80% power (noncentral t)
SD_UPPER = 0.80  # ... at the one-sided 80% upper confidence bound of the observed std
MIN_DF_ABSENT = 2  # absent needs >= 3 seeds: with 1 df a lucky pair fakes a tiny spread
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
    se: float | None = None            # standard error of the estimate (0: no spread seen)
    df: float | None = None            # degrees of freedom of its t distribution
    log: bool = False                  # a ratio: estimate, low, high exp() of a log effect


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
    effect.se, effect.df = float(a.std(ddof=1)) / math.sqrt(len(a)), float(len(a) - 1)
    if np.ptp(a) == 0:
        effect.low = effect.high = effect.boot_low = effect.boot_high = effect.estimate
        effect.se = 0.0
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
        effect.se, effect.df = 0.0, float(len(a) + len(b) - 2)
        effect.method += " (no spread)"
        return effect
    sa, sb = effect.spread
    effect.se = math.sqrt(sa * sa / len(a) + sb * sb / len(b))
    effect.df = _welch_df(sa, len(a), sb, len(b))
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
    effect.se = se
    if se == 0:
        effect.low = effect.high = effect.estimate
        effect.df = float(n_a + n_b - 2)
        effect.method += " (no spread)"
        return effect
    effect.df = _welch_df(sd_a, n_a, sd_b, n_b)
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


def _planning_spread(spread: tuple[float, ...], n_seen: int) -> tuple[float, ...]:
    """Each std raised to its one-sided :data:`SD_UPPER` upper confidence bound (chi-square
    with ``n_seen - 1`` degrees of freedom): a std from a few seeds is not known."""
    if n_seen < 2:
        return spread
    df = n_seen - 1
    factor = math.sqrt(df / stats.chi2.ppf(1 - SD_UPPER, df))
    return tuple(sd * factor for sd in spread)


def power(spread: tuple[float, ...], n: int, delta: float, one_sided: bool = False,
          alpha: float = 1 - CONFIDENCE) -> float:
    """Power of the t-test (two-sided at ``alpha``, or one-sided at ``alpha / 2``, the side of
    a 95% interval's bound) with ``n`` seeds per arm when the true effect is ``delta``: the
    noncentral t distribution (paired / one-sample: one std, n - 1 df; Welch: a std per arm,
    Welch-Satterthwaite df)."""
    if len(spread) == 1:
        se, df = spread[0] / math.sqrt(n), n - 1
    else:
        sa, sb = spread
        se, df = math.sqrt((sa * sa + sb * sb) / n), _welch_df(sa, n, sb, n)
    if se == 0:
        return 1.0
    crit = stats.t.ppf(1 - alpha / 2, df)
    ncp = abs(delta) / se
    out = stats.nct.sf(crit, df, ncp)
    if not one_sided:
        out += stats.nct.cdf(-crit, df, ncp)
    if not math.isfinite(out):  # scipy's nct fails far in the tail: the normal limit
        out = stats.norm.sf(crit - ncp) + (0.0 if one_sided else stats.norm.cdf(-crit - ncp))
    return float(out)


def seeds_for_power(spread: tuple[float, ...], delta: float, n_seen: int,
                    one_sided: bool = False) -> int | None:
    """Smallest n (seeds per arm) whose t-test has :data:`POWER` at true effect ``delta``
    (:func:`power`), planning with the upper bound of the observed std
    (:func:`_planning_spread`); None without a spread or beyond :data:`MAX_SEEDS`."""
    if not spread or delta == 0 or not all(math.isfinite(x) for x in spread):
        return None
    plan = _planning_spread(spread, n_seen)
    if power(plan, MAX_SEEDS, delta, one_sided) < POWER:
        return None
    lo, hi = 2, MAX_SEEDS  # power increases in n: bisect
    while lo < hi:
        mid = (lo + hi) // 2
        if power(plan, mid, delta, one_sided) >= POWER:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True)
class Decision:
    """A verdict and the p-value of the test that reached it (two-sided scale: compared with
    0.05; None for an exact value or an undecided claim), with a note where two rules
    applied."""

    verdict: str
    p: float | None = None
    note: str = ""


def _sf(x: float, df: float) -> float:
    return float(stats.t.sf(x, df))


@dataclass(frozen=True)
class _Interval:
    """The signed effect ``x`` (positive = the claimed direction) with its 95% and 90%
    t-intervals; an exact value (``se`` 0) is its own interval and has no p-values."""

    x: float
    se: float
    df: float | None
    lo: float
    hi: float
    lo90: float
    hi90: float

    @classmethod
    def of(cls, x: float, se: float, df: float | None) -> _Interval:
        if se == 0:
            return cls(x, se, df, x, x, x, x)
        h95 = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
        h90 = stats.t.ppf(0.5 + EQUIVALENCE_CONFIDENCE / 2, df) * se
        return cls(x, se, df, x - h95, x + h95, x - h90, x + h90)

    @property
    def exact(self) -> bool:
        return self.se == 0

    def p_beyond(self, bound: float) -> float | None:
        """Two-sided-scale p of the one-sided test that the effect exceeds ``bound`` (None
        for an exact value)."""
        return None if self.exact else min(1.0, 2 * _sf((self.x - bound) / self.se, self.df))

    def p_below(self, bound: float) -> float | None:
        """Two-sided-scale p of the one-sided test that the effect is below ``bound``."""
        return None if self.exact else min(1.0, 2 * _sf((bound - self.x) / self.se, self.df))

    @property
    def p_zero(self) -> float | None:
        """Two-sided p against 0 (None for an exact value)."""
        return None if self.exact else min(1.0, 2 * _sf(abs(self.x) / self.se, self.df))


def decide(direction: str, estimate: float | None, se: float | None, df: float | None,
           paper: float | None = None, margin: float | None = None,
           kind: str = "superiority", band: tuple[float, float] | None = None) -> Decision:
    """The verdict of :mod:`midl.claims`' rules for an effect ``estimate`` with standard
    error ``se`` (0: an exact value or no spread seen; None: no spread known) on a t
    distribution with ``df`` degrees of freedom, against 0 (a ratio: pass logs).

    Args:
        direction: higher | lower | either (the claimed sign).
        paper: the paper's effect; ``band``: the values its printed digits allow (default
            the point ``paper``).
        margin: the smallest effect of interest (> 0), fixed in ``claims.yaml``; None: no
            equivalence test (analytic claims).
        kind: superiority (default) or noninferiority ("maintains or exceeds").

    Raises:
        ValueError: for an unknown direction or kind, a margin <= 0, or a non-inferiority
            claim without a margin.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if margin is not None and not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    if kind == "noninferiority" and margin is None:
        raise ValueError("a non-inferiority claim needs a margin")
    if estimate is None or se is None or (se > 0 and not df):
        return Decision("inconclusive")
    sign = -1.0 if direction == "lower" else 1.0
    iv = _Interval.of(sign * estimate, se, df)
    if kind == "noninferiority":
        return _noninferiority(iv, margin)
    if margin is not None and (absent := _absent(iv, margin)) is not None:
        return absent
    if iv.exact and margin is None and math.isclose(iv.x, 0.0, abs_tol=1e-12):
        return Decision("absent")
    if direction == "either":
        return _difference(iv)
    lowest = None if paper is None else min(sign * v for v in (band or (paper, paper)))
    return _superiority(iv, lowest)


def _difference(iv: _Interval) -> Decision:
    """An effect of either sign: the 95% interval excludes 0."""
    if iv.lo > 0:
        return Decision("differs (a > b)", iv.p_zero)
    if iv.hi < 0:
        return Decision("differs (a < b)", iv.p_zero)
    return Decision("inconclusive")


def _superiority(iv: _Interval, paper_lowest: float | None) -> Decision:
    """A signed effect: opposite (interval below 0), held, or smaller than claimed (above 0
    but below the lowest value the paper's printed effect allows, ``paper_lowest``)."""
    if iv.hi < 0:
        return Decision("opposite", iv.p_zero)
    if iv.lo > 0:
        held = paper_lowest is None or iv.hi >= paper_lowest
        return Decision("held" if held else "smaller than claimed", iv.p_zero)
    return Decision("inconclusive")


def _noninferiority(iv: _Interval, margin: float) -> Decision:
    """Not worse: the 95% interval's low end above -margin; worse: its high end below."""
    if iv.lo > -margin:
        return Decision("not worse", iv.p_beyond(-margin))
    if iv.hi < -margin:
        return Decision("worse", iv.p_below(-margin))
    return Decision("inconclusive")


def _absent(iv: _Interval, margin: float) -> Decision | None:
    """Absent (TOST): the 90% interval inside +-margin, from at least :data:`MIN_DF_ABSENT`
    degrees of freedom (or an exact value); its p is the larger one-sided p. None otherwise."""
    if not (-margin < iv.lo90 and iv.hi90 < margin and (iv.exact or iv.df >= MIN_DF_ABSENT)):
        return None
    note = ""
    if iv.lo > 0 or iv.hi < 0:
        note = (f"differs from zero (p = {iv.p_zero:.2g}) but within the margin"
                if iv.p_zero is not None else "nonzero but within the margin")
    p_tost = None if iv.exact else max(_sf((iv.x + margin) / iv.se, iv.df),
                                       _sf((margin - iv.x) / iv.se, iv.df))
    return Decision("absent", p_tost, note)


def verdict(direction: str, estimate: float | None, se: float | None, df: float | None,
            paper: float | None = None, margin: float | None = None,
            kind: str = "superiority", band: tuple[float, float] | None = None) -> str:
    """The verdict alone of :func:`decide`."""
    return decide(direction, estimate, se, df, paper, margin, kind, band).verdict


def half_unit(value: float) -> float:
    """Half a unit of the last digit ``value`` is printed with (``repr`` of the value rounded
    to 6 decimals, trailing zeros dropped: 1.7 -> 0.05, 55 -> 0.5)."""
    text = repr(round(float(value), 6))
    decimals = len(text.split(".")[1].rstrip("0")) if "." in text and "e" not in text else 0
    return 0.5 * 10.0 ** (-decimals)


def printed_band(value: float, terms: int = 1, half: float | None = None
                 ) -> tuple[float, float]:
    """The values a number printed as ``value`` allows: +- :func:`half_unit` (or ``half``),
    times ``terms`` for a sum or difference of that many printed numbers."""
    h = (half_unit(value) if half is None else half) * terms
    return value - h, value + h
