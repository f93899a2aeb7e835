"""Pictures of aggregated results (matplotlib, Agg backend), written atomically as PNG.

- :func:`plot_summary`: a sweep summary (:class:`midl.reporting.summary.Summary`), one panel
  per metric: each group's mean ± std as a point with an error bar, its single runs as grey
  dots beside it, n under the group's name; with two groups the panel title gives their
  difference and its 95% Welch interval.
- :func:`plot_table`: a paper table (:class:`midl.reporting.render.TableResult`), one panel
  per column: per row our mean ± std (n) next to the paper's number.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from midl.figures import plt, save_png

if TYPE_CHECKING:  # imported for annotations only: render imports this module
    from midl.reporting.render import TableResult
    from midl.reporting.summary import Summary

OURS_COLOR, PAPER_COLOR = "tab:blue", "tab:red"


def _grid(n_panels: int, width: float, height: float, max_columns: int = 3,
          sharey: bool = False) -> tuple[Any, list]:
    columns = min(max_columns, max(1, n_panels))
    rows = math.ceil(n_panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows),
                             squeeze=False, sharey=sharey, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def plot_summary(summary: Summary, path: str | Path) -> Path:
    """One panel per metric of ``summary``: per group (x) the mean ± std (point and error bar)
    and every run's value (grey dots), with n in the tick label. Returns the path written."""
    metrics = summary.metrics
    groups = summary.groups
    fig, axes = _grid(len(metrics), max(3.2, 1.3 * len(groups) + 1.5), 3.6)
    rng = np.random.default_rng(0)  # fixed jitter: the same picture every time
    labels = ["\n".join(textwrap.wrap(g.name, 22)) for g in groups]
    for ax, metric in zip(axes, metrics, strict=True):
        for x, group in enumerate(groups):
            values = group.values.get(metric) or []
            if not values:
                continue
            std = group.std(metric)
            ax.scatter(x + 0.18 + rng.uniform(-0.05, 0.05, len(values)), values, s=16,
                       color="tab:gray", alpha=0.8, edgecolors="none", zorder=2)
            ax.errorbar(x, group.mean(metric), yerr=std, fmt="D", color=OURS_COLOR,
                        markersize=6, capsize=6, elinewidth=1.5, zorder=3)
        ax.set_xticks(range(len(groups)),
                      [f"{label}\nn={len(g.values.get(metric) or [])}"
                       for label, g in zip(labels, groups, strict=True)], fontsize=8)
        values = [v for g in groups for v in g.values.get(metric) or []]
        if values:  # zoom to the data (points, not bars: no baseline at 0 is implied)
            low, high = min(values), max(values)
            pad = 0.15 * (high - low) or 0.01 * max(abs(high), 1e-9)
            stds = [g.std(metric) or 0.0 for g in groups]
            ax.set_ylim(low - pad - max(stds), high + pad + max(stds))
        title = metric
        pair = [d for d in summary.differences if d.metric == metric]
        if len(groups) == 2 and pair and pair[0].diff is not None:
            d = pair[0]
            interval = ("" if d.low is None
                        else f"\n95% CI [{d.low:+.4f}, {d.high:+.4f}]")
            title += f"\n{groups[1].name} − {groups[0].name}: {d.diff:+.4f}{interval}"
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    by = ", ".join(summary.by) or "one configuration"
    fig.suptitle(f"Mean ± std over seeds, grouped by {by} (grey dots: single runs)",
                 fontsize=10)
    return save_png(fig, path)


def plot_table(result: TableResult, path: str | Path, title: str | None = None) -> Path:
    """One panel per column of a paper table: per row (y) our mean ± std with n (blue) and
    the paper's number (red cross); rows without either are left empty. Returns the path."""
    spec = result.spec
    columns = [c for c in spec.columns
               if any(result.cells[(r.label, c.key)].mean is not None
                      or result.cells[(r.label, c.key)].paper is not None for r in spec.rows)]
    if not columns:
        columns = list(spec.columns[:1])
    rows = list(spec.rows)
    fig, axes = _grid(len(columns), 3.6, 0.45 * len(rows) + 1.6, sharey=True)
    for i, (ax, column) in enumerate(zip(axes, columns, strict=True)):
        for y, row in enumerate(rows):
            cell = result.cells[(row.label, column.key)]
            if cell.mean is not None:
                ax.errorbar(cell.mean, y + 0.12, xerr=cell.std, fmt="o", color=OURS_COLOR,
                            capsize=3, markersize=5)
                ax.annotate(f"n={cell.n}", (cell.mean, y + 0.12), xytext=(0, 6),
                            textcoords="offset points", ha="center", fontsize=6,
                            color=OURS_COLOR)
            elif cell.na is not None:
                ax.annotate(cell.na, (0.5, y), xycoords=("axes fraction", "data"),
                            ha="center", va="center", fontsize=6, color="grey")
            if cell.paper is not None:
                ax.plot(cell.paper, y - 0.12, "x", color=PAPER_COLOR, markersize=6,
                        markeredgewidth=1.5)
        ax.set_yticks(range(len(rows)), [r.label for r in rows], fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.tick_params(axis="y", labelleft=i % min(3, len(columns)) == 0)  # row names once
        unit = f" ({column.unit})" if column.unit else ""
        ax.set_title(f"{column.label}{unit}", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    handles = [plt.Line2D([], [], color=OURS_COLOR, marker="o", linestyle="",
                          label="ours: mean ± std over seeds (n runs)"),
               plt.Line2D([], [], color=PAPER_COLOR, marker="x", linestyle="",
                          label="paper")]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title or spec.title, fontsize=10)
    return save_png(fig, path)
