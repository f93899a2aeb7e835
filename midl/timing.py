"""Interleaved latency sessions of a table's models: the claims audit's latency ratios.

    python -m midl.timing --scale cpu [--tables table5 table10 transformer] [--sessions 10]
                          [--force]
    make latency SCALE=cpu

Per-run latency analyses (``midl.evaluate analysis=[latency]``) time each trained model in a
session of its own, Dropout's seeds first and then MID-L's, so drift of a shared machine is
confounded with the arm. Here every model of a table (Tables 5 and 10, the Transformer table;
each row's block at each of the scale's efficiency seeds) is timed in one process, in
alternating order across sessions (ABAB:
:func:`midl.metrics.interleaved.session_orders`), at the batch size of the table's latency
column, with the warm-up, repeats and thread count of ``configs/evaluate.yaml``'s ``latency``.
The claims audit (:mod:`midl.reporting.claims.judge`) then judges each latency claim on the
per-session ratio of the arms' medians where this file has both arms, else on the per-run
medians.

The models are built from their run configs with freshly initialised weights (``seed``; the
trained checkpoints are not kept): the work of a forward pass is set by the architecture and
the batch (MID-L's top-k and both of its paths run whatever the scores; a Switch layer routes
each sample to one expert whichever it is); effects of the values themselves (denormals, a
Switch layer's load balance at batch 64) are not measured. Inputs are the first test images of
the setting's data, transformed as the evaluation transforms them. Run it alone on the
machine: other jobs on the cores shift every session.

Writes ``<out>/<scale>/latency_sessions.json`` atomically, each table's sessions with their own
provenance; an existing file is replaced only with ``--force``, or with ``--update`` only the
given tables' sessions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from midl.metrics.interleaved import FILE, FORMAT, SessionsError

BATCH_SIZES = {"table5": 64, "table10": 1, "transformer": 1}  # each table's latency_cpu batch


def table_models(table: str, scale: str, seeds: Sequence[int],
                 overrides: Sequence[str] = ()) -> dict[str, tuple[Any, Any]]:
    """The models a table's latency column times: ``{"<block>/seed=<s>": (net, inputs)}`` for
    each row's block and each seed, built from ``configs/train.yaml`` composed with the row's
    setting, ``+scale=<scale>``, ``block=<block>``, ``seed=<s>`` and ``overrides``.

    Returns:
        nets in eval mode with weights initialised under ``torch.manual_seed(s)``, and inputs
        (B, ...) of the table's batch size B (:data:`BATCH_SIZES`) from the setting's test set.

    Raises:
        SessionsError: for a table without a CPU latency column here.
    """
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from midl.evaluation import CONFIG_DIR
    from midl.factory import build
    from midl.reporting.tables import TABLES

    if table not in BATCH_SIZES:
        raise SessionsError(f"unknown table {table!r}; allowed: {sorted(BATCH_SIZES)}")
    batch = BATCH_SIZES[table]
    rows = list(dict.fromkeys((row.setting, row.block) for row in TABLES[table].rows))
    inputs_of: dict[str, Any] = {}
    models: dict[str, tuple[Any, Any]] = {}
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        for setting, block in rows:
            for seed in seeds:
                cfg = compose("train", overrides=[f"+experiment/setting={setting}",
                                                  f"+scale={scale}", f"block={block}",
                                                  f"seed={seed}", *overrides])
                torch.manual_seed(seed)
                datamodule, module = build(cfg)
                if setting not in inputs_of:
                    inputs_of[setting] = _first_inputs(datamodule, batch)
                models[f"{block}/seed={seed}"] = (module.net.eval(), inputs_of[setting])
    GlobalHydra.instance().clear()
    return models


def _first_inputs(datamodule: Any, batch: int) -> Any:
    """``batch`` test inputs as the evaluation feeds them (its transform applied)."""
    import torch

    x, _ = next(iter(datamodule.test_dataloader()))
    transform = getattr(datamodule, "transform", None)
    if callable(transform):
        x = transform(x, train=False)
    repeats = -(-batch // len(x))
    return torch.cat([x] * repeats)[:batch]


def run_sessions(models: dict[str, tuple[Any, Any]], sessions: int, warmup: int, repeats: int,
                 num_threads: int | None) -> dict[str, Any]:
    """Time ``models`` (name -> (net, inputs)) in interleaved sessions
    (:func:`midl.metrics.interleaved.interleaved_sessions`): per model and session the median
    of ``repeats`` forward passes (ms) after ``warmup`` untimed ones, on ``num_threads`` torch
    threads (None: the current count)."""
    from midl.metrics.interleaved import interleaved_sessions
    from midl.metrics.latency import measure_latency

    def time_one(item: tuple[Any, Any]) -> float:
        net, inputs = item
        return measure_latency(net, inputs, warmup, repeats, num_threads)["median_ms"]

    return interleaved_sessions(models, time_one, sessions)


def latency_settings() -> dict[str, Any]:
    """``configs/evaluate.yaml``'s ``latency`` section (warmup, repeats, num_threads)."""
    import yaml

    from midl.evaluation import CONFIG_DIR

    return yaml.safe_load((CONFIG_DIR / "evaluate.yaml").read_text())["latency"]


def measure(scale: str, tables: Sequence[str], sessions: int,
            overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Every table's interleaved sessions at ``scale`` (its ``efficiency_seeds``), each with
    the provenance a result carries (command, commit, hardware, date, timing settings)."""
    import torch

    from midl.reporting.scales import analysis_seeds, parse_seeds, scale_settings
    from midl.runs.provenance import git_commit, hardware, typed_command

    settings = scale_settings(scale)
    seeds = analysis_seeds(settings).get("efficiency") or parse_seeds(settings["seeds"])
    latency = latency_settings()
    threads = latency.get("num_threads")
    out: dict[str, Any] = {"format": FORMAT, "scale": scale, "tables": {}}
    for table in tables:
        models = table_models(table, scale, seeds, overrides)
        record = run_sessions(models, sessions, latency["warmup"], latency["repeats"], threads)
        out["tables"][table] = {
            "command": typed_command(), "commit": git_commit(), "hardware": hardware(),
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "warmup": latency["warmup"], "repeats": latency["repeats"],
            "num_threads": threads if threads is not None else torch.get_num_threads(),
            "seeds": list(seeds), "weights": "freshly initialised per seed",
            "batch_size": BATCH_SIZES[table], "models": list(models), **record}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module docstring); exit 2 for bad input."""
    from midl.metrics.interleaved import load_sessions
    from midl.runs.io import atomic_write_json

    parser = argparse.ArgumentParser(prog="python -m midl.timing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--tables", nargs="+", default=sorted(BATCH_SIZES),
                        choices=sorted(BATCH_SIZES))
    parser.add_argument("--sessions", type=int, default=10, help="sessions per model (>= 5)")
    parser.add_argument("--out", default="results", help="results root (default results)")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--force", action="store_true", help="replace an existing file")
    how.add_argument("--update", action="store_true",
                     help="replace only the given tables' sessions of an existing file")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides of every model")
    args = parser.parse_args(argv)
    path = Path(args.out) / args.scale / FILE
    try:
        if path.exists() and not (args.force or args.update):
            raise SessionsError(f"{path} exists: pass --force to replace it or --update to "
                                "replace the given tables' sessions")
        kept = (load_sessions(path) or {}).get("tables", {}) if args.update else {}
        result = measure(args.scale, args.tables, args.sessions, args.overrides)
    except (SessionsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result["tables"] = {**kept, **result["tables"]}
    atomic_write_json(path, result)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
