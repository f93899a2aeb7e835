"""Is the CPU fast path (bf16 autocast + channels-last) equivalent to float32 training?

Reads the runs of ``make precision`` (``scripts/precision_sweep.sh``: MID-L and Dropout on the
MNIST MLP, 3 epochs, and on the CIFAR-10 CNN, 10 epochs, full training sets, 5 seeds, each in
float32 and in bf16-mixed, the CNN's bf16 runs also channels-last) and writes
``results/bench/precision.md``: per setting and block, mean ± std over seeds of test accuracy,
ECE and the threshold ANR (alpha_hat > 0.5, ``test/anr_tau``), the wall time per run, and the
difference bf16 - fp32 with its 95% Welch confidence interval
(:func:`midl.reporting.effects.welch_effect`, the claims audit's statistics). The decision
rule: a setting may train with the fast path only where the accuracy interval of every block
lies within ±1 point.

Usage::

    python -m midl.reporting.precision outputs/precision_*/multirun --out results/bench/precision.md
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from midl.reporting.effects import seeds_needed, welch_effect
from midl.reporting.runs import Run, collect_runs
from midl.runs.io import atomic_write_text
from midl.runs.provenance import commit_text, git_commit, hardware_text

METRICS: tuple[tuple[str, str, float], ...] = (
    # (record key, column name, scale factor for display)
    ("test/acc", "accuracy (%)", 100.0),
    ("test/ece", "ECE (%)", 100.0),
    ("test/anr_tau", "ANR alpha>0.5 (%)", 100.0),
)
TOLERANCE = 0.01  # the accuracy interval must lie within ±1 point (fraction of 1)
REPORT_CODE = ("midl/reporting",)  # the code whose last commit the header stamps
FP32, FAST = "fp32", "bf16-mixed"


def arm(run: Run) -> str:
    """``"fp32"`` or ``"bf16-mixed"`` (+ ``" + channels-last"``) from a run's resolved config.

    Raises:
        ValueError: for a precision other than float32 or bf16-mixed.
    """
    config = run.record["config"]
    precision = str(config["trainer"]["precision"])
    if precision in ("32", "32-true"):
        name = FP32
    elif precision == "bf16-mixed":
        name = FAST
    else:
        raise ValueError(f"{run.path}: trainer.precision={precision!r}; the comparison knows "
                         "32-true and bf16-mixed")
    if config.get("model", {}).get("channels_last"):
        name += " + channels-last"
    return name


def _mean_std(values: list[float], factor: float) -> str:
    if not values:
        return "—"
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{factor * statistics.fmean(values):.2f} ± {factor * std:.2f}"


def compare(runs: list[Run]) -> tuple[list[str], dict[str, bool]]:
    """The comparison table's Markdown lines and, per setting, whether the fast path is adopted.

    Groups complete runs by (task, block, arm); a setting's fast path is adopted when, for every
    block, both arms have at least 2 seeds and the accuracy interval lies in [-1, +1] points.
    """
    groups: dict[tuple[str, str], dict[str, dict[int, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict))
    for run in runs:
        if run.complete:
            groups[(run.record["task_name"], run.key.block)][arm(run)][run.key.seed] = run.record
    lines = ["| setting | block | arm | n | seeds | " + " | ".join(c for _, c, _ in METRICS)
             + " | wall per run (s) |", "|" + "---|" * (6 + len(METRICS))]
    diff_lines = ["| setting | block | metric | bf16 − fp32 | 95% CI (Welch) | p | "
                  "within ±1 pt |", "|---|---|---|---|---|---|---|"]
    adopted: dict[str, bool] = {}
    for (task, block), arms in sorted(groups.items()):
        setting = task.removeprefix("precision_")
        for name, by_seed in sorted(arms.items()):
            records = [by_seed[s] for s in sorted(by_seed)]
            cells = [_mean_std([r["test"][k] for r in records if k in r["test"]], f)
                     for k, _, f in METRICS]
            walls = [r["wall_time_s"] for r in records]
            lines.append(f"| {setting} | {block} | {name} | {len(records)} | "
                         f"{','.join(map(str, sorted(by_seed)))} | " + " | ".join(cells)
                         + f" | {statistics.fmean(walls):.0f} |")
        base = arms.get(FP32, {})
        fast_name = next((a for a in arms if a.startswith(FAST)), None)
        fast = arms.get(fast_name, {}) if fast_name else {}
        ok = min(len(base), len(fast)) >= 2
        for key, column, factor in METRICS:
            a = [r["test"][key] for r in fast.values() if key in r["test"]]
            b = [r["test"][key] for r in base.values() if key in r["test"]]
            if not a or not b:
                continue
            effect = welch_effect(a, b)
            diff = effect.estimate
            low = math.nan if effect.low is None else effect.low
            high = math.nan if effect.high is None else effect.high
            within = ""
            if key == "test/acc":
                inside = -TOLERANCE <= low and high <= TOLERANCE
                ok = ok and inside
                within = "yes" if inside else "no"
                if not inside and effect.spread and abs(diff) < TOLERANCE:
                    # seeds per arm whose interval, around the observed difference, would
                    # fit within ±1 point at the observed spread
                    n = seeds_needed(effect.spread, TOLERANCE - abs(diff))
                    within += f" (about {n} seeds per arm needed)" if n else ""
            p = "—" if effect.p_value is None else f"{effect.p_value:.2f}"
            diff_lines.append(
                f"| {setting} | {block} | {column} | {factor * diff:+.2f} | "
                f"[{factor * low:+.2f}, {factor * high:+.2f}] | {p} | {within} |")
        adopted[setting] = adopted.get(setting, True) and ok
    return lines + [""] + diff_lines, adopted


def render(runs: list[Run], command: str) -> str:
    """The whole ``precision.md``: header (commit, hardware, command), tables, decision."""
    table, adopted = compare(runs)
    complete = [r for r in runs if r.complete]
    commits = sorted({commit_text(r.record["commit"]) for r in complete})
    machines = sorted({hardware_text(r.record["hardware"]) for r in complete})
    lines = [
        "# Fast path equivalence: float32 vs bf16-mixed (+ channels-last)",
        "",
        f"- Command: `{command}`",
        f"- Report code: `{commit_text(git_commit(paths=REPORT_CODE))}`; run commits: "
        + ", ".join(f"`{c}`" for c in commits),
        "- Hardware of the runs: " + ("; ".join(machines) or "unknown"),
        "- Runs: full training splits (MNIST 55,000, CIFAR-10 45,000; 5,000 validation), "
        "MNIST MLP 3 epochs, CIFAR-10 CNN 10 epochs, Adam 1e-3, batch 64, two jobs at once "
        "with one thread each (`configs/scale/precision.yaml`, `scripts/precision_sweep.sh`).",
        "- Rule: a setting trains with the fast path only where, for every block, the 95% Welch "
        "interval of the accuracy difference bf16 − fp32 lies within ±1 point.",
        "- Wall per run: seconds of each run as recorded, with other work on the machine; the "
        "speed comparison measured side by side is `make bench`'s fast_path section.",
        "",
        *table,
        "",
        "## Decision",
        "",
    ]
    for setting, ok in sorted(adopted.items()):
        lines.append(f"- {setting}: " + ("fast path adopted (interval within ±1 point)" if ok
                                         else "stays float32 (interval not within ±1 point, "
                                              "or fewer than 2 seeds per arm)"))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line: sweep folders in, ``precision.md`` out (refuses to overwrite without
    ``--force``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dirs", nargs="+", help="sweep folders of make precision")
    parser.add_argument("--out", default="results/bench/precision.md")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--command", default="make precision")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise SystemExit(f"{out} exists; pass --force to regenerate it")
    runs = collect_runs(args.sweep_dirs)
    if not any(r.complete for r in runs):
        raise SystemExit(f"no complete runs below {args.sweep_dirs}")
    atomic_write_text(out, render(runs, args.command))
    print(out.read_text())


if __name__ == "__main__":
    main()
