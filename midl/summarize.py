"""Aggregate any sweep: mean ± std over seeds per group of runs, and their differences.

Usage::

    python -m midl.summarize SWEEP_DIR... [--by KEY,...] [--metrics METRIC,...] [--out DIR]
    python -m midl.train -m +experiment=mnist_mlp block=midl,dropout data.label_noise=0.4 seed=0,1,2
    python -m midl.summarize outputs/mnist_mlp/multirun            # or: make summarize DIR=...
    python -m midl.summarize outputs/mnist_mlp/multirun --by block --metrics test/acc,test/ece

The runs are the folders below the SWEEP_DIRs that Hydra made (``.hydra/overrides.yaml``),
found and read by :mod:`midl.reporting.runs`. Each complete run is described by its
result-relevant settings: the resolved config recorded in its ``metrics.json`` without the
settings that cannot change a result (:func:`midl.runs.provenance.result_config`), and without the
seed (``seed`` and every setting equal to the run's seed in every run, such as
``callbacks.epoch_seed.seed``). Runs are grouped

- by the settings that vary between them (default): a config group whose choice varies
  (``block=midl`` vs ``block=dropout``) is one setting, named by its choice;
- or by ``--by`` (dotted keys or config groups, e.g. ``block,data.label_noise``); then a run
  that differs from its group's configuration in anything else is listed with what differs
  ("differs in ...") and not counted: a group holds one configuration, over seeds only.

Per group and metric: mean, sample standard deviation (ddof = 1), n and the seeds. For every
pair of groups (up to :data:`MAX_PAIRED_GROUPS` groups): the difference of means with its 95%
Welch interval and p-value (``scipy.stats.ttest_ind(equal_var=False)``; no correction for
multiple comparisons).
Failed, interrupted and unreadable runs, and a second run of the same configuration and seed,
are listed, not counted.

Writes ``<out>/summary.md``, ``summary.csv`` and ``summary.png`` (one panel per metric: each
group's mean ± std as a point with an error bar, its runs as dots) atomically; ``--out``
defaults to the first SWEEP_DIR. Prints the Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from midl.extras import objective
from midl.reporting.numbers import fmt
from midl.reporting.runs import Run, RunKey, collect_runs
from midl.reporting.summary import (  # noqa: F401  (re-exported: the summary's types)
    Difference,
    Excluded,
    Group,
    Summary,
    SummaryError,
    value_text,
    welch,
)
from midl.runs.io import atomic_write_text
from midl.runs.provenance import config_differences, result_config
from midl.runs.records import debug_choice

DEFAULT_METRICS = ("test/acc", "test/f1", "test/anr_tau", "test/ece")
MAX_PAIRED_GROUPS = 6  # more groups: no pairwise differences (15 pairs per metric at 6)
ABSENT = "<absent>"  # a setting a run does not have (as midl.runs.provenance writes it)



def find_runs(sweep_dirs: Sequence[str | Path]) -> list[Run]:
    """Every run folder below ``sweep_dirs``: the table runs as
    :func:`midl.reporting.runs.collect_runs` reads them, and any other Hydra run folder
    (``.hydra/overrides.yaml``) read the same way (complete: ``metrics.json`` with test
    metrics; failed: ``error.txt``; else incomplete).

    Raises:
        FileNotFoundError: if a folder does not exist.
    """
    table = {run.path: run for run in collect_runs(list(sweep_dirs))}
    runs: dict[Path, Run] = {}
    for sweep_dir in sweep_dirs:
        for overrides in sorted(Path(sweep_dir).rglob(".hydra/overrides.yaml")):
            path = overrides.parent.parent.resolve()
            if path not in runs:
                runs[path] = table.get(path) or _other_run(path)
    return sorted(runs.values(), key=lambda r: str(r.path))


def _other_run(path: Path) -> Run:
    record: dict[str, Any] = {}
    try:
        loaded = json.loads((path / "metrics.json").read_text())
        record = loaded if isinstance(loaded, dict) else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        pass
    status = ("complete" if record.get("test") else
              "failed" if (path / "error.txt").exists() else "incomplete")
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    key = RunKey(str(config.get("task_name", "")), str((config.get("block") or {})
                                                         .get("_target_", "")),
                 float(data.get("label_noise") or 0.0), int(config.get("seed", -1)),
                 (config.get("scale") or {}).get("name"))
    return Run(path, key, status, record)


def choices(run: Run) -> dict[str, str]:
    """The config-group choices Hydra recorded for the run (``.hydra/hydra.yaml``), for the
    groups that are top-level nodes of the config (``block``, ``data``, ``model``, ...)."""
    path = run.path / ".hydra" / "hydra.yaml"
    try:
        recorded = (yaml.safe_load(path.read_text()) or {})["hydra"]["runtime"]["choices"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}
    return {k: str(v) for k, v in (recorded or {}).items()
            if "/" not in k and k != "hydra" and v is not None}


def _lookup(config: dict[str, Any], key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def _seed_keys(configs: list[dict[str, Any]], varying: set[str]) -> set[str]:
    """Varying settings that equal the run's seed in every run (``seed`` itself and
    interpolations of it)."""
    return {key for key in varying
            if all(_lookup(c, key) == c.get("seed") for c in configs)}


def _under(key: str, node: str) -> bool:
    return key == node or key.startswith(node + ".")


def _value(run_config: dict[str, Any], run_choices: dict[str, str], key: str) -> Any:
    """A grouping key's value: a config group's choice, else the setting (a subtree as is)."""
    if key in run_choices:
        return run_choices[key]
    return _lookup(run_config, key)


Usable = tuple[Run, dict[str, Any], dict[str, str]]  # a run, its result config, its choices


def summarize(runs: list[Run], by: Sequence[str] | None = None,
              metrics: Sequence[str] = DEFAULT_METRICS,
              sweep_dirs: Sequence[str] = ()) -> Summary:
    """Group the complete runs and compute means, stds and pairwise Welch differences.

    Args:
        runs: the runs (e.g. :func:`find_runs`).
        by: grouping keys (dotted settings or config groups); None: the settings that vary.
        metrics: metric names as recorded in ``metrics.json`` (e.g. ``test/acc``).
        sweep_dirs: the folders the runs came from (for the header only).

    Raises:
        SummaryError: no complete run with a recorded config, a ``--by`` key that no run has
            (the message lists the settings that vary), or no metrics.
    """
    if not metrics:
        raise SummaryError("no metrics given: e.g. --metrics test/acc,test/ece")
    excluded: list[Excluded] = []
    usable = _usable(runs, excluded)
    if not usable:
        raise SummaryError(f"no complete run with a recorded config below "
                           f"{', '.join(map(str, sweep_dirs)) or 'the given folders'}"
                           f" ({len(runs)} run folders found)")

    first_config = usable[0][0].record["config"]
    varying = {key for run, _, _ in usable[1:]
               for key, _, _ in config_differences(first_config, run.record["config"])}
    seed_keys = _seed_keys([c for _, c, _ in usable], varying) | {"seed"}
    settings = varying - seed_keys
    by_given = by is not None
    by = _grouping_keys(usable, settings) if by is None else _known_keys(by, usable, settings)

    buckets: dict[str, list[Usable]] = {}
    for item in usable:
        label = {k: _value(item[1], item[2], k) for k in by}
        buckets.setdefault(json.dumps(label, sort_keys=True, default=str), []).append(item)
    groups = [_group(members, by, settings, seed_keys, excluded) for members in buckets.values()]
    for group in groups:
        _collect_values(group, metrics)
    groups.sort(key=lambda g: [_sort_key(g.label[k]) for k in by])
    differences = ([welch(metric, a, b) for i, a in enumerate(groups) for b in groups[i + 1:]
                    for metric in metrics] if len(groups) <= MAX_PAIRED_GROUPS else [])
    return Summary([str(d) for d in sweep_dirs], by, by_given, list(metrics), groups,
                   differences, excluded)


def _usable(runs: list[Run], excluded: list[Excluded]) -> list[Usable]:
    """The complete, non-debug runs with a recorded config; every other run is appended to
    ``excluded`` with the reason."""
    usable: list[Usable] = []
    for run in runs:
        config = run.record.get("config")
        if not run.complete:
            reason = {"failed": "failed (error.txt)"}.get(run.status,
                                                         "incomplete (no test metrics)")
            excluded.append(Excluded(run, reason + (f"; {run.note}" if run.note else "")))
        elif (debug := debug_choice(run.record)
                       or debug_choice({}, {"choices": choices(run)})) is not None:
            excluded.append(Excluded(run, f"a debug run (debug={debug}): never counted"))
        elif not isinstance(config, dict) or not config:
            excluded.append(Excluded(run, "has no resolved config in metrics.json"))
        else:
            usable.append((run, result_config(config), choices(run)))
    return usable


def _known_keys(by: Sequence[str], usable: list[Usable], settings: set[str]) -> list[str]:
    """``by`` as a list, after checking that some run has each key.

    Raises:
        SummaryError: naming the unknown keys and the settings that vary.
    """
    known = {k for _, c, ch in usable for k in _keys(c) | set(ch)}
    unknown = [k for k in by if k not in known]
    if unknown:
        raise SummaryError(f"--by {','.join(unknown)}: no run has such a setting; the "
                           f"settings that vary here: {sorted(settings) or 'none'}")
    return list(by)


def _group(members: list[Usable], by: list[str], settings: set[str], seed_keys: set[str],
           excluded: list[Excluded]) -> Group:
    """One group's runs: those of its most common configuration (over the settings not in
    ``by``), one per seed; the others are appended to ``excluded`` with the reason."""
    _, config0, choices0 = members[0]
    group = Group({k: _value(config0, choices0, k) for k in by})
    rest = sorted(k for k in settings if k not in by)  # under a grouped config group too
    signature = [json.dumps([_lookup(c, k) for k in rest], default=str) for _, c, _ in members]
    reference = max(signature, key=lambda s: (signature.count(s), -signature.index(s)))
    ref_config = members[signature.index(reference)][0].record["config"]
    seen: dict[int, Run] = {}
    for (run, _, _), sig in zip(members, signature, strict=True):
        seed = run.record["config"].get("seed")
        if sig != reference:
            diffs = [(k, a, b) for k, a, b in config_differences(run.record["config"],
                                                                 ref_config)
                     if k not in seed_keys and k not in by]
            excluded.append(Excluded(run, "differs in " + ", ".join(
                f"{k}={value_text(a)} (its group: {value_text(b)})" for k, a, b in diffs)
                + f" from group {group.name}"))
        elif seed in seen:
            excluded.append(Excluded(run, f"the same configuration and seed ({seed}) as "
                                          f"{seen[seed].path}: counted once"))
        else:
            seen[seed] = run
            group.runs.append(run)
    return group


def _collect_values(group: Group, metrics: Sequence[str]) -> None:
    """Fill ``group.seeds`` and ``group.values`` per metric, in seed order; a run without the
    metric is left out of that metric's values."""
    for metric in metrics:
        pairs = []
        for run in group.runs:
            try:
                value = objective(run.record, metric)
            except KeyError:
                continue
            pairs.append((int(run.record["config"].get("seed", -1)), value))
        pairs.sort()
        group.seeds[metric] = [s for s, _ in pairs]
        group.values[metric] = [v for _, v in pairs]


