"""Write a paper table from sweep outputs, side by side with the paper's numbers.

Usage::

    python -m midl.report TABLE SWEEP_DIR... [--scale S] [--out results] [--force]
    python -m midl.report table4 outputs/grid_cifar10_cnn/multirun --scale cpu
    python -m midl.report table8 outputs/grid_*/multirun --scale cpu --force
    python -m midl.report figures outputs/grid_*/multirun --scale smoke

TABLE is one of table2 ... table12, baselines (every Section 5.3 baseline on MNIST and
CIFAR-10, not in the paper) or figures. The runs are found below the SWEEP_DIRs (folders with
``.hydra/overrides.yaml``); only complete runs (``metrics.json`` with test metrics) of the
scale's seeds are counted, and failed (``error.txt``), interrupted and missing runs are listed
under the table. The paper's numbers come from ``results/paper_reference.yaml``.

Writes ``<out>/<scale>/<TABLE>.md``, ``.csv``, ``.tex`` and ``.png`` atomically (the picture:
one panel per column, per row our mean ± std with n next to the paper's number; Table 12, the
hyperparameters, has none; figures: the PNGs and ``figures.md``). An existing file is never
replaced silently: the command refuses (exit 2) unless ``--force`` is given; the Makefile's
table targets pass ``--force`` because regenerating is their purpose (the results are tracked
in git, so a change shows in the diff).

Units: accuracy, F1, ANR, ECE, activation frequency in percent (the paper's); FLOPs in
millions per sample; latency in ms; memory in MB; SMI in nats. Columns that cannot be measured
here (GPU latency on a CPU machine) read ``n/a (no GPU)``; nothing is ever filled in.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from midl.data import is_stand_in
from midl.figures import (
    BLOCK_NAMES,
    class_names,
    plot_smi_vs_frequency,
    plot_tsne_panels,
    run_title,
)
from midl.reporting.plots import plot_table
from midl.reporting.render import bookkeeping, build_table, csv_text, latex, markdown, shown
from midl.reporting.runs import DuplicateRunError, Run, collect_runs, data_caveat
from midl.reporting.scales import (
    ANALYSIS_KEYS,
    ScaleError,
    analysis_seeds,
    parse_seeds,
    scale_settings,
)
from midl.reporting.tables import FIGURES, TABLES, table_names
from midl.reporting.targets import check_targets
from midl.runs.io import atomic_write_text
from midl.runs.provenance import commit_text, git_commit, hardware_text

ROOT = Path(__file__).resolve().parent.parent
PAPER_REFERENCE = ROOT / "results" / "paper_reference.yaml"


class ReportError(RuntimeError):
    """The report cannot be written (no runs, ambiguous scale, file exists without --force)."""


def load_paper(path: str | Path = PAPER_REFERENCE) -> dict[str, Any]:
    """The paper's tables (``results/paper_reference.yaml``) as a dict."""
    return yaml.safe_load(Path(path).read_text())


def infer_scale(runs: list[Run]) -> str:
    """The one scale of ``runs``.

    Raises:
        ReportError: no runs, or runs of several scales (pass --scale).
    """
    scales = sorted({str(r.key.scale) for r in runs})
    if len(scales) != 1:
        raise ReportError(f"runs of scales {scales} found: pass --scale" if scales
                          else "no runs found below the given folders")
    return scales[0]


REPORT_CODE = ("midl/report.py", "midl/reporting", "results/paper_reference.yaml")


def git_state() -> str:
    """``<commit>`` (12 hex digits) that last changed the report's code and the paper's
    numbers (:data:`REPORT_CODE`), with ``+dirty`` if they have uncommitted changes (see
    :func:`midl.runs.provenance.git_commit`): the same for every commit that leaves them alone, so
    ``make report`` regenerates a table byte for byte from the same records."""
    return commit_text(git_commit(ROOT, REPORT_CODE))


