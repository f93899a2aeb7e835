"""Epochs for a scale from one-seed pilot runs: where validation accuracy stopped improving.

Reads each pilot run's logged curve (``<run>/csv/metrics.csv``, one ``val/acc`` per epoch) and
prints it with the chosen epochs: the epoch at which early stopping with patience
``--window`` epochs and a minimum gain of ``--min-gain`` points would have stopped the pilot,
i.e. E + window for the first E after which the best validation accuracy so far improves by
less than ``--min-gain`` points within the next ``--window`` epochs ("still improving" if the
curve is too short to tell). Used for ``configs/scale/cpu.yaml`` (its comment gives the
curves and the choices); the runs then test their best val/acc checkpoint.

    python scripts/pilot_epochs.py outputs/pilot_cifar10_cnn/runs/*/ [--window 10 --min-gain 0.5]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def val_curve(run: Path) -> list[float]:
    """``val/acc`` per epoch (fractions) from a run folder's CSV log, in epoch order.

    Raises:
        FileNotFoundError: the run has no ``csv/metrics.csv``.
    """
    by_epoch: dict[int, float] = {}
    with open(run / "csv" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("val/acc"):
                by_epoch[int(row["epoch"])] = float(row["val/acc"])
    return [by_epoch[e] for e in sorted(by_epoch)]


def stopping_epoch(curve: list[float], window: int, min_gain: float) -> int | None:
    """Where early stopping (patience ``window`` epochs, minimum gain ``min_gain`` accuracy
    points) stops on ``curve`` (fractions per epoch): E + window for the first epoch count E
    (1-based) such that ``max(curve[E:E+window])`` exceeds ``max(curve[:E])`` by less than
    ``min_gain`` points; None if no such E has a full window."""
    for epochs in range(1, len(curve) - window + 1):
        best = max(curve[:epochs])
        if (max(curve[epochs:epochs + window]) - best) * 100 < min_gain:
            return epochs + window
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="pilot run folders")
    parser.add_argument("--window", type=int, default=10, help="epochs looked ahead")
    parser.add_argument("--min-gain", type=float, default=0.5,
                        help="smallest improvement (accuracy points) that counts")
    args = parser.parse_args(argv)
    for run in args.runs:
        curve = val_curve(run)
        if not curve:
            print(f"{run.name}\n  no validation epochs logged yet")
            continue
        chosen = stopping_epoch(curve, args.window, args.min_gain)
        best = max(range(len(curve)), key=curve.__getitem__) + 1
        print(f"{run.name}\n  val/acc per epoch: {' '.join(f'{v:.3f}' for v in curve)}\n"
              f"  best {max(curve):.3f} at epoch {best}; epochs chosen: "
              f"{chosen if chosen is not None else 'still improving'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
