"""Find the runs of sweep folders and read what they produced.

A run folder is any folder below a sweep directory holding ``.hydra/overrides.yaml`` (Hydra
writes it when a job starts). Its status is

- ``complete``: ``metrics.json`` with a ``test`` entry exists (the run finished and tested);
- ``failed``: ``error.txt`` exists and no complete ``metrics.json`` (``midl.train`` writes the
  traceback there);
- ``incomplete``: neither (interrupted, or still running).

A run is identified by its :class:`RunKey`: the setting (``+experiment/setting``), the block,
the label-noise rate, the seed and the scale, read from Hydra's record of the job
(``.hydra/hydra.yaml`` choices and ``.hydra/overrides.yaml``). The key only finds the
candidates of a table cell: :func:`select_runs` counts a complete run only if its recorded
configuration (:func:`midl.runs.provenance.config_hash` of the resolved ``config`` in
``metrics.json``) equals the one the table's sweep composes for that key
(:func:`expected_config`); candidates configured otherwise (e.g. ``block.top_k=0.05`` typed on
the command line) are returned as not counted, with the settings that differ.

A committed run record (``results/runs/<scale>/<task_name>/<run folder>.json``,
:mod:`midl.runs.records`) is read as a complete run too (:func:`read_record_run`; its ``path`` is
the record's file, its key comes from the Hydra job it recorded), so the tables can be made
from ``results/runs/`` alone. A run present both as a folder and as a record is one run: the
folder, when it is complete, else the record. A record that cannot be read (cut short, its
companion missing) is an incomplete run noted as a corrupt record, never a run not made.
Debug runs (``debug=fdr|limit|overfit|profiler``) are never read as runs.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from midl.runs.provenance import config_differences, config_hash
from midl.runs.records import debug_choice, find_records, read_record

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class RunKey:
    """What identifies a run inside a table: ``(setting, block, noise, seed, scale, regime,
    tuning)`` (``regime``: ``configs/regime/``, ``tuning``: ``configs/tuning/``; records made
    before they existed are ``standard`` and ``none``)."""

    setting: str
    block: str
    noise: float
    seed: int
    scale: str | None
    regime: str = "standard"
    tuning: str = "none"

    @classmethod
    def of_row(cls, row: Any, noise: float, seed: int, scale: str | None) -> RunKey:
        """The key of a table row's run (a :class:`midl.reporting.columns.Row`) at one
        label-noise rate, seed and scale."""
        return cls(row.setting, row.block, noise, seed, scale, row.regime, row.tuning)


@dataclass
class Run:
    """One run folder: its key, status, ``metrics.json`` record and side files."""

    path: Path
    key: RunKey
    status: str
    record: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # why an incomplete run is incomplete, when known

    @property
    def complete(self) -> bool:
        """Whether the run finished and was tested (``status == "complete"``)."""
        return self.status == "complete"

    @property
    def config_hash(self) -> str | None:
        """:func:`midl.runs.provenance.config_hash` of the record's resolved ``config``
        (recomputed, so records written before the hash existed, or before a change of
        :data:`midl.runs.provenance.NOT_RESULT_KEYS`, are read alike); the recorded
        ``config_hash`` if there is no config; None if neither."""
        if isinstance(self.record.get("config"), dict) and self.record["config"]:
            return config_hash(self.record["config"])
        return self.record.get("config_hash")

    @property
    def is_record(self) -> bool:
        """Whether this run was read from a committed record (no run folder)."""
        return self.path.suffix == ".json"

    def side_json(self, name: str) -> dict[str, Any] | None:
        """A JSON file next to ``metrics.json`` (e.g. ``cifar10c_severity3.json``), or None;
        for a record, the copy it holds under ``side_files``."""
        if self.is_record:
            return (self.record.get("side_files") or {}).get(name)
        path = self.path / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def tsne_points(self, eval_name: str, filename: str) -> tuple[Any, Any] | None:
        """The 2-D t-SNE points and their labels of ``analysis.<eval_name>`` as NumPy arrays
        ((n, 2) floats, (n,) ints): from the ``.npz`` saved beside the run folder's
        ``filename`` (:func:`midl.figures.points_path`), for a record from the points it
        holds; None if there are none."""
        import numpy as np

        if self.is_record:
            tsne = (self.analysis(eval_name) or {}).get("tsne") or {}
            if "points" not in tsne or "labels" not in tsne:
                return None
            return np.asarray(tsne["points"], dtype=float), np.asarray(tsne["labels"])
        from midl.figures import points_path

        npz = points_path(self.path / filename)
        if not npz.exists():
            return None
        with np.load(npz, allow_pickle=False) as saved:
            return saved["points"], saved["labels"]

    def analysis(self, eval_name: str) -> dict[str, Any] | None:
        """``metrics.json``'s ``analysis.<eval_name>`` (written by ``midl.evaluate``), or None."""
        return (self.record.get("analysis") or {}).get(eval_name)