def _distinct(runs: list[Run], get) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        try:
            seen[str(get(run))] = None
        except (KeyError, TypeError):
            pass
    return list(seen)


# scale settings that concern one dataset or backbone only (a token of the setting names)
_SETTING_SCOPE = {"imdb_max_length": "imdb", "imdb_truncation_side": "imdb",
                  "lstm_hidden_dim": "lstm",
                  "cifar10c_corruptions": "cifar10", "channels_last": "cnn"}


def shown_settings(settings: dict[str, Any], setting_names: Sequence[str] | None
                   ) -> dict[str, Any]:
    """The scale settings a table's header prints: with ``setting_names`` (e.g.
    ``["cifar10_cnn"]``), per-setting, per-dataset and per-backbone entries (``epochs``,
    ``targets``, ``train_size``, ``precision``, ...) only for the table's settings, their
    datasets and backbones (the name's ``_``-separated parts), and settings that concern
    another dataset or backbone left out; all of them with ``None``. ``name`` is never shown."""
    if setting_names is None:
        return {k: v for k, v in settings.items() if k != "name"}
    tokens = {part for name in setting_names for part in (name, *name.split("_"))}
    shown: dict[str, Any] = {}
    for key, value in settings.items():
        scope = _SETTING_SCOPE.get(key)
        if key == "name" or (scope is not None and scope not in tokens):
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in tokens}
            if not value:
                continue
        shown[key] = value
    return shown


def header_lines(scale: str, settings: dict[str, Any], counted: list[Run],
                 command: str | None, setting_names: Sequence[str] | None = None
                 ) -> list[str]:
    """Header: scale and its settings (those of ``setting_names`` only, see
    :func:`shown_settings`), commits, hardware, total wall time, commands."""
    wall = sum(float(r.record.get("wall_time_s", 0.0)) for r in counted)
    hardware = _distinct(counted, lambda r: hardware_text(r.record["hardware"]))
    commits = _distinct(counted, lambda r: commit_text(r.record["commit"]))
    sweeps = _distinct(counted, lambda r: _sweep_arguments(r.record["command"]))
    data_notes = _data_notes(counted)
    lines = [
        f"- Scale: `{scale}` (configs/scale/{scale}.yaml): " + "; ".join(
            f"{k} {v}" for k, v in shown_settings(settings, setting_names).items())
        + " (train_size null = the whole split)",
        f"- Report code: `{git_state()}`; run commits: "
        f"{', '.join(f'`{c}`' for c in commits) or 'none'}",
        f"- Hardware: {'; '.join(hardware) or 'unknown'}",
        f"- Total training wall time of the counted runs: {wall:.0f} s ({wall / 3600:.2f} h; "
        f"analyses not included{_undercount_note(counted)})",
        f"- Command: `{command or 'python -m midl.report ' + ' '.join(sys.argv[1:])}`",
        f"- Sweeps: {', '.join(f'`python -m midl.train {s}`' for s in sweeps) or 'none'}",
    ]
    lines += [f"- Data: {n}" for n in data_notes]
    def analysis_settings(scale_node: dict[str, Any]) -> str:
        return json.dumps({k: scale_node.get(k) for k in ANALYSIS_KEYS}, sort_keys=True)

    recorded = _distinct(counted, lambda r: analysis_settings(r.record["config"]["scale"]))
    if recorded and recorded != [analysis_settings(settings)]:
        lines.append("- WARNING: the counted runs' analyses were made with other scale "
                     f"settings than configs/scale/{scale}.yaml now holds: "
                     f"{'; '.join(recorded)}")
    return lines


def _sweep_arguments(command: str) -> str:
    """The arguments of a training command, recorded as typed (``python -m midl.train -m
    ...``) or, by older code, with the module's file (``/.../midl/train.py -m ...``)."""
    for program in ("python -m midl.train", "midl/train.py"):
        if program in command:
            return command.split(program, 1)[-1].strip()
    return command.strip()


