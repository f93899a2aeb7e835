"""Figures of the claims audit (:mod:`midl.claims`), matplotlib with the Agg backend.

- :func:`plot_forest`: one row per claim, grouped by table (one panel per table, unit and
  effect, so every x axis has one unit; ratios on a log axis): our effect with its 95%
  t-interval (a filled marker where the decision survives the multiplicity adjustment, hollow
  where it does not or no test decided it), the row's margin as a grey band around no effect,
  the paper's effect as a hollow diamond (not drawn where the paper's unit is not ours), the
  claimed direction as an arrow after the label, and the verdict (with ``‡``) in the label,
  coloured by verdict; claims with no number are listed under the figure;
- :func:`plot_bars`: one CIFAR-10 table, paper vs ours: grouped bars (one group per column,
  one bar per row) at our mean with the sample std as error bar, the paper's numbers as hollow
  markers on the bars; one panel per unit. Latencies are drawn relative to the table's first
  row (ours and the paper's each on its own machine: ratios compare, milliseconds do not);
  memory without the paper's numbers (our peak RSS is not what the paper measured).

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

COLOURS = {"held": "#1a9850", "smaller than claimed": "#91cf60", "absent": "#fc8d59",
           "opposite": "#d73027", "inconclusive": "#4575b4", "not testable here": "#999999",
           "no data": "#999999", "differs (a > b)": "#762a83", "differs (a < b)": "#762a83",
           "not worse": "#1a9850", "worse": "#d73027"}
# tables whose paper numbers of a compared column are not in our unit (Table 9's SMI is
# unitless, about ten times Table 6's nats): the paper's effect is not drawn on our axis
PAPER_OTHER_UNIT = {("table9", "smi_above"), ("table9", "smi")}


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
        return "ratio a / b as each row's comparison names (log axis; 1 = no effect)"
    names = {"pts": "difference (percentage points)", "": "difference (unitless)",
             "nats": "difference (nats)", "ms": "difference (ms)",
             "M": "difference (M FLOPs per sample)"}
    if effect == "one_sample":
        return "Spearman's rho (0 = no relation)" if unit == "" else f"mean ({unit})"
    return names.get(unit, f"{unit}")


def _arrow(j: Any) -> str:
    if j.claim.kind == "noninferiority":
        return "claimed: not lower"
    return {"higher": "claimed: →", "lower": "claimed: ←", "either": "check: ↔"}[
        j.claim.direction]


def _draw_claim(ax: Any, j: Any, y: float, neutral: float, ratio: bool) -> list[float]:
    """Draw one judgement on row ``y``: its margin band, 95% interval, estimate (filled where
    the verdict survives the multiplicity adjustment) and the paper's value; returns the x
    values drawn (for the axis limits)."""
    colour = COLOURS.get(j.verdict, "black")
    xs: list[float] = []
    m = j.claim.margin
    if m is not None:  # the margin around no effect (non-inferiority: below it)
        lo_m, hi_m = ((1 / (1 + m), 1 + m) if ratio else (-m, m))
        if j.claim.kind == "noninferiority":
            hi_m = neutral
        ax.fill_between([lo_m, hi_m], y - 0.35, y + 0.35, color="#dddddd", lw=0, zorder=0)
        xs += [lo_m, hi_m]
    e = j.effect
    if e.estimate is not None:
        if e.low is not None and e.high is not None and e.low != e.high:
            ax.plot([e.low, e.high], [y, y], color=colour, lw=2.2, zorder=2)
            xs += [e.low, e.high]
        significant = j.adjusted == j.verdict and j.verdict not in (
            "inconclusive", "no data", "not testable here")
        marker = "s" if j.exact else "o"
        ax.plot([e.estimate], [y], marker=marker, ms=6, zorder=3, color=colour,
                mfc=colour if significant else "white", mew=1.5)
        xs.append(e.estimate)
    if j.paper is not None and not _paper_other_unit(j):
        ax.plot([j.paper], [y], marker="D", mfc="none", mec="black", ms=7, zorder=4)
        xs.append(j.paper)
    return xs


def _paper_other_unit(j: Any) -> bool:
    """Whether the paper prints this claim's value in another unit (not drawn)."""
    return (j.claim.table, j.metric) in PAPER_OTHER_UNIT


def _label(j: Any) -> str:
    """A row's label: the claim id (and the claim it repeats), its verdict and the claim."""
    mark = " ‡" if j.maybe_chance else ""
    extra = " (paper's value unitless: not drawn)" if _paper_other_unit(j) else ""
    repeat = f" = {j.claim.repeats}" if j.claim.repeats else ""
    return f"{j.claim.id}{repeat}  [{j.verdict}{mark}]  {_arrow(j)}{extra}"


