"""Epochs for a scale from one-seed pilot runs: where validation accuracy stopped improving.

Reads each pilot run's logged curve (``<run>/csv/metrics.csv``, one ``val/acc`` per epoch) and
prints it with the chosen epochs: the epoch at which early stopping with patience
``--window`` epochs and a minimum gain of ``--min-gain`` points would have stopped the pilot,
i.e. E + window for the first E after which the best validation accuracy so far improves by
less than ``--min-gain`` points within the next ``--window`` epochs ("still improving" if the
curve is too short to tell). Epochs are counted from 1 (an epoch count, so the chosen
number is ``trainer.max_epochs``); Lightning's CSV log numbers them from 0. Used for
``configs/scale/cpu.yaml`` (its comment gives the curves and the choices); the runs then test
their best val/acc checkpoint.

    python scripts/pilot_epochs.py outputs/pilot_cifar10_cnn/runs/*/ [--window 10 --min-gain 0.5]

With ``--memorize`` it applies the memorize regime's rule instead (``configs/regime/
memorize.yaml``): the first epoch at which clean validation accuracy has fallen at least
``--drop`` points below its peak so far, or the training accuracy on the flipped labels
(``noise/memorized``, logged with ``callbacks.memorization.every_n_epochs=1``) has passed
``--memorized`` (a fraction); it prints both curves (the rule is read off the Dropout arm).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def val_curve(run: Path, metric: str = "val/acc") -> list[float]:
    """``metric`` per epoch (default ``val/acc``, fractions) from a run folder's CSV log, in
    epoch order.

    Raises:
        FileNotFoundError: the run has no ``csv/metrics.csv``.
    """
    by_epoch: dict[int, float] = {}
    with open(run / "csv" / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get(metric):
                by_epoch[int(row["epoch"])] = float(row[metric])
    return [by_epoch[e] for e in sorted(by_epoch)]


def memorization_epoch(val: list[float], memorized: list[float], drop: float = 10.0,
                       threshold: float = 0.9) -> int | None:
    """The memorize regime's epochs: the first epoch E (1-based) at which ``val[E-1]`` lies at
    least ``drop`` points below ``max(val[:E])`` or ``memorized[E-1]`` exceeds ``threshold``
    (both fractions per epoch; ``memorized`` may be shorter or empty); None if neither
    happens within the curves."""
    for epoch in range(1, len(val) + 1):
        fallen = (max(val[:epoch]) - val[epoch - 1]) * 100 >= drop
        fitted = epoch <= len(memorized) and memorized[epoch - 1] > threshold
        if fallen or fitted:
            return epoch
    return None


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
    parser.add_argument("--memorize", action="store_true",
                        help="the memorize regime's rule (configs/regime/memorize.yaml)")
    parser.add_argument("--drop", type=float, default=10.0,
                        help="--memorize: fall of val/acc below its peak (points)")
    parser.add_argument("--memorized", type=float, default=0.9,
                        help="--memorize: flipped-label training accuracy (fraction)")
    args = parser.parse_args(argv)
    if args.memorize:
        for run in args.runs:
            val, fitted = val_curve(run), val_curve(run, "noise/memorized")
            chosen = memorization_epoch(val, fitted, args.drop, args.memorized)
            print(f"{run.name}\n  val/acc per epoch: {' '.join(f'{v:.3f}' for v in val)}\n"
                  f"  noise/memorized per epoch: {' '.join(f'{v:.3f}' for v in fitted)}\n"
                  f"  peak val/acc {max(val, default=float('nan')):.3f}; memorize epochs: "
                  f"{chosen if chosen is not None else 'not reached'}")
        return 0
    for run in args.runs:
        curve = val_curve(run)
        if not curve:
            print(f"{run.name}\n  no validation epochs logged yet")
            continue
        chosen = stopping_epoch(curve, args.window, args.min_gain)
        best = max(range(len(curve)), key=curve.__getitem__) + 1
        print(f"{run.name}\n  val/acc per epoch: {' '.join(f'{v:.3f}' for v in curve)}\n"
              f"  best {max(curve):.3f} at epoch {best} (counted from 1; the CSV log's epoch "
              f"{best - 1}); epochs chosen: "
              f"{chosen if chosen is not None else 'still improving'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