def _undercount_note(runs: list[Run]) -> str:
    """``; N resumed runs ...`` for resumed records written before ``wall_time_s`` summed every
    process of a run (no ``wall_time_process_s``): their earlier processes are not counted."""
    partial = sum(1 for r in runs if r.record.get("resumed_from")
                  and "wall_time_process_s" not in r.record)
    if not partial:
        return ""
    runs_text = "1 resumed run" if partial == 1 else f"{partial} resumed runs"
    return (f"; {runs_text} counted with the time of the last process only (recorded before "
            "midl.train summed all of a run's processes)")


def _data_notes(runs: list[Run]) -> list[str]:
    notes = []
    for run in runs:
        if is_stand_in(run.record.get("data")):
            notes.append("SVHN rows use a generated fixture in the SVHN .mat layout "
                         "(MNIST digits coloured and padded to 32x32; "
                         "scripts/make_svhn_fixture.py), NOT SVHN: their numbers say nothing "
                         "about SVHN, and no difference to the paper is taken.")
            break
    sizes: dict[str, dict[str, None]] = {}  # dataset -> its distinct splits, in run order
    for run in runs:
        data = run.record.get("data") or {}
        split = data.get("sizes")
        if data.get("name") and isinstance(split, dict):
            text = f"{split.get('train')}/{split.get('val')}/{split.get('test')}"
            sizes.setdefault(data["name"], {})[text] = None
    if sizes:  # e.g. CIFAR-10 at 45,000 and at 20 images per class (Table 12): both shown
        notes.append("split sizes per dataset (train/val/test): " + "; ".join(
            f"{name} {' and '.join(splits)}" for name, splits in sorted(sizes.items())))
    return notes + _partial_file_notes(runs)


def _partial_file_notes(runs: list[Run]) -> list[str]:
    """A note per dataset whose files held fewer samples than the published dataset (the
    CIFAR-100 subset here: :func:`midl.reporting.runs.data_caveat` is ``"subset"``)."""
    from midl.data import PUBLISHED_SIZES

    partial: dict[str, tuple[int, int, dict[str, int]]] = {}
    for run in runs:
        data = run.record.get("data") or {}
        if data_caveat(data) != "subset":
            continue
        split = data["sizes"]
        partial[data["name"]] = (int(split.get("train") or 0) + int(split.get("val") or 0),
                                 int(split.get("test") or 0), PUBLISHED_SIZES[data["name"]])
    return [f"{name}: the data files hold {train:,} of its {published['train']:,} training and "
            f"{test:,} of its {published['test']:,} test samples (a subset of the published "
            f"dataset): its rows check the pipeline and are not evidence about {name}; no "
            "difference to the paper is taken."
            for name, (train, test, published) in sorted(partial.items())]


def _write(files: dict[Path, str], force: bool) -> list[Path]:
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise ReportError(f"{', '.join(map(str, existing))} exist(s): pass --force to replace")
    return [atomic_write_text(path, text) for path, text in files.items()]


def report_table(name: str, runs: list[Run], scale: str, out: Path, force: bool,
                 command: str | None = None, paper: dict[str, Any] | None = None
                 ) -> list[Path]:
    """Write ``<out>/<scale>/<name>.{md,csv,tex,png}`` for a table of :data:`TABLES` (the
    PNG: :func:`midl.reporting.plots.plot_table`, linked from the Markdown).

    Raises:
        ReportError: if a file exists and not ``force``.
    """
    spec = TABLES[name]
    settings = scale_settings(scale)
    result = build_table(spec, runs, parse_seeds(settings["seeds"]), scale,
                         paper if paper is not None else load_paper(), analysis_seeds(settings))
    setting_names = [row.setting for row in spec.rows]
    header = header_lines(scale, settings, result.counted, command, setting_names)
    header += [check.line() for check in check_targets(
        setting_names, settings.get("targets"), runs,
        parse_seeds(settings["seeds"]), scale)]
    folder = out / scale
    picture = folder / f"{name}.png"
    if picture.exists() and not force:
        raise ReportError(f"{picture} exists: pass --force to replace")
    written = _write({folder / f"{name}.md": markdown(result, header)
                      + f"\n![{spec.title}]({picture.name})\n",
                      folder / f"{name}.csv": csv_text(result, header),
                      folder / f"{name}.tex": latex(result, header)}, force)
    stand_in = any(is_stand_in(r.record.get("data")) for r in result.counted)
    title = f"{spec.title} ({scale} scale)" + (
        "\nSVHN rows: a generated stand-in (MNIST digits in the SVHN format), not SVHN"
        if stand_in else "")
    return [*written, plot_table(result, picture, title)]


