"""The regimes page: each claim family's MID-L effect in every regime side by side.

Usage::

    python -m midl.reporting.regimes --scale cpu      # after `make claims` (make regimes)

Reads the judged claims (``<results>/<scale>/claims.csv``, written by ``python -m midl.claims``)
and the regime tables' memorized fractions (``regimes_noise.csv``, ``python -m midl.report``),
and writes ``<results>/<scale>/regimes.{md,csv,png}``: for each claim family (label-noise
robustness at 20 and 40%, low data, calibration under noise) and dataset, the effect MID-L
minus the compared arm with its 95% interval and verdict in each regime (the standard
regime's best checkpoint and final weights, the memorize regime's, each arm's equal-budget
tuning winner's, the parameter-matched baseline's, low data trained to convergence), beside
each arm's memorized fraction and fall (best clean validation accuracy minus final test
accuracy). Nothing is computed here that the claims audit did not
compute: this page only arranges its rows (:data:`LAYOUT` names which claim fills which cell),
so a verdict reads the same on both pages. A last section lists the equal-budget searches'
candidates from the run records (``<results>/runs/<scale>``; :func:`search_table`): the score
selection read and, after the fact, their test accuracies.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from midl.reporting.render import fmt
from midl.reporting.runs import collect_runs
from midl.runs.io import atomic_write_text
from midl.tuning import KNOBS, TuningError, candidates, search_grid, winner

CLAIMS_CSV = "claims.csv"
NOISE_TABLE_CSV = "regimes_noise.csv"
TUNING_DIR = Path(__file__).resolve().parents[2] / "configs" / "tuning"

NOISE_COLUMNS = ("standard best", "standard final", "memorize best", "memorize final",
                 "tuned best", "tuned final",
                 "matched, standard best", "matched, standard final",
                 "matched, memorize best", "matched, memorize final")
LOWDATA_COLUMNS = ("standard best", "converge best", "converge final")


def _noise_row(noise: int, data: str, standard: tuple[str, str] | None = None
               ) -> dict[str, str]:
    """Claim ids of one noise family's row: ``standard`` overrides the standard-regime ids
    (CIFAR-10's are Table 3's own claims)."""
    std_best, std_final = standard or (f"t3_noise{noise}@standard_best_{data}",
                                       f"t3_noise{noise}@standard_final_{data}")
    row = {"standard best": std_best, "standard final": std_final,
           "memorize best": f"t3_noise{noise}@memorize_best_{data}",
           "memorize final": f"t3_noise{noise}@memorize_final_{data}"}
    if noise == 40:
        for ck in ("best", "final"):
            row[f"tuned {ck}"] = f"t3_noise40@tuned_{ck}_{data}"
        for regime in ("standard", "memorize"):
            for ck in ("best", "final"):
                row[f"matched, {regime} {ck}"] = f"t3_noise40@{regime}_{ck}_{data}_matched"
    return row


@dataclass(frozen=True)
class Family:
    """One row of the page: a claim family on one dataset, the claim id of each regime
    column (absent: not run in that regime) and the memorized-fraction rows it shows."""

    label: str
    data: str
    claims: dict[str, str]
    noise: int | None = None


LAYOUT: dict[str, tuple[tuple[str, ...], tuple[Family, ...]]] = {
    "Label-noise robustness (Table 3: MID-L - Dropout test accuracy, pts; matched: MID-L - "
    "a Dropout block with MID-L's parameter count)": (NOISE_COLUMNS, (
        Family("20% noise", "mnist", _noise_row(20, "mnist"), 20),
        Family("20% noise", "cifar10", _noise_row(20, "cifar10",
                                                  ("t3_noise20", "t3_noise20_last")), 20),
        Family("40% noise", "mnist", _noise_row(40, "mnist"), 40),
        Family("40% noise", "cifar10", _noise_row(40, "cifar10",
                                                  ("t3_noise40", "t3_noise40_last")), 40),
        Family("40% noise, MID-L with phi = ReLU", "mnist",
               {"memorize best": "t3_noise40@memorize_best_mnist_relu",
                "memorize final": "t3_noise40@memorize_final_mnist_relu"}),
        Family("40% noise, MID-L masked estimator", "mnist",
               {"memorize best": "t3_noise40@memorize_best_mnist_masked",
                "memorize final": "t3_noise40@memorize_final_mnist_masked"}),
        Family("Calibration at 40% noise (ECE, pts; lower is better)", "mnist",
               {"memorize final": "t7_ece40@memorize_final_mnist"}),
        Family("Calibration at 40% noise (ECE, pts; lower is better)", "cifar10",
               {"memorize final": "t7_ece40@memorize_final_cifar10"}),
    )),
    "Low data, 20 images per class (Table 2: MID-L - Dropout test accuracy, pts)": (
        LOWDATA_COLUMNS, tuple(
            Family(f"{model.upper()}", data,
                   {**({"standard best": f"t2_{data}"} if model == "mlp" else {}),
                    "converge best": f"t2_{data}@converge_best_{model}",
                    "converge final": f"t2_{data}@converge_final_{model}"})
            for data in ("mnist", "cifar10") for model in ("mlp", "cnn"))),
}
"""Section title -> (regime columns, rows). Every id must be a claim of results/claims.yaml."""

DATA_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
BACKBONES = {"mnist": "MLP", "cifar10": "CNN"}  # the label-noise settings' backbones
MEMO_BLOCKS = {"dropout": "Dropout", "midl": "MID-L", "dropout_wide": "Dropout, MID-L's size",
               "midl_relu": "MID-L, phi = ReLU", "midl_masked": "MID-L, masked estimator"}
"""Block -> column of the memorized-fraction and fall tables (the regimes table's rows)."""


class RegimesError(ValueError):
    """A claims CSV that is missing or lacks a claim the layout names, or an output that exists
    (without ``--force``)."""


def _read_csv(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value


def read_claims(path: Path) -> dict[str, dict[str, str]]:
    """``claims.csv`` as ``{id: row}``.

    Raises:
        RegimesError: the file does not exist (run the claims audit first) or lacks a claim
            that :data:`LAYOUT` names.
    """
    if not path.is_file():
        raise RegimesError(f"{path} not found: run `python -m midl.claims --scale ...` "
                           "(make claims) first")
    rows = {row["id"]: row for row in _read_csv(path)}
    named = {cid for _, families in LAYOUT.values() for f in families
             for cid in f.claims.values()}
    missing = sorted(named - set(rows))
    if missing:
        raise RegimesError(f"{path} lacks the claims {missing}: they are in "
                           "results/claims.yaml? rerun the claims audit")
    return rows


def memorization(path: Path) -> dict[tuple[str, str, str, str], str]:
    """``(data, regime, block, column) -> "mean (n=k)"`` of the regimes table's memorization
    columns (``memorized20/40``: the fraction of flipped labels fitted, %; ``fall20/40``: best
    clean validation accuracy minus final test accuracy, points) from its CSV; empty when the
    table has not been written."""
    if not path.is_file():
        return {}
    out = {}
    for row in _read_csv(path):
        column = row["column"]
        if not column.startswith(("memorized", "fall")):
            continue
        data, regime, block = (part.strip() for part in row["row"].split("/"))
        mean, n = _float(row["ours_mean"]), row["n"]
        if mean is not None:
            text = f"{mean:.0f}%" if column.startswith("memorized") else f"{mean:.1f}"
            out[(data, regime, block, column)] = f"{text} (n={n})"
    return out


def tuned_winners(folder: Path = TUNING_DIR) -> list[str]:
    """One line per equal-budget winner (``<folder>/<setting>_<block>.yaml``, written by
    ``python -m midl.tuning``; read with ``yaml.safe_load``): its name, knob values and
    learning rate, e.g. ``mnist_mlp_midl: top_k 0.5, lr 0.0003``. The search configurations
    (``search_*``) and ``none`` are not winners."""
    lines = []
    for path in sorted(folder.glob("*.yaml")):
        if path.stem == "none" or path.stem.startswith("search_"):
            continue
        body = yaml.safe_load(path.read_text())
        knobs = ", ".join(f"{k} {v:g}" for k, v in body["block"].items())
        lines.append(f"`{path.stem}`: {knobs}, lr {body['optimizer']['lr']:g}")
    return lines


def search_table(runs: Sequence[Any], scale: str) -> list[str]:
    """The equal-budget searches' candidates as a Markdown section (``[]`` without search
    runs): per search setting and arm, each configuration's best noisy validation accuracy
    (the only number selection reads, :mod:`midl.tuning`), the winner marked, and after the
    fact the test accuracy of that checkpoint and of the final weights (the record's ``test``
    and ``test_last``, %), so a reader sees how much the choice could matter on the selection
    seed. No claim reads these numbers.

    Args:
        runs: runs and records (:func:`midl.reporting.runs.collect_runs`); only complete
            search runs at ``scale`` are used.
    """
    def pct(result: Any) -> str:
        acc = result.get("test/acc") if isinstance(result, dict) else None
        return "–" if acc is None else f"{100 * float(acc):.2f}"

    rows, grids = [], []
    for i, block in enumerate(KNOBS):
        grid = search_grid(block)
        grids.append(grid)
        for setting, found in candidates(runs, scale, grid).items():
            try:
                best = winner(found, grid, setting)
            except TuningError:                    # an unfinished search: nothing chosen yet
                best = None
            for c in found:
                chosen = " (chosen)" if best is not None and c == best else ""
                record = c.run.record if c.run is not None else {}
                rows.append(((setting, i, c.value, c.lr),
                             f"| `{setting}` ({c.regime}) | {MEMO_BLOCKS.get(block, block)} | "
                             f"{grid.knob} {c.value:g}, lr {c.lr:g}{chosen} | "
                             f"{100 * c.score:.2f} | {pct(record.get('test'))} | "
                             f"{pct(record.get('test_last'))} |"))
    if not rows:
        return []
    seeds = ", ".join(sorted({str(g.seed) for g in grids}))
    noises = ", ".join(sorted({f"{100 * g.noise:g}%" for g in grids}))
    return [f"## Equal-budget search: every candidate (selection seed {seeds}, {noises} "
            "label noise, noisy validation labels)", "",
            "Selection reads the best noisy validation accuracy alone (midl/tuning.py); the "
            "test accuracies, of that checkpoint and of the final weights, are shown after "
            "the fact and enter no claim.", "",
            "| Search | Arm | Configuration | Best noisy val acc (%) | Test acc, that "
            "checkpoint (%) | Test acc, final weights (%) |",
            "|---|---|---|---|---|---|", *(line for _, line in sorted(rows)), ""]


def cell_text(row: dict[str, str] | None) -> str:
    """``+0.03 [-1.11, +1.02] absent``, with ``(adjusted: ...)`` where the audit's
    multiplicity-adjusted verdict differs; ``–`` without a claim; the verdict alone without an
    estimate."""
    if row is None:
        return "–"
    estimate, low, high = (_float(row.get(k)) for k in ("estimate", "low", "high"))
    verdict = row.get("verdict", "")
    adjusted = row.get("adjusted_verdict") or verdict
    if adjusted != verdict:     # the Holm-adjusted headline reads otherwise (claims.md)
        verdict = f"{verdict} (adjusted: {adjusted})"
    if estimate is None:
        return verdict or "–"
    interval = f" [{fmt(low, 2, True)}, {fmt(high, 2, True)}]" if low is not None else ""
    return f"{fmt(estimate, 2, True)}{interval} {verdict}"


def build(claims: dict[str, dict[str, str]], memo: dict[tuple[str, str, str, str], str],
          header: Sequence[str] = (), winners: Sequence[str] = (), search: Sequence[str] = ()
          ) -> tuple[str, str, list[tuple[str, str, str, dict]]]:
    """The page's markdown and long CSV, and the plotted points
    ``(section, row label, column, claims.csv row)``; ``winners``: the tuned columns' winners
    (:func:`tuned_winners`); ``search``: the searches' section (:func:`search_table`), last."""
    md = ["# Regimes: MID-L's claims where its mechanism can act", "", *header, "",
          "Each cell: the effect (MID-L minus the compared arm, in the claim's unit) with its "
          "95% interval over seeds, and the claims audit's verdict with its margin fixed in "
          "advance (results/<scale>/claims.md has the rules, margins, p-values and the "
          "Holm-adjusted headline, shown here where it differs). `–`: not run in that regime. "
          "Regimes: configs/regime/ (standard: the tables' training; memorize: no "
          "augmentation, a fixed long training, the noise draw varying with the seed; "
          "converge: the low-data subsets trained 300 epochs with a 200-image validation "
          "slice; tuned: each arm's winner of an equal-budget search over its knob and the "
          "learning rate on noisy validation labels, midl/tuning.py, CIFAR-10 in the standard "
          "and MNIST in the memorize regime). Best: the checkpoint of best clean validation "
          "accuracy (tuned: noisy); final: the last epoch's weights.", ""]
    lines = ["section,family,data,column,claim,estimate,low,high,verdict,q_value,n_a,n_b"]
    points = []
    for section, (columns, families) in LAYOUT.items():
        md += [f"## {section}", "",
               "| Family | Data | " + " | ".join(columns) + " |",
               "|---|---|" + "---|" * len(columns)]
        for family in families:
            cells = []
            for column in columns:
                cid = family.claims.get(column)
                row = claims.get(cid) if cid else None
                cells.append(cell_text(row))
                if row is not None:
                    lines.append(",".join(_csv_field(v) for v in (
                        section.split(" (")[0], family.label, family.data, column, cid,
                        row.get("estimate", ""), row.get("low", ""), row.get("high", ""),
                        row.get("verdict", ""), row.get("q_value", ""), row.get("n_a", ""),
                        row.get("n_b", ""))))
                    prefix = "Low data, " if columns == LOWDATA_COLUMNS else ""
                    points.append((section, f"{prefix}{family.label}, "
                                   f"{DATA_LABELS[family.data]}", column, row))
            data = (DATA_LABELS[family.data] if columns == LOWDATA_COLUMNS  # label names it
                    else f"{DATA_LABELS[family.data]} ({BACKBONES[family.data]})")
            md.append(f"| {family.label} | {data} | "
                      + " | ".join(cells) + " |")
        md.append("")
        if "tuned best" in columns:     # the tuned columns' configurations, under their table
            md += ["Tuned winners (configs/tuning/, each arm's best noisy validation accuracy "
                   "on the selection seed): "
                   + ("; ".join(winners) if winners else "none chosen yet") + ".", ""]
    for title, column, regimes in (
            ("Memorized fraction of the flipped training labels (final weights)", "memorized",
             ("standard", "memorize", "tuned")),
            ("Fall: best clean validation accuracy minus the final weights' test accuracy "
             "(pts; the paper's signature of memorization is a large fall)", "fall",
             ("standard", "memorize"))):
        md += [f"## {title}", "",
               "| Data | Noise | Regime | " + " | ".join(MEMO_BLOCKS.values()) + " |",
               "|---|---|---|" + "---|" * len(MEMO_BLOCKS)]
        for data in ("mnist", "cifar10"):
            for noise in (20, 40):
                for regime in regimes[:None if noise == 40 else 2]:
                    got = [memo.get((data, regime, b, f"{column}{noise}"), "–")
                           for b in MEMO_BLOCKS]
                    md.append(f"| {DATA_LABELS[data]} ({BACKBONES[data]}) | {noise}% | "
                              f"{regime} | " + " | ".join(got) + " |")
        md.append("")
    md += ["`–`: no run, or runs recorded before the memorized fraction (the final weights' "
           "test) was measured; the tuned runs have no fall (their validation labels are "
           "noisy).", ""]
    md += list(search)
    return "\n".join(md).rstrip("\n") + "\n", "\n".join(lines) + "\n", points


def _csv_field(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ',"\n') else value


def plot(points: list[tuple[str, str, str, dict]], path: Path) -> Path:
    """A forest plot of ``points``: one line per (row, regime column), effect and 95%
    interval, grouped by section and coloured by the audit's verdict (the claims page's
    colours, :data:`midl.reporting.claims.plots.COLOURS`); written atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from midl.reporting.claims.plots import COLOURS
    from midl.runs.io import atomic_write

    shown = [(s, r, c, row) for s, r, c, row in points if _float(row.get("estimate")) is not None]
    height = max(2.5, 0.22 * len(shown) + 1.6)
    fig, ax = plt.subplots(figsize=(10, height))
    labels, verdicts = [], {}
    for y, (_, label, column, row) in enumerate(reversed(shown)):
        est, low, high = (_float(row.get(k)) for k in ("estimate", "low", "high"))
        verdict = row.get("verdict", "")
        colour = verdicts.setdefault(verdict, COLOURS.get(verdict, "black"))
        ax.plot([low if low is not None else est, high if high is not None else est], [y, y],
                color=colour, lw=2)
        ax.plot([est], [y], "o", color=colour, ms=4)
        labels.append(f"{label}: {column}")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("MID-L minus compared arm (claim's unit; for ECE lower is better), "
                  "95% interval")
    ax.set_title("MID-L's claims across regimes (colour: the audit's verdict)", fontsize=10)
    ax.legend(handles=[plt.Line2D([], [], color=c, marker="o", lw=2, label=v)
                       for v, c in verdicts.items()], fontsize=7, loc="lower left")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight",
                                             metadata={"Software": None}))
    plt.close(fig)
    return path


def write(scale: str, results: Path, force: bool = False,
          runs: Sequence[Path] | None = None) -> list[Path]:
    """Write ``<results>/<scale>/regimes.{md,csv,png}`` from that folder's claims and regime
    table CSVs, and the searches' candidates (:func:`search_table`) from the runs and records
    in ``runs`` (default ``<results>/runs/<scale>`` where it exists); returns the paths.

    Raises:
        RegimesError: claims.csv missing or incomplete (see :func:`read_claims`), or an output
            exists and not ``force``.
    """
    folder = results / scale
    claims = read_claims(folder / CLAIMS_CSV)
    header_lines = [line for line in (folder / CLAIMS_CSV).read_text().splitlines()
                    if line.startswith("# ")]
    folders = [Path(p) for p in runs] if runs is not None else [results / "runs" / scale]
    search = search_table(collect_runs([p for p in folders if p.is_dir()]), scale)
    md, table, points = build(claims, memorization(folder / NOISE_TABLE_CSV),
                              [line[2:] for line in header_lines], tuned_winners(), search)
    outputs = [folder / "regimes.md", folder / "regimes.csv", folder / "regimes.png"]
    existing = [p for p in outputs if p.exists()]
    if existing and not force:
        raise RegimesError(f"{', '.join(map(str, existing))} exist(s): pass --force")
    atomic_write_text(outputs[0], md)
    atomic_write_text(outputs[1], table)
    plot(points, outputs[2])
    return outputs


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m midl.reporting.regimes --scale S [--out results] [--force] [--runs ...]``:
    write the regimes page (``<out>/<scale>/regimes.{md,csv,png}``) and print each path;
    returns 0, or exits with status 2 and the error's message on a :class:`RegimesError`
    (for example an existing output without ``--force``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", required=True, help="the scale whose claims are arranged")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="results folder holding <scale>/claims.csv (default: results)")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")
    parser.add_argument("--runs", nargs="+", type=Path, default=None,
                        help="folders of the search runs and records (default: "
                             "<out>/runs/<scale>)")
    args = parser.parse_args(argv)
    try:
        for path in write(args.scale, args.out, args.force, args.runs):
            print(f"wrote {path}")
    except RegimesError as error:
        parser.exit(2, f"error: {error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