def _overrides(path: Path) -> dict[str, str]:
    items = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text()) or []
    out = {}
    for item in items:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _choices(path: Path) -> dict[str, Any]:
    hydra_yaml = path / ".hydra" / "hydra.yaml"
    if not hydra_yaml.exists():
        return {}
    text = hydra_yaml.read_text()
    # hydra.yaml is large; the choices block is all we need
    start = text.find("    choices:\n")
    if start < 0:
        return {}
    lines = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("      "):
            break
        lines.append(line.strip())
    return yaml.safe_load("\n".join(lines)) or {}


def run_key(overrides: dict[str, str], choices: dict[str, Any]) -> RunKey | None:
    """A run's key from its Hydra job: the overrides (``{key: value}``, ``+``/``~`` dropped)
    and the config-group choices; None if it is not a table sweep's job (no setting or
    seed)."""
    setting = choices.get("experiment/setting") or overrides.get("experiment/setting")
    if setting is None or "seed" not in overrides:
        return None
    block = choices.get("block") or overrides.get("block", "midl")
    noise = float(overrides.get("data.label_noise", 0.0))
    scale = choices.get("scale") or overrides.get("scale")
    regime = choices.get("regime") or overrides.get("regime") or "standard"
    tuning = choices.get("tuning") or overrides.get("tuning") or "none"
    return RunKey(str(setting), str(block), noise, int(overrides["seed"]), scale, str(regime),
                  str(tuning))


