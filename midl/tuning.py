"""Equal-budget tuning for the regimes report: each arm's winner of its search, written as a
``tuning`` choice (``configs/tuning/<setting>_<block>.yaml``).

    python -m midl.tuning --scale cpu [--runs results/runs/cpu outputs/...] [--force]
    make tune SCALE=cpu      # the searches, this selection, then the winners' runs

The paper's Limitations say MID-L "may require careful tuning of the Top-k hyperparameter";
the tables run both arms untuned (Dropout p = 0.5, top_k = 0.5, Adam lr 1e-3). Here each arm
gets the same budget over its own knob and the learning rate
(``configs/experiment/regimes_search_{dropout,midl}.yaml``: 3 knob values x 2 learning rates)
at 40% label noise on one selection seed, with *noisy* validation labels
(``configs/tuning/search_<setting>.yaml``: a practitioner has no clean ones), on each search
setting in its regime (CIFAR-10 standard, MNIST memorize).

Per (setting, block) the winner is the configuration of the highest best noisy validation
accuracy (the record's ``best_val``: the checkpoint a practitioner would keep); ties go to the
smaller learning rate, then the smaller knob value. The test set is never read. The winner is
written with every candidate's score in its header; ``configs/experiment/regimes_tuned.yaml``
then runs each winner on the scale's seeds, none of which the search used, so the winners'
results carry no selection bias.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
KNOBS = {"dropout": "p", "midl": "top_k"}  # each arm's own knob: block.<knob>
SEARCH_PREFIX = "search_"  # configs/tuning/search_<setting>.yaml


class TuningError(ValueError):
    """A selection that cannot be made or written: an arm without a knob, an incomplete
    search, an existing winner file without ``--force``."""


@dataclass(frozen=True)
class Grid:
    """One arm's search (``configs/experiment/regimes_search_<block>.yaml``): the knob's
    values, the learning rates, the search settings (``tuning`` choices), noise and seed."""

    block: str
    knob: str
    values: tuple[float, ...]
    lrs: tuple[float, ...]
    searches: tuple[str, ...]
    noise: float
    seed: int

    def configurations(self) -> set[tuple[float, float]]:
        """Every ``(knob value, learning rate)`` of the grid."""
        return set(itertools.product(self.values, self.lrs))


@dataclass(frozen=True)
class Candidate:
    """One search run: its knob value, learning rate, best noisy val/acc (a fraction), the
    regime it trained in, and the run itself (:class:`midl.reporting.runs.Run`; selection
    never reads it: the regimes page shows the candidates' test accuracies after the fact)."""

    value: float
    lr: float
    score: float
    regime: str
    run: Any = field(default=None, compare=False, repr=False)


def _floats(text: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in str(text).split(","))


def search_grid(block: str, experiments: Path = CONFIGS / "experiment") -> Grid:
    """The search of ``block`` as its sweep file declares it.

    Raises:
        TuningError: for a block without a knob here (allowed: :data:`KNOBS`).
    """
    if block not in KNOBS:
        raise TuningError(f"no tuning knob for block {block!r}; allowed: {sorted(KNOBS)}")
    params = yaml.safe_load((experiments / f"regimes_search_{block}.yaml").read_text())[
        "hydra"]["sweeper"]["params"]
    knob = KNOBS[block]
    return Grid(block, knob, _floats(params[f"block.{knob}"]), _floats(params["optimizer.lr"]),
                tuple(s.strip() for s in str(params["tuning"]).split(",")),
                float(params["data.label_noise"]), int(params["seed"]))


def candidates(runs: Sequence[Any], scale: str, grid: Grid
               ) -> dict[str, list[Candidate]]:
    """The complete search runs of ``grid`` at ``scale`` per setting
    (:class:`midl.reporting.runs.Run` objects; others are ignored)."""
    out: dict[str, list[Candidate]] = {}
    for run in runs:
        key = run.key
        if not (run.complete and key.scale == scale and key.block == grid.block
                and key.tuning in grid.searches and key.seed == grid.seed
                and key.noise == grid.noise):
            continue
        config = run.record["config"]
        out.setdefault(key.setting, []).append(Candidate(
            float(config["block"][grid.knob]), float(config["optimizer"]["lr"]),
            float(run.record["best_val"]["val/acc"]), key.regime, run))
    return out


def winner(found: Sequence[Candidate], grid: Grid, setting: str) -> Candidate:
    """The best candidate (module docstring).

    Raises:
        TuningError: if a configuration of the grid has no run, or one has two.
    """
    seen = [(c.value, c.lr) for c in found]
    missing = sorted(grid.configurations() - set(seen))
    if missing:
        shown = ", ".join(f"{grid.knob}={v:g} lr={lr:g}" for v, lr in missing)
        raise TuningError(f"{setting} / {grid.block}: the search lacks {shown} "
                          f"({len(found)} of {len(grid.configurations())} configurations ran)")
    if len(set(seen)) != len(seen):
        raise TuningError(f"{setting} / {grid.block}: a configuration ran twice: {seen}")
    return max(found, key=lambda c: (c.score, -c.lr, -c.value))


def winner_yaml(setting: str, grid: Grid, best: Candidate, found: Sequence[Candidate],
                scale: str, command: str) -> str:
    """The ``configs/tuning/<setting>_<block>.yaml`` text of a winner: the setting, block and
    regime it was chosen in, the knob, the learning rate and noisy validation, with every
    candidate's score in the header."""
    lines = [
        "# @package _global_",
        f"# tuning={setting}_{grid.block}: the winner of {grid.block}'s equal-budget search on "
        f"{setting}",
        f"# ({best.regime} regime, {grid.noise:.0%} label noise, selection seed {grid.seed}, "
        f"scale {scale}),",
        f"# chosen by `{command}` on {datetime.now(UTC):%Y-%m-%d}",
        "# (midl/tuning.py: the highest best noisy val/acc; the test set is never read).",
        "# Candidates, best noisy val/acc %:",
    ]
    for c in sorted(found, key=lambda c: (c.value, c.lr)):
        mark = "  <- chosen" if c == best else ""
        lines.append(f"#   {grid.knob}={c.value:g} lr={c.lr:g}: {100 * c.score:.2f}{mark}")
    body = {"defaults": [{"/experiment/setting": setting},
                         {"override /block": grid.block},
                         {"override /regime": best.regime}, "_self_"],
            "block": {grid.knob: best.value}, "optimizer": {"lr": best.lr},
            "data": {"noisy_val": True}}
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False)