def _keys(config: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in config.items():
        out.add(prefix + str(key))
        if isinstance(value, dict):
            out |= _keys(value, f"{prefix}{key}.")
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, value_text(value))


def _grouping_keys(usable: list[Usable], settings: set[str]) -> list[str]:
    """The grouping keys when none are given: a config group whose choice varies stands for
    its settings; settings under it that vary within one choice are kept too."""
    choice_values: dict[str, set[str]] = {}
    for _, _, run_choices in usable:
        for group, choice in run_choices.items():
            choice_values.setdefault(group, set()).add(choice)
    nodes = sorted(g for g, v in choice_values.items()
                   if len(v) > 1 and any(_under(k, g) for k in settings))
    keys: list[str] = list(nodes)
    for key in sorted(settings):
        node = next((n for n in nodes if _under(key, n)), None)
        if node is None:
            keys.append(key)
            continue
        by_choice: dict[str, set[str]] = {}
        for _, config, run_choices in usable:
            by_choice.setdefault(run_choices.get(node, ""), set()).add(
                json.dumps(_lookup(config, key), default=str))
        if any(len(v) > 1 for v in by_choice.values()):
            keys.append(key)
    return keys



def cell(group: Group, metric: str) -> str:
    """``mean ± std`` (``mean (n=1)``, ``–`` without values; ``(n=k)`` added when fewer
    values than the group has runs)."""
    values = group.values.get(metric) or []
    if not values:
        return "–"
    std = group.std(metric)
    text = fmt(group.mean(metric), 4) + (f" ± {fmt(std, 4)}" if std is not None else "")
    return text + (f" (n={len(values)})" if len(values) != len(group.runs) else "")


