"""Sweep summaries' data (:mod:`midl.summarize` builds them, :mod:`midl.reporting.plots`
draws them): groups of runs over seeds, their pairwise Welch differences, not-counted runs."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from midl.reporting.effects import welch_effect
from midl.reporting.runs import Run


def value_text(value: Any) -> str:
    """A label value as text: a string as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


class SummaryError(ValueError):
    """The runs cannot be summarised as asked (no complete run, unknown ``--by`` key)."""


@dataclass
class Group:
    """Runs of one configuration over seeds: ``label`` maps each grouping key to its value;
    ``values[metric]`` and ``seeds[metric]`` are aligned (a run lacking a metric is left
    out of that metric only)."""

    label: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    seeds: dict[str, list[int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``block=midl, data.label_noise=0.4`` (``all runs`` without grouping keys)."""
        return ", ".join(f"{k}={value_text(v)}" for k, v in self.label.items()) or "all runs"

    def mean(self, metric: str) -> float | None:
        """Mean of ``metric`` over the group's runs that have it (None without one)."""
        values = self.values.get(metric) or []
        return statistics.fmean(values) if values else None

    def std(self, metric: str) -> float | None:
        """Sample standard deviation of ``metric`` (None below two values)."""
        values = self.values.get(metric) or []
        return statistics.stdev(values) if len(values) >= 2 else None


@dataclass
class Difference:
    """``second - first`` for one metric, with its 95% Welch interval and p-value (None when
    a group has fewer than 2 values)."""

    metric: str
    first: Group
    second: Group
    diff: float | None
    low: float | None
    high: float | None
    p_value: float | None


@dataclass
class Excluded:
    """A run that is not counted, and why."""

    run: Run
    reason: str


@dataclass
class Summary:
    """Groups, differences and not-counted runs of some sweep folders."""

    sweep_dirs: list[str]
    by: list[str]
    by_given: bool
    metrics: list[str]
    groups: list[Group]
    differences: list[Difference]
    excluded: list[Excluded]


def welch(metric: str, first: Group, second: Group) -> Difference:
    """``second - first`` of ``metric``'s means with the 95% Welch interval and p-value
    (:func:`midl.reporting.effects.welch_effect`, the claims audit's statistics); interval
    and p are None with fewer than 2 values in a group."""
    a, b = first.values.get(metric) or [], second.values.get(metric) or []
    if not a or not b:
        return Difference(metric, first, second, None, None, None, None)
    effect = welch_effect(b, a)
    return Difference(metric, first, second, effect.estimate, effect.low, effect.high,
                      effect.p_value)
