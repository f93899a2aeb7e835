"""Figures of the claims audit (:mod:`midl.claims`), matplotlib with the Agg backend.

- :func:`plot_forest`: one row per claim, grouped by table (one panel per table and unit, so
  every x axis has one unit): our effect with its 95% t-interval, the paper's effect as a hollow
  diamond, the no-effect line, and the verdict in the row label, coloured by verdict;
- :func:`plot_bars`: one CIFAR-10 table, paper vs ours: grouped bars (one group per column,
  one bar per row) at our mean with the sample std as error bar, the paper's numbers as hollow
  markers on the bars; one panel per unit.

Both take the already computed judgements / cells and write a PNG atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from midl.reporting.tables import TABLES  # noqa: E402
from midl.runs.io import atomic_write  # noqa: E402

COLOURS = {"held": "#1a9850", "weaker than claimed": "#91cf60", "not found": "#fc8d59",
           "opposite": "#d73027", "inconclusive": "#4575b4", "not testable here": "#999999",
           "no data": "#999999", "differs (a > b)": "#762a83", "differs (a < b)": "#762a83",
           "no difference detected": "#4575b4"}


def cifar10_tables() -> list[str]:
    """The tables whose rows are all CIFAR-10 CNN runs (one bar figure each)."""
    return [name for name, spec in TABLES.items()
            if spec.rows and all(r.setting == "cifar10_cnn" for r in spec.rows)]


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda handle: fig.savefig(handle, format="png", dpi=110,
                                                  bbox_inches="tight"))
    plt.close(fig)
    return path


def _axis_label(unit: str, effect: str) -> str:
    if effect == "ratio":
        return "ratio (x; 1 = no effect)"
    names = {"pts": "difference (percentage points)", "": "difference (unitless)",
             "nats": "difference (nats)", "ms": "difference (ms)",
             "M": "difference (M FLOPs per sample)"}
    if effect == "one_sample":
        return "Spearman's rho (0 = no relation)" if unit == "" else f"mean ({unit})"
    return names.get(unit, f"{unit}")


def plot_forest(judgements: list[Any], path: Path, scale: str) -> Path:
    """Write the forest plot of ``judgements`` (:class:`midl.claims.Judgement`) to ``path``
    (PNG); returns the path."""
    panels: dict[tuple[str, str, str], list[Any]] = {}
    for j in judgements:  # one panel per group and unit; claims with no number to draw
        key = (j.claim.group, j.unit, j.claim.effect)  # join their group's first panel
        if j.effect.estimate is None and j.paper is None and key not in panels:
            key = next((k for k in panels if k[0] == j.claim.group), key)
        panels.setdefault(key, []).append(j)
    heights = [len(rows) + 1.2 for rows in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 0.32 * sum(heights) + 1.0),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, ((group, unit, effect), rows) in zip(axes[:, 0], panels.items(), strict=True):
        neutral = 1.0 if effect == "ratio" else 0.0
        ax.axvline(neutral, color="black", lw=0.8, ls="--", zorder=1)
        labels, xs = [], [neutral]
        for i, j in enumerate(rows):
            y = len(rows) - 1 - i
            colour = COLOURS.get(j.verdict, "black")
            e = j.effect
            if e.estimate is not None:
                if e.low is not None and e.high is not None and e.low != e.high:
                    ax.plot([e.low, e.high], [y, y], color=colour, lw=2.2, zorder=2)
                    xs += [e.low, e.high]
                marker = "s" if j.claim.exact else "o"
                ax.plot([e.estimate], [y], marker=marker, color=colour, ms=6, zorder=3)
                xs.append(e.estimate)
            if j.paper is not None:
                ax.plot([j.paper], [y], marker="D", mfc="none", mec="black", ms=7, zorder=4)
                xs.append(j.paper)
            labels.append((y, f"{j.claim.id}  [{j.verdict}]", colour))
        ax.set_yticks([y for y, _, _ in labels])
        ax.set_yticklabels([t for _, t, _ in labels], fontsize=8)
        for tick, (_, _, colour) in zip(ax.get_yticklabels(), labels, strict=True):
            tick.set_color(colour)
        finite = [x for x in xs if x is not None and math.isfinite(x)]
        lo, hi = min(finite), max(finite)
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(group, fontsize=9, loc="left", fontweight="bold")
        ax.set_xlabel(_axis_label(unit, effect), fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], color="grey", marker="o", lw=2.2,
                          label="ours: mean, 95% t-interval over seeds"),
               plt.Line2D([], [], color="grey", marker="s", lw=0, label="ours: exact value"),
               plt.Line2D([], [], marker="D", mfc="none", mec="black", lw=0,
                          label="paper's effect"),
               plt.Line2D([], [], color="black", ls="--", label="no effect")]
    fig.legend(handles=handles, loc="upper center", ncol=4, fontsize=8,
               bbox_to_anchor=(0.5, 1.0 + 0.25 / fig.get_figheight()))
    fig.suptitle(f"Claims audit, scale {scale}: our effect (MID-L minus the compared model, "
                 "or their ratio) next to the paper's; each row's label gives the claim and "
                 "its verdict (claims.md)", fontsize=9, y=1.0 + 0.6 / fig.get_figheight())
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(table: Any, path: Path, scale: str) -> Path:
    """Write the paper-vs-ours bar figure of one table (:class:`midl.claims.TableCells`) to
    ``path`` (PNG); returns the path."""
    spec = table.spec
    by_unit: dict[str, list[Any]] = {}
    for column in spec.columns:
        measured = any(table.cells.get((r.label, column.key)) is not None
                       and table.cells[(r.label, column.key)].n > 0 for r in spec.rows)
        if measured:
            by_unit.setdefault(column.unit, []).append(column)
    if not by_unit:
        by_unit = {"": []}
    fig, axes = plt.subplots(1, len(by_unit), figsize=(4.2 * len(by_unit) + 1.5, 4.2),
                             squeeze=False)
    colours = plt.cm.tab10(np.arange(len(spec.rows)) % 10)
    width = 0.8 / max(1, len(spec.rows))
    for ax, (unit, columns) in zip(axes[0], by_unit.items(), strict=True):
        for i, row in enumerate(spec.rows):
            for x, column in enumerate(columns):
                cell = table.cells.get((row.label, column.key))
                pos = x - 0.4 + width * (i + 0.5)
                if cell is not None and cell.n > 0 and cell.mean is not None:
                    ax.bar(pos, cell.mean, width, yerr=cell.sd or 0.0, color=colours[i],
                           capsize=2, label=row.label if x == 0 else None)
                if cell is not None and cell.paper is not None:
                    ax.plot(pos, cell.paper, marker="o", mfc="none", mec="black", ms=6,
                            label="paper" if i == 0 and x == 0 else None)
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels([c.label for c in columns], fontsize=8, rotation=15, ha="right")
        ax.set_ylabel({"%": "percent", "": "value"}.get(unit, unit), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"{spec.title}: ours (bars: mean ± std over seeds) vs the paper (hollow "
                 f"circles); scale `{scale}`; {table.source}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