def markdown(summary: Summary, command: str) -> str:
    """The summary as Markdown: header, groups table, differences, runs not counted."""
    how = ("given with --by" if summary.by_given
           else "the settings that vary between the runs")
    counted = sum(len(g.runs) for g in summary.groups)
    lines = ["# Summary", "",
             f"- Command: `{command}`",
             f"- Runs: {counted} counted in {len(summary.groups)} group(s); "
             f"{len(summary.excluded)} not counted (listed below)",
             f"- Grouped by: {', '.join(summary.by) or 'nothing (one configuration)'} ({how})",
             "- Cells: mean ± sample std (ddof = 1) over the runs' seeds, as recorded in "
             "metrics.json (fractions, not percent)", ""]
    by = summary.by
    lines.append("| " + " | ".join([*by, "n", "seeds", *summary.metrics]) + " |")
    lines.append("|" + "---|" * (len(by) + 2 + len(summary.metrics)))
    for group in summary.groups:
        seeds = sorted({int(r.record["config"].get("seed", -1)) for r in group.runs})
        lines.append("| " + " | ".join([*(value_text(group.label[k]) for k in by),
                                        str(len(group.runs)), ",".join(map(str, seeds)),
                                        *(cell(group, m) for m in summary.metrics)]) + " |")
    if len(summary.groups) > MAX_PAIRED_GROUPS:
        lines += ["", f"No pairwise differences: {len(summary.groups)} groups (more than "
                  f"{MAX_PAIRED_GROUPS}); compare fewer with --by or a narrower sweep folder."]
    if summary.differences:
        lines += ["", "Differences between groups (second − first) with the 95% Welch "
                  "interval (scipy.stats.ttest_ind, equal_var=False; no correction for "
                  "multiple comparisons):", "",
                  "| metric | comparison | Δ mean | 95% interval | p |", "|---|---|---|---|---|"]
        for d in summary.differences:
            interval = ("n/a (n < 2 or no variance)" if d.low is None else
                        f"[{fmt(d.low, 4, signed=True)}, {fmt(d.high, 4, signed=True)}]")
            p = "–" if d.p_value is None else f"{d.p_value:.3g}"
            lines.append(f"| {d.metric} | {d.second.name} − {d.first.name} | "
                         f"{fmt(d.diff, 4, signed=True)} | {interval} | {p} |")
    if summary.excluded:
        lines += ["", "Not counted:"]
        lines += [f"- `{e.run.path}`: {e.reason}" for e in summary.excluded]
    return "\n".join(lines) + "\n"