def plot_forest(judgements: list[Any], path: Path, scale: str) -> Path:
    """Write the forest plot of ``judgements`` (:class:`midl.claims.Judgement`) to ``path``
    (PNG); returns the path."""
    panels: dict[tuple[str, str, str], list[Any]] = {}
    unjudged = []
    for j in judgements:  # one panel per group, unit and effect; no number: listed below
        if j.effect.estimate is None and j.paper is None:
            unjudged.append(j)
            continue
        panels.setdefault((j.claim.group, j.unit, j.claim.effect), []).append(j)
    heights = [len(rows) + 1.2 for rows in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(12, 0.34 * sum(heights) + 1.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, ((group, unit, effect), rows) in zip(axes[:, 0], panels.items(), strict=True):
        ratio = effect == "ratio"
        neutral = 1.0 if ratio else 0.0
        ax.axvline(neutral, color="black", lw=0.8, ls="--", zorder=1)
        labels, xs = [], [neutral]
        for i, j in enumerate(rows):
            y = len(rows) - 1 - i
            xs += _draw_claim(ax, j, y, neutral, ratio)
            labels.append((y, _label(j), COLOURS.get(j.verdict, "black")))
        ax.set_yticks([y for y, _, _ in labels])
        ax.set_yticklabels([t for _, t, _ in labels], fontsize=8)
        for tick, (_, _, colour) in zip(ax.get_yticklabels(), labels, strict=True):
            tick.set_color(colour)
        finite = [x for x in xs if x is not None and math.isfinite(x) and (x > 0 or not ratio)]
        lo, hi = min(finite), max(finite)
        if ratio:
            ax.set_xscale("log")
            ax.set_xlim(lo / 1.08, hi * 1.08)
        else:
            pad = 0.08 * (hi - lo) if hi > lo else 1.0
            ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(group, fontsize=9, loc="left", fontweight="bold")
        ax.set_xlabel(_axis_label(unit, effect), fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], color="grey", marker="o", lw=2.2,
                          label="ours: mean, 95% t-interval (filled: decision survives "
                                "the Holm adjustment)"),
               plt.Line2D([], [], color="grey", marker="o", mfc="white", lw=0,
                          label="hollow: not decided after adjustment"),
               plt.Line2D([], [], color="grey", marker="s", lw=0, label="ours: exact value"),
               plt.Line2D([], [], marker="D", mfc="none", mec="black", lw=0,
                          label="paper's effect"),
               plt.Rectangle((0, 0), 1, 1, color="#dddddd", label="±margin (fixed in advance)"),
               plt.Line2D([], [], color="black", ls="--", label="no effect")]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8,
               bbox_to_anchor=(0.5, 1.0 + 0.45 / fig.get_figheight()))
    fig.suptitle(f"Claims audit, scale {scale}: our effect (a − b, or a / b, as each claim's "
                 "comparison in claims.md names it) next to the paper's; the label gives the "
                 "claim, its verdict (‡: not significant after adjustment) and the claimed "
                 "direction (→ higher, ← lower)", fontsize=9,
                 y=1.0 + 0.9 / fig.get_figheight())
    fig.tight_layout()
    if unjudged:
        import textwrap

        text = textwrap.fill("Not drawn (no number): " + "; ".join(
            f"{j.claim.id} [{j.verdict}]" for j in unjudged), 200)
        fig.text(0.01, 0.0, text, fontsize=7, va="top")
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
    first = spec.rows[0].label
    for ax, (unit, columns) in zip(axes[0], by_unit.items(), strict=True):
        relative = unit == "ms"  # latency: each machine's numbers relative to its first row
        for i, row in enumerate(spec.rows):
            for x, column in enumerate(columns):
                cell = table.cells.get((row.label, column.key))
                base = table.cells.get((first, column.key))
                pos = x - 0.4 + width * (i + 0.5)
                ours_base = base.mean if relative and base is not None and base.mean else None
                if cell is not None and cell.n > 0 and cell.mean is not None:
                    scale_ours = ours_base if relative else 1.0
                    if scale_ours:
                        ax.bar(pos, cell.mean / scale_ours, width,
                               yerr=(cell.sd or 0.0) / scale_ours, color=colours[i],
                               capsize=2, label=row.label if x == 0 else None)
                paper_base = (base.paper if relative and base is not None else 1.0)
                if (cell is not None and cell.paper is not None and unit != "MB"
                        and paper_base):
                    ax.plot(pos, cell.paper / paper_base, marker="o", mfc="none", mec="black",
                            ms=6, label="paper" if i == 0 and x == 0 else None)
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels([c.label for c in columns], fontsize=8, rotation=15, ha="right")
        ylabel = {"%": "percent", "": "value"}.get(unit, unit)
        if relative:
            ylabel = f"latency / {first}'s (each machine's own)"
            ax.axhline(1.0, color="black", lw=0.8, ls="--")
        if unit == "MB":
            ylabel = "MB, ours only (peak RSS; the paper's memory is not comparable)"
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"{spec.title}: ours (bars: mean ± std over seeds) vs the paper (hollow "
                 f"circles); scale `{scale}`; {table.source}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