TABLE12_KEYS = (  # (paper key, label, how to read ours from a run's resolved config)
    ("optimizer", "Optimizer", lambda c: c["optimizer"]["_target_"].rsplit(".", 1)[-1]),
    ("learning_rate", "Learning rate", lambda c: c["optimizer"]["lr"]),
    ("batch_size", "Batch size", lambda c: c["data"]["batch_size"]),
    ("top_k_sparsity", "Top-k sparsity (MID-L)", lambda c: c["block"]["top_k"]),
    ("dropout_after_alpha", "Dropout after alpha (MID-L)", lambda c: c["block"]["gate_dropout"]),
)


def report_table12(runs: list[Run], scale: str, out: Path, force: bool,
                   command: str | None = None, paper: dict[str, Any] | None = None
                   ) -> list[Path]:
    """Table 12 (hyperparameters) from the resolved configs of the complete MID-L runs.

    Raises:
        ReportError: no complete MID-L run of the scale, or a file exists and not ``force``.
    """
    paper = (paper if paper is not None else load_paper())["table12_hyperparameters"]
    settings = scale_settings(scale)
    midl_runs = [r for r in runs if r.complete and r.key.scale == scale and r.key.block == "midl"]
    if not midl_runs:
        raise ReportError(f"no complete MID-L run of scale {scale} below the given folders")
    rows = []
    for key, label, get in TABLE12_KEYS:
        ours = _distinct(midl_runs, lambda r, get=get: get(r.record["config"]))
        same = "yes" if ours == [str(paper[key])] else "no"
        rows.append((label, ", ".join(ours), str(paper[key]), same))
    groups: dict[tuple, set] = {}
    for run in (r for r in runs if r.complete and r.key.scale == scale
                and r.key.tuning != "search"):  # a search runs one selection seed
        groups.setdefault((run.key.setting, run.key.block, run.key.noise, run.key.regime,
                           run.key.tuning), set()).add(run.key.seed)
    counts = sorted({len(s) for s in groups.values()})
    expected = len(parse_seeds(settings["seeds"]))
    rows.append(("Runs per result (seeds)", f"{expected} expected; {counts} found",
                 str(paper["runs_per_result"]),
                 "yes" if expected == paper["runs_per_result"] else "no"))
    header = header_lines(scale, settings, midl_runs, command)
    md = ["# Table 12: hyperparameters", "", *header, "",
          f"Ours: the distinct values in the resolved configs of {len(midl_runs)} complete "
          "MID-L runs (and all runs for the seed count).", "",
          "| Hyperparameter | Ours | Paper | Same |", "|---|---|---|---|",
          *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows], "",
          "Not in the paper (ours): epochs, training subsets and validation sizes are the "
          "scale's (header); backbones in configs/model/ and configs/experiment/setting/."]
    csv_lines = [*[f"# {h}" for h in header], "hyperparameter,ours,paper,same",
                 *[",".join(f'"{x}"' for x in row) for row in rows]]
    tex = [*[f"% {h}" for h in header], "\\begin{tabular}{llll}", "\\toprule",
           "Hyperparameter & Ours & Paper & Same \\\\", "\\midrule",
           *[" & ".join(x.replace("_", "\\_") for x in row) + " \\\\" for row in rows],
           "\\bottomrule", "\\end{tabular}"]
    folder = out / scale
    return _write({folder / "table12.md": "\n".join(md) + "\n",
                   folder / "table12.csv": "\n".join(csv_lines) + "\n",
                   folder / "table12.tex": "\n".join(tex) + "\n"}, force)