def csv_text(summary: Summary) -> str:
    """Long-format CSV, unrounded: a ``mean`` line per group and metric, a ``difference``
    line per pair and metric (``value`` = second − first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "group", "versus", "metric", "value", "std", "ci95_low",
                     "ci95_high", "p_value", "n", "seeds"])
    num = lambda v: "" if v is None else repr(float(v))  # noqa: E731
    for group in summary.groups:
        for metric in summary.metrics:
            writer.writerow(["mean", group.name, "", metric, num(group.mean(metric)),
                             num(group.std(metric)), "", "", "",
                             len(group.values.get(metric) or []),
                             " ".join(map(str, group.seeds.get(metric) or []))])
    for d in summary.differences:
        writer.writerow(["difference", d.second.name, d.first.name, d.metric, num(d.diff),
                         "", num(d.low), num(d.high), num(d.p_value),
                         f"{len(d.second.values.get(d.metric) or [])} vs "
                         f"{len(d.first.values.get(d.metric) or [])}", ""])
    return out.getvalue()


def write_summary(summary: Summary, out: str | Path, command: str) -> list[Path]:
    """Write ``summary.md``, ``summary.csv`` and ``summary.png`` into ``out`` atomically."""
    from midl.reporting.plots import plot_summary

    out = Path(out)
    return [atomic_write_text(out / "summary.md", markdown(summary, command)),
            atomic_write_text(out / "summary.csv", csv_text(summary)),
            plot_summary(summary, out / "summary.png")]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status (2 on bad input)."""
    parser = argparse.ArgumentParser(prog="python -m midl.summarize",
                                     description="Mean ± std per group of runs of any sweep, "
                                                 "and their differences (95% Welch interval).")
    parser.add_argument("sweep_dirs", nargs="+", help="folders holding the runs")
    parser.add_argument("--by", help="comma-separated grouping keys (dotted settings or config "
                                     "groups, e.g. block,data.label_noise); default: the "
                                     "settings that vary between the runs")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                        help=f"comma-separated metrics (default {','.join(DEFAULT_METRICS)})")
    parser.add_argument("--out", help="folder for summary.{md,csv,png} (default: the first "
                                      "sweep folder)")
    args = parser.parse_args(argv)
    command = "python -m midl.summarize " + " ".join(sys.argv[1:] if argv is None else argv)
    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else None
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        runs = find_runs(args.sweep_dirs)
        summary = summarize(runs, by, metrics, args.sweep_dirs)
    except (FileNotFoundError, SummaryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    paths = write_summary(summary, args.out or args.sweep_dirs[0], command)
    print(markdown(summary, command))
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