def _chosen(text: str, knob: str) -> tuple[float, float, str]:
    """``(knob value, lr, regime)`` of a winner file's text (YAML read safely)."""
    body = yaml.safe_load(text)
    regime = next(d["override /regime"] for d in body["defaults"]
                  if isinstance(d, dict) and "override /regime" in d)
    return float(body["block"][knob]), float(body["optimizer"]["lr"]), regime


def select(runs: Sequence[Any], scale: str, out: Path = CONFIGS / "tuning",
           force: bool = False, command: str = "python -m midl.tuning"
           ) -> dict[Path, str]:
    """Write each arm's winner on every search setting that has search runs (module
    docstring); a setting none of whose search runs exist is left out, so the searches can
    finish one setting at a time. An existing winner file is kept when the runs choose the
    same configuration again (never rewritten: its date and scores stay), and replaced only
    with ``force``.

    Returns:
        ``{path: "written" | "kept"}`` for every winner the runs determine.

    Raises:
        TuningError: an incomplete search, no search run at all, or an existing winner file
            whose configuration differs from the runs' choice, without ``force``.
    """
    from midl.runs.io import atomic_write_text

    planned: dict[Path, str] = {}
    kept: list[Path] = []
    for block, knob in KNOBS.items():
        grid = search_grid(block)
        found = candidates(runs, scale, grid)
        for search in grid.searches:
            setting = search.removeprefix(SEARCH_PREFIX)
            if setting not in found:
                continue
            best = winner(found[setting], grid, setting)
            path = out / f"{setting}_{block}.yaml"
            if path.exists() and not force:
                had = _chosen(path.read_text(), knob)
                if had != (best.value, best.lr, best.regime):
                    raise TuningError(
                        f"{path} chose {knob}={had[0]:g} lr={had[1]:g} ({had[2]} regime); "
                        f"the runs now choose {knob}={best.value:g} lr={best.lr:g} "
                        f"({best.regime}): pass --force to replace it")
                kept.append(path)
                continue
            planned[path] = winner_yaml(setting, grid, best, found[setting], scale, command)
    if not planned and not kept:
        raise TuningError(f"no complete search run at scale {scale} (configs/experiment/"
                          "regimes_search_*.yaml)")
    result = {atomic_write_text(path, text): "written" for path, text in planned.items()}
    return {**result, **dict.fromkeys(kept, "kept")}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module docstring); exit 2 for bad input."""
    from midl.reporting.runs import collect_runs

    parser = argparse.ArgumentParser(prog="python -m midl.tuning", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--runs", nargs="+", default=None,
                        help="folders of search runs and records (default results/runs/<scale>)")
    parser.add_argument("--out", default=str(CONFIGS / "tuning"))
    parser.add_argument("--force", action="store_true",
                        help="choose again and replace existing winner files")
    args = parser.parse_args(argv)
    folders = args.runs or [f"results/runs/{args.scale}"]
    try:
        runs = collect_runs([f for f in folders if Path(f).is_dir()])
        written = select(runs, args.scale, Path(args.out), args.force,
                         f"python -m midl.tuning --scale {args.scale}")  # no machine paths
    except TuningError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, what in written.items():
        print(f"wrote {path}" if what == "written" else
              f"kept {path} (the runs choose it again; --force rewrites it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