def read_run(path: Path) -> Run | None:
    """Read one run folder; None if it is not a run of a table sweep (no setting/seed) or is
    a debug run (``debug=...``, :func:`midl.runs.records.debug_choice`: never counted)."""
    try:
        overrides = _overrides(path)
    except (OSError, yaml.YAMLError):
        return None
    choices = _choices(path)
    key = run_key(overrides, choices)
    if key is None or choices.get("debug") or "debug" in overrides:
        return None
    record: dict[str, Any] = {}
    status, note = "incomplete", ""
    metrics = path / "metrics.json"
    if metrics.exists():
        try:
            record = json.loads(metrics.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            record, note = {}, "metrics.json unreadable (corrupt or empty; a rerun redoes it)"
        if not isinstance(record, dict):
            record, note = {}, "metrics.json is not a record (a rerun redoes it)"
    set_aside = sorted(path.glob("metrics.json.corrupt-*"))
    if not note and set_aside:
        note = f"corrupt metrics.json set aside as {set_aside[-1].name}; not redone yet"
    if debug_choice(record) is not None:
        return None
    if record.get("test"):
        status = "complete"
    elif (path / "error.txt").exists():
        status = "failed"
    return Run(path, key, status, record, note)


CORRUPT_RECORD = ("corrupt run record: not readable as a complete record (cut short, or its "
                  "companion .npz missing); restore it from git or rerun the run")


def _key_from_name(path: Path) -> RunKey | None:
    """The key of a record from its file name alone (the run folder's name: its overrides,
    ``+experiment/setting`` written ``+experiment_setting``), for a record that cannot be
    read; None if the name names no table cell."""
    overrides = {}
    for item in re.split(r",(?=[+~]?[\w./]+=)", path.stem):
        key, _, value = item.partition("=")
        key = key.lstrip("+~")
        overrides["experiment/setting" if key == "experiment_setting" else key] = value
    overrides.setdefault("scale", path.parent.parent.name)
    try:
        return run_key(overrides, {})
    except ValueError:  # e.g. seed=abc
        return None


def read_record_run(path: Path) -> Run | None:
    """A committed run record (:func:`midl.runs.records.read_record`) as a complete run; None if
    it is not of a table sweep's job, or of a debug run (written before debug runs stopped
    getting records). A record that cannot be read as complete (cut short, its companion
    arrays missing) is an incomplete run whose note says so (:data:`CORRUPT_RECORD`), placed
    by its file name (:func:`_key_from_name`), so the table names it instead of counting its
    cell as never run."""
    record = read_record(path)
    if record is None:
        key = _key_from_name(path) if path.exists() else None
        return None if key is None else Run(path.resolve(), key, "incomplete", {},
                                            CORRUPT_RECORD)
    if debug_choice(record) is not None:
        return None
    job = record.get("job") or {}
    overrides = {}
    for item in job.get("overrides") or []:
        key, _, value = str(item).partition("=")
        overrides[key.lstrip("+~")] = value
    key = run_key(overrides, dict(job.get("choices") or {}))
    return None if key is None else Run(path.resolve(), key, "complete", record)


def _identity(run: Run) -> tuple[str, str]:
    """``(task_name, run folder name)``: what a run folder and its record share."""
    if run.is_record:
        return run.path.parent.name, run.path.stem
    return str(run.record.get("task_name") or run.path.parent.parent.name), run.path.name


def collect_runs(sweep_dirs: list[str | Path]) -> list[Run]:
    """Every table run below the given folders (searched recursively), sorted by path: run
    folders of sweeps and committed run records (:mod:`midl.runs.records`; folders such as
    ``results/runs/<scale>`` may be given beside sweep folders). A run found both as a
    folder and as a record counts once: the folder if it is complete, else the record.

    Raises:
        FileNotFoundError: if a given folder does not exist.
    """
    runs = []
    seen = set()
    records: dict[tuple[str, str], Run] = {}
    for sweep_dir in sweep_dirs:
        root = Path(sweep_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"sweep folder not found: {root}")
        for overrides in sorted(root.rglob(".hydra/overrides.yaml")):
            path = overrides.parent.parent.resolve()
            if path in seen:
                continue
            seen.add(path)
            run = read_run(path)
            if run is not None:
                runs.append(run)
        for path in find_records(root):
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            run = read_record_run(path)
            if run is not None:
                records.setdefault((str(run.key.scale), *_identity(run)), run)
    folders = {(str(r.key.scale), *_identity(r)): i for i, r in enumerate(runs)}
    for identity, record in records.items():
        if identity not in folders:
            runs.append(record)
        elif not runs[folders[identity]].complete:
            runs[folders[identity]] = record
    return sorted(runs, key=lambda r: str(r.path))


def table_overrides(key: RunKey) -> list[str]:
    """The command-line overrides of the table sweep job that produces ``key``'s run."""
    scale = [f"+scale={key.scale}"] if key.scale is not None else []
    if key.tuning != "none":  # a tuning choice names its setting, block and regime itself
        return [*scale, f"data.label_noise={key.noise}", f"tuning={key.tuning}",
                f"seed={key.seed}"]
    regime = [f"regime={key.regime}"] if key.regime != "standard" else []
    return [f"+experiment/setting={key.setting}", *scale, f"block={key.block}",
            f"data.label_noise={key.noise}", *regime, f"seed={key.seed}"]


@functools.lru_cache(maxsize=256)
def _compose(overrides: tuple[str, ...]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from midl.config import register_resolvers

    register_resolvers()
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=list(overrides))
    with open_dict(cfg):  # only a Hydra run knows its folder; the hash does not use it
        cfg.paths.output_dir = "<paths.output_dir>"
    return cfg


def expected_config(key: RunKey) -> dict[str, Any]:
    """The resolved config ``configs/train.yaml`` composes for the table job of ``key``
    (:func:`table_overrides`), as ``midl.train`` would record it (``paths.output_dir`` left
    as a placeholder). Compositions are cached per setting, block, noise and scale.

    Raises:
        hydra.errors.HydraException: if the key's setting, block or scale has no config.
    """
    overrides = table_overrides(key)
    cfg = _compose(tuple(o for o in overrides if not o.startswith("seed=")))
    cfg = cfg.copy()
    cfg.seed = key.seed
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def data_caveat(data: Any) -> str | None:
    """Why a run's numbers cannot be compared with the paper's on its dataset, from the run's
    data summary (a record's ``data``), never from a folder of the machine reading it:

    - ``"stand-in"``: the generated SVHN-format fixture (:func:`midl.data.is_stand_in`);
    - ``"subset"``: the data files held fewer samples than the published dataset
      (:data:`midl.data.PUBLISHED_SIZES`: training including validation, and test) although
      the run asked for no subset (``data.subset``), e.g. the CIFAR-100 subset here;
    - None: the real, complete dataset, or a subset the run asked for (Table 2's low data).
    """
    from midl.data import PUBLISHED_SIZES, is_stand_in

    if is_stand_in(data):
        return "stand-in"
    if not isinstance(data, dict):
        return None
    published = PUBLISHED_SIZES.get(str(data.get("name")))
    split = data.get("sizes")
    if not published or not isinstance(split, dict) or data.get("subset"):
        return None
    train = int(split.get("train") or 0) + int(split.get("val") or 0)
    if train < published["train"] or int(split.get("test") or 0) < published["test"]:
        return "subset"
    return None


class DuplicateRunError(RuntimeError):
    """Two complete runs hold the same configuration and seed: which one counts is unclear."""


@dataclass
class NotCounted:
    """A complete run found under a cell's key whose configuration differs from the table's:
    ``differences`` lists ``(dotted key, the run's value, the table's value)``."""

    run: Run
    differences: list[tuple[str, Any, Any]]

    def text(self, limit: int = 4) -> str:
        """``differs in block.top_k=0.05, ...`` (at most ``limit`` keys named)."""
        if not self.differences:
            return "has no resolved config in metrics.json"
        shown = [f"{k}={_short(v)}" for k, v, _ in self.differences[:limit]]
        more = len(self.differences) - limit
        return "differs in " + ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Selection:
    """What :func:`select_runs` found for the expected keys of a table."""

    counted: dict[RunKey, Run]              # the one complete run of the table's config
    unfinished: dict[RunKey, Run]           # failed / incomplete runs of keys not counted
    not_counted: list[NotCounted]           # complete runs configured otherwise


def select_runs(runs: list[Run], keys: list[RunKey], expected=expected_config) -> Selection:
    """Pick, for each key, the complete run whose configuration hash equals that of
    ``expected(key)`` (the table's composed config).

    Runs of a key that are complete but configured otherwise are returned in
    ``not_counted`` with the settings that differ; failed or incomplete runs of a key without
    a counted run go to ``unfinished`` (the first by path).

    Raises:
        DuplicateRunError: two complete runs of the table's configuration and seed, naming
            both folders.
    """
    by_key: dict[RunKey, list[Run]] = {}
    for run in runs:
        by_key.setdefault(run.key, []).append(run)
    selection = Selection({}, {}, [])
    for key in keys:
        candidates = by_key.get(key, [])
        complete = [r for r in candidates if r.complete]
        if complete:
            wanted = expected(key)
            wanted_hash = config_hash(wanted)
            for run in complete:
                if run.config_hash != wanted_hash:
                    config = run.record.get("config")
                    differences = (config_differences(config, wanted)
                                   if isinstance(config, dict) and config else [])
                    selection.not_counted.append(NotCounted(run, differences))
                elif key in selection.counted:
                    first = selection.counted[key]
                    raise DuplicateRunError(
                        f"{first.path} and {run.path} hold the same configuration (hash "
                        f"{wanted_hash}) and seed {key.seed}: remove or move one of them")
                else:
                    selection.counted[key] = run
        if key not in selection.counted:
            unfinished = [r for r in candidates if not r.complete]
            if unfinished:
                selection.unfinished[key] = unfinished[0]
    return selection