def _figure_panels(figure: str, label: str, setting: str, eval_name: str, filename: str,
                   index: dict[tuple, Run], target: Path) -> tuple[Any, str]:
    """How to make one figure file: ``(draw, line)``, where ``draw`` is a callable writing
    ``target``, a source PNG to copy, or None (missing), and ``line`` its figures.md entry."""
    run = index.get((setting, "midl", 0.0, 0))
    source = run.path / filename if run is not None else None
    missing = (f"- {figure} {label}: MISSING (needs `midl.evaluate analysis=[{eval_name}] "
               f"eval_name={eval_name}` on the seed-0 MID-L run of {setting})")
    if source is None or not (source.exists() or run.is_record):  # a record: no PNG, data
        return None, missing
    dataset = (run.record.get("data") or {}).get("name") or label
    config = run.record.get("config") or {}
    link = f"![{figure} {label}]({target.name})"
    if eval_name == "smi":
        smi = (run.analysis("smi") or {}).get("smi", {})
        rho = smi.get("mi_frequency_spearman")
        extra = (f"; SMI {smi.get('embedding', {}).get('smi', float('nan')):.4f} nats, "
                 f"Spearman(MI, frequency) {'n/a' if rho is None else format(rho, '.3f')}")
        if smi.get("per_neuron_mi") and smi.get("activation_frequency"):
            title = (f"Figure 3: MI vs activation frequency\n"
                     f"{run_title(config, dataset, 'midl', run.record.get('data'))}, seed 0")
            return (lambda: plot_smi_vs_frequency(smi["per_neuron_mi"],
                                                  smi["activation_frequency"], target, title),
                    f"- {figure} {label}: {link} (from `{shown(run.path)}`{extra})")
        return ((None, missing) if run.is_record else
                (source, f"- {figure} {label}: {link} (from `{shown(source)}`{extra})"))
    # Figure 4: MID-L next to its Dropout baseline, redrawn from the saved t-SNE points
    baseline = index.get((setting, "dropout", 0.0, 0))
    panels, notes = [], []
    for block, member in (("midl", run), ("dropout", baseline)):
        points = member.tsne_points(eval_name, filename) if member is not None else None
        if points is None:
            notes.append(f"{BLOCK_NAMES[block]} panel missing (needs `midl.evaluate "
                         f"analysis=[tsne] eval_name=tsne` on the seed-0 {block} run of "
                         f"{setting})")
            continue
        panels.append((run_title(member.record.get("config") or {}, dataset, block,
                                 member.record.get("data")), *points))
    note = f"; {'; '.join(notes)}" if notes else ""
    if not panels:
        return ((None, missing) if run.is_record else
                (source, f"- {figure} {label}: {link} (from `{shown(source)}`{note})"))
    title = "Figure 4: t-SNE of the last-layer embeddings (seed 0, test subsample)"
    return (lambda: plot_tsne_panels(panels, target, title, class_names(dataset)),
            f"- {figure} {label}: {link} (from `{shown(run.path)}`{note})")


