"""Accuracy targets of a scale: whether the baseline reached the paper's accuracy regime.

A table says little when its baseline is far from the paper's accuracy (an undertrained model
cannot judge a claim), so a scale may name, per setting, the test accuracy its baseline (block
``dropout``, no label noise; the standard FFN in the Transformer, :data:`BASELINE_BLOCKS`) must
reach: ``configs/scale/<scale>.yaml``,
``targets: {<setting>: <percent>}`` (``configs/scale/cpu.yaml``). Each table header then says,
for the settings of its rows, whether the target was met by the mean over the scale's seeds.
The baseline runs are found in all the runs given to the report, not only the table's own (Table
4, for example, has no Dropout row).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from midl.reporting.runs import Run, RunKey, expected_config, select_runs

BASELINE_BLOCK = "dropout"  # the paper's baseline: the same backbone with standard dropout
BASELINE_BLOCKS = {"imdb_transformer": "ffn"}  # settings whose baseline is another block


def baseline_block(setting: str) -> str:
    """The block of ``setting``'s baseline: :data:`BASELINE_BLOCKS`, else ``dropout``."""
    return BASELINE_BLOCKS.get(setting, BASELINE_BLOCK)


@dataclass(frozen=True)
class TargetCheck:
    """The baseline's test accuracy (percent, one value per counted seed) against ``target``."""

    setting: str
    target: float
    values: tuple[float, ...]
    seeds_expected: int

    @property
    def mean(self) -> float | None:
        """Mean test accuracy (percent) over the counted seeds (None without one)."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def baseline_name(self) -> str:
        """``Dropout``, or the baseline's block name (:func:`baseline_block`)."""
        block = baseline_block(self.setting)
        return "Dropout" if block == BASELINE_BLOCK else block

    @property
    def missed(self) -> bool:
        """Whether the counted seeds' mean lies below the target (also while seeds miss)."""
        return bool(self.values) and self.mean < self.target

    @property
    def verdict(self) -> str:
        """``met``, ``not met`` or ``no baseline runs yet``; ``(so far)`` while seeds miss."""
        if not self.values:
            return "no baseline runs yet"
        word = "not met" if self.missed else "met"
        return word if len(self.values) >= self.seeds_expected else f"{word} so far"

    def line(self) -> str:
        """One Markdown list item for a table header."""
        if not self.values:
            ours = f"no complete run of {self.seeds_expected} yet"
        else:
            std = statistics.stdev(self.values) if len(self.values) > 1 else 0.0
            ours = (f"ours {self.mean:.2f} ± {std:.2f} (n = {len(self.values)} of "
                    f"{self.seeds_expected})")
        return (f"- Accuracy target ({self.setting}, {self.baseline_name} baseline, test "
                f"accuracy): >= {self.target:.1f}%: {ours}: **{self.verdict}**")


def check_targets(settings: list[str], targets: dict[str, Any] | None, runs: list[Run],
                  seeds: list[int], scale: str | None, expected=expected_config
                  ) -> list[TargetCheck]:
    """The target checks of ``settings`` (in order; those without a target are skipped).

    Args:
        settings: the settings of a table's rows (``+experiment/setting`` names).
        targets: the scale's ``targets`` entry (setting -> percent), or None (no checks).
        runs: every run the report read; the baseline's are selected by configuration hash
            exactly as a table cell's (:func:`midl.reporting.runs.select_runs`).
        seeds: the scale's seeds.
        scale: the scale name the runs must carry.
        expected: the composed configuration of a key (tests pass a fixture).

    Raises:
        ValueError: a target that is not a number in (0, 100].
    """
    checks = []
    for setting in dict.fromkeys(settings):
        if not targets or setting not in targets:
            continue
        target = targets[setting]
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not (
                0 < target <= 100):
            raise ValueError(f"scale {scale}: targets.{setting} = {target!r}: expected a test "
                             "accuracy in percent, in (0, 100]")
        keys = [RunKey(setting, baseline_block(setting), 0.0, seed, scale) for seed in seeds]
        counted = select_runs(runs, keys, expected).counted
        values = tuple(counted[k].record["test"]["test/acc"] * 100 for k in keys
                       if k in counted)
        checks.append(TargetCheck(setting, float(target), values, len(seeds)))
    return checks