def report_figures(runs: list[Run], scale: str, out: Path, force: bool,
                   command: str | None = None) -> list[Path]:
    """Write Figures 3 and 4 into ``<out>/<scale>/`` and ``figures.md`` listing them and what
    is missing. Figure 3 is redrawn from the seed-0 MID-L run's ``analysis.smi`` (per-neuron
    MI and activation frequency, their Spearman correlation in the plot); Figure 4 puts the
    t-SNE of the seed-0 MID-L run next to its Dropout baseline's, redrawn from the points
    ``midl.evaluate`` saved. Titles name dataset, backbone and block, and say when the data
    is a generated stand-in. A run evaluated before the points were saved gives its PNG as
    drawn then.

    Raises:
        ReportError: if a file exists and not ``force``.
    """
    folder = out / scale
    index = {(r.key.setting, r.key.block, r.key.noise, r.key.seed): r for r in runs
             if r.key.scale == scale and r.complete and r.key.regime == "standard"
             and r.key.tuning == "none"}
    settings = list(dict.fromkeys(setting for panels in FIGURES.values()
                                  for _, setting, _, _ in panels))
    # the header describes the runs drawn: each setting's seed-0 MID-L run (Figures 3, 4)
    # and its Dropout baseline (Figure 4), not every run of the scale
    drawn = [index[key] for key in ((setting, block, 0.0, 0) for setting in settings
                                    for block in ("midl", "dropout")) if key in index]
    lines = ["# Figures 3 and 4", "",
             *header_lines(scale, scale_settings(scale), drawn, command, settings), ""]
    makers: dict[Path, Any] = {}
    for figure, panels in FIGURES.items():
        for label, setting, eval_name, filename in panels:
            target = folder / f"{figure}_{setting.split('_')[0]}.png"
            maker, line = _figure_panels(figure, label, setting, eval_name, filename, index,
                                         target)
            lines.append(line)
            if maker is not None:
                makers[target] = maker
    lines += ["", "Figure 3: per-neuron MI with the labels vs activation frequency of the "
              "MID-L neurons; Figure 4: t-SNE of the last-layer embeddings (seeded subsample), "
              "MID-L next to the Dropout baseline.",
              "The paper shows both as qualitative evidence; no number is compared."]
    existing = [p for p in [*makers, folder / "figures.md"] if p.exists()]
    if existing and not force:
        raise ReportError(f"{', '.join(map(str, existing))} exist(s): pass --force to replace")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for target, maker in makers.items():
        if callable(maker):
            written.append(maker())
            continue
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(maker, tmp)
        tmp.replace(target)
        written.append(target)
    written.append(atomic_write_text(folder / "figures.md", "\n".join(lines) + "\n"))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m midl.report",
                                     description="Write a paper table next to the paper's.")
    parser.add_argument("table", choices=table_names())
    parser.add_argument("sweep_dirs", nargs="+", help="folders holding the table's runs")
    parser.add_argument("--scale", help="smoke | cpu | paper (default: the runs' one scale)")
    parser.add_argument("--out", default=str(ROOT / "results"), help="results root")
    parser.add_argument("--force", action="store_true", help="replace existing result files")
    parser.add_argument("--command", help="the command to print in the header "
                                          "(default: this one)")
    args = parser.parse_args(argv)
    if args.command is None:
        args.command = "python -m midl.report " + " ".join(
            sys.argv[1:] if argv is None else list(argv))
    dirs = [d for d in args.sweep_dirs if Path(d).is_dir()]
    for d in sorted(set(args.sweep_dirs) - set(dirs)):
        print(f"note: {d} does not exist (no run of it yet)", file=sys.stderr)
    try:
        runs = collect_runs(dirs)
        scale = args.scale or infer_scale(runs)
        out = Path(args.out)
        if args.table == "table12":
            paths = report_table12(runs, scale, out, args.force, args.command)
        elif args.table == "figures":
            paths = report_figures(runs, scale, out, args.force, args.command)
        else:
            paths = report_table(args.table, runs, scale, out, args.force, args.command)
            settings = scale_settings(scale)
            result = build_table(TABLES[args.table], runs, parse_seeds(settings["seeds"]), scale,
                                 load_paper(), analysis_seeds(settings))
            for line in bookkeeping(result)[:1]:
                print(line)
    except (ReportError, ScaleError, DuplicateRunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
