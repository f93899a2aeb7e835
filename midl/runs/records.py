"""Run records kept in git: a finished run of a table scale, compact, under ``results/runs/``.

When a run whose config names a scale (``scale.name``) finishes, its record (the content of
its ``metrics.json``, made compact) is also written to
``<paths.records_dir>/<scale>/<task_name>/<run folder name>.json`` (:func:`record_path`;
``paths.records_dir`` is ``$MIDL_RECORDS_DIR``, else ``<repo>/results/runs``). A sweep treats
such a record as a finished run (:func:`midl.runs.outcome.existing_result`), and the report
reads the records as runs (``midl.reporting.runs.collect_runs``), so the tables can be regenerated
from ``results/runs/`` alone, without ``outputs/``.

Compact means (:func:`compact`):

- ``result_config`` is dropped (it is recomputed from ``config``; ``config_hash`` is kept);
  ``tested_checkpoint`` and ``resumed_from`` keep only the file name (no checkpoint is kept);
- long lists outside ``analysis`` (e.g. ``data.subset.train_indices``) are replaced by
  ``{"$digest": <sha256 of their JSON, 16 hex digits>, "length": n}``;
- long numeric arrays inside ``analysis`` (per-neuron MI and activation frequency, per-block
  frequencies, t-SNE points and labels) move to a companion ``<name>.npz`` next to the record,
  replaced by ``{"$npz": <key>, "length": n}``; :func:`read_record` puts them back, so a
  record reads exactly like the run folder's ``metrics.json``;
- the run folder's side results the tables read (``*.json`` other than ``metrics.json``, e.g.
  ``cifar10c_severity3.json``) are kept under ``side_files``, and the Hydra job (``overrides``
  as typed and the config-group ``choices``) under ``job``, which says which table cell the
  run belongs to.

No absolute path of the machine that ran it is kept (:func:`machine_free`): a value under one
of the run's ``paths.*`` folders is written relative to it (``<paths.data_dir>``,
``<paths.output_dir>/checkpoints/epoch_004.ckpt``; inside ``config`` exactly as
:func:`midl.runs.provenance.result_config` writes it, so :func:`midl.runs.provenance.config_hash`
is unchanged), ``paths.*`` themselves name their root (``<paths.log_dir>/<task>/multirun/...``)
and a command reads as typed (``python -m midl.train ...``,
:func:`midl.runs.provenance.typed_command`).

Records of an older :data:`RECORD_FORMAT` are brought up to date by :func:`migrate`, on read
and once for the committed files (``python -m midl.runs.records --migrate results/runs``).

Writes are atomic (:func:`midl.runs.io.atomic_write`): the companion ``.npz`` first, then the JSON,
so a record whose JSON exists is complete. A record that is not valid JSON, or lacks what a
record holds (:data:`REQUIRED`), or whose companion is missing or unreadable, is never read
as complete (:func:`read_record` returns None with a warning); the temporary files of a
killed write (``.<name>.*.tmp``) are never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from midl.runs.io import atomic_write, atomic_write_json
from midl.runs.portable import machine_free
from midl.runs.provenance import config_hash

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / "results" / "runs"
RECORD_FORMAT = 2
"""1: as ``metrics.json`` (absolute paths); 2: no absolute path, ``config_hash`` recomputed by
today's :func:`midl.runs.provenance.config_hash` (:func:`migrate`)."""
LONG = 64  # lists longer than this leave the record's JSON (digest or companion .npz)
REQUIRED = ("record_format", "test", "config", "config_hash", "job", "seed")
"""Keys every complete record holds."""
DIGEST, NPZ = "$digest", "$npz"


class RecordError(ValueError):
    """A record cannot be written as asked (e.g. a run without test metrics)."""


def records_root(config: Mapping[str, Any] | None = None) -> Path:
    """The records root: ``config["paths"]["records_dir"]`` when set, else
    ``$MIDL_RECORDS_DIR``, else ``<repo>/results/runs``."""
    paths = (config or {}).get("paths") or {}
    chosen = paths.get("records_dir") if isinstance(paths, Mapping) else None
    if isinstance(chosen, str) and chosen.startswith("<"):  # a record's placeholder
        chosen = None
    return Path(chosen or os.environ.get("MIDL_RECORDS_DIR") or DEFAULT_ROOT)


def scale_name(config: Mapping[str, Any]) -> str | None:
    """The run's ``scale.name``, or None when it belongs to no scale or its scale keeps no
    records (``scale.records: false``, e.g. the precision check): then it has no record."""
    scale = config.get("scale")
    if not isinstance(scale, Mapping) or scale.get("records", True) is False:
        return None
    return str(scale["name"]) if scale.get("name") else None


def record_path(config: Mapping[str, Any], run_dir: str | Path) -> Path | None:
    """``<records root>/<scale.name>/<task_name>/<run folder name>.json`` for a run of
    ``config`` (a resolved config) in ``run_dir``; None when the config names no scale.

    Raises:
        RecordError: if the config has no ``task_name``.
    """
    scale = scale_name(config)
    if scale is None:
        return None
    task = config.get("task_name")
    if not task:
        raise RecordError(f"the config of {run_dir} has no task_name: cannot place its record")
    return records_root(config) / scale / str(task) / f"{Path(run_dir).name}.json"


def companion_path(path: str | Path) -> Path:
    """The companion arrays of the record ``path`` (``<name>.npz`` beside it)."""
    return Path(path).with_suffix(".npz")


def live_job() -> dict[str, Any] | None:
    """The running Hydra job as :func:`job_of` gives it, or None outside a Hydra job. Only
    ``midl.train`` may use it: inside ``midl.evaluate`` the live job is the evaluation's."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    return {"overrides": [str(o) for o in hydra.overrides.task],
            "choices": _groups(OmegaConf.to_container(hydra.runtime.choices))}


def live_debug() -> str | None:
    """The debug config of the running training job (``debug=fdr`` gives ``"fdr"``), None
    for a real run or outside a Hydra job: :func:`debug_choice` of :func:`live_job`."""
    return debug_choice(None, live_job())


def debug_choice(metrics: Mapping[str, Any] | None,
                 job: Mapping[str, Any] | None = None) -> str | None:
    """The debug config a run was made with (``debug=fdr`` gives ``"fdr"``), None for a real
    run: the ``debug`` key of its ``metrics.json`` or record, else the ``debug`` choice of
    its Hydra job (``job``, else the record's ``job``: runs written before the key existed).

    A debug run (``configs/debug/``) keeps its ``metrics.json`` in its own folder, but never
    gets a run record and is never counted by a report (:func:`save_run_record`,
    ``midl.reporting.runs.collect_runs``, ``midl.summarize``).
    """
    metrics = metrics or {}
    if metrics.get("debug"):
        return str(metrics["debug"])
    job = job if job is not None else metrics.get("job")
    choices = job.get("choices") if isinstance(job, Mapping) else None
    chosen = choices.get("debug") if isinstance(choices, Mapping) else None
    return str(chosen) if chosen else None


def _groups(choices: Any) -> dict[str, Any]:
    """The config-group choices of a job without Hydra's own (``hydra``, ``hydra/...``)."""
    return {k: v for k, v in dict(choices or {}).items()
            if k != "hydra" and not str(k).startswith("hydra/")}


def job_of(run_dir: str | Path) -> dict[str, Any] | None:
    """The Hydra job of a run folder, ``{"overrides": [...], "choices": {...}}``, read from
    ``<run_dir>/.hydra/`` (Hydra writes it when the job starts); None without a readable
    ``overrides.yaml`` (``choices`` is empty without ``hydra.yaml``)."""
    folder = Path(run_dir) / ".hydra"
    try:
        overrides = yaml.safe_load((folder / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return None
    try:  # the choices are optional: a key can be read from the overrides alone
        hydra_yaml = yaml.safe_load((folder / "hydra.yaml").read_text()) or {}
        choices = hydra_yaml.get("hydra", {}).get("runtime", {}).get("choices") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        choices = {}
    return {"overrides": [str(o) for o in overrides], "choices": _groups(choices)}


def migrate(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` in today's :data:`RECORD_FORMAT` (unchanged when it already is):

    - format 1 to 2: no absolute machine paths (:func:`machine_free`); ``config_hash`` is
      the one :func:`midl.runs.provenance.config_hash` computes from the record's ``config``
      today (keys that left the hash, e.g. ``model.channels_last``, changed it), the stored
      one kept as ``migrated.config_hash`` when it differed.
    """
    record = dict(record)
    version = record.get("record_format", 1)
    if version >= RECORD_FORMAT or not isinstance(record.get("config"), dict):
        return record
    record = machine_free(record)
    computed = config_hash(record["config"])
    if record.get("config_hash") != computed:
        record["migrated"] = {"from_format": version, "config_hash": record.get("config_hash")}
        record["config_hash"] = computed
    record["record_format"] = RECORD_FORMAT
    return record


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _numeric(value: list) -> np.ndarray | None:
    try:
        array = np.asarray(value)
    except ValueError:  # ragged
        return None
    return array if array.dtype.kind in "biuf" else None


def _shrink(node: Any, key: str, arrays: dict[str, np.ndarray], in_analysis: bool) -> Any:
    if isinstance(node, dict):
        return {k: _shrink(v, f"{key}.{k}" if key else k, arrays,
                           in_analysis or (not key and k == "analysis"))
                for k, v in node.items()}
    if isinstance(node, list) and len(node) > LONG:
        array = _numeric(node) if in_analysis else None
        if array is not None:
            arrays[key] = array
            return {NPZ: key, "length": len(node)}
        return {DIGEST: _digest(node), "length": len(node)}
    if isinstance(node, list):
        return [_shrink(v, f"{key}.{i}", arrays, in_analysis) for i, v in enumerate(node)]
    return node


def _side_files(run_dir: Path) -> dict[str, Any]:
    out = {}
    for path in sorted(run_dir.glob("*.json")):
        if path.name == "metrics.json" or path.name.endswith(".digest.json"):
            continue
        try:
            out[path.name] = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            log.warning("%s is not readable JSON: left out of the run's record", path)
    return out


def _tsne_points(metrics: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """``analysis`` with the t-SNE points saved beside each Figure 4 added (``points``,
    ``labels``), so a record can redraw the figure."""
    analysis = metrics.get("analysis")
    if not isinstance(analysis, dict):
        return analysis
    out = dict(analysis)
    for name, result in analysis.items():
        tsne = result.get("tsne") if isinstance(result, dict) else None
        if not isinstance(tsne, dict) or not tsne.get("figure4"):
            continue
        from midl.figures import points_path

        npz = points_path(run_dir / tsne["figure4"])
        if not npz.exists():
            continue
        with np.load(npz, allow_pickle=False) as saved:
            points, labels = saved["points"].tolist(), saved["labels"].tolist()
        out[name] = {**result, "tsne": {**tsne, "points": points, "labels": labels}}
    return out


def compact(metrics: Mapping[str, Any], run_dir: str | Path,
            job: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The record of a finished run and its companion arrays (see the module docstring).

    Args:
        metrics: the run's ``metrics.json`` content (with ``test`` and ``config``).
        run_dir: the run folder (side files and t-SNE points are read from it).
        job: the Hydra job (:func:`live_job`, :func:`job_of`); read from ``run_dir`` when
            None (``{}`` if it has no ``.hydra/``).

    Returns:
        ``(record, arrays)``: the JSON-ready record and the arrays for the ``.npz``
        (empty when nothing is long).

    Raises:
        RecordError: if ``metrics`` has no ``test`` metrics or no ``config``.
    """
    run_dir = Path(run_dir)
    if not isinstance(metrics.get("test"), dict) or not isinstance(metrics.get("config"), dict):
        raise RecordError(f"{run_dir}: a record needs the test metrics and the resolved config "
                          "of a finished run")
    record: dict[str, Any] = {"record_format": RECORD_FORMAT}
    for key, value in metrics.items():
        if key == "result_config":
            continue
        if key in ("tested_checkpoint", "resumed_from") and isinstance(value, str) and value:
            value = Path(value).name if value != "final weights" else value
        record[key] = value
    if "analysis" in record:
        record["analysis"] = _tsne_points(dict(metrics), run_dir)
    side = _side_files(run_dir)
    if side:
        record["side_files"] = side
    record["job"] = dict(job) if job is not None else job_of(run_dir) or {}
    arrays: dict[str, np.ndarray] = {}
    return _shrink(machine_free(record), "", arrays, False), arrays


def write_record(path: str | Path, record: Mapping[str, Any],
                 arrays: Mapping[str, np.ndarray]) -> Path:
    """Write a record (and its companion ``.npz``, when ``arrays`` is not empty) atomically:
    the companion first, then the JSON, so a record JSON always finds its arrays. A stale
    companion of an earlier version is removed when the new record has none. Returns the
    JSON's path."""
    path = Path(path)
    npz = companion_path(path)
    if arrays:
        def save(f):
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **dict(arrays))
            f.write(buffer.getvalue())
        atomic_write(npz, save)
    atomic_write_json(path, record)
    if not arrays:
        npz.unlink(missing_ok=True)
    return path


def _restore(node: Any, arrays: Any) -> Any:
    if isinstance(node, dict):
        if NPZ in node and set(node) == {NPZ, "length"}:
            value = arrays[node[NPZ]].tolist()
            if len(value) != node["length"]:
                raise ValueError(f"companion array {node[NPZ]} has {len(value)} entries, the "
                                 f"record says {node['length']}")
            return value
        return {k: _restore(v, arrays) for k, v in node.items()}
    if isinstance(node, list):
        return [_restore(v, arrays) for v in node]
    return node


def read_record(path: str | Path) -> dict[str, Any] | None:
    """A complete record, in today's format (:func:`migrate`), with its companion arrays put
    back; None (with a warning) when ``path`` is missing, not JSON (e.g. cut short), not a
    record (:data:`REQUIRED`), or its
    companion ``.npz`` is missing or does not hold what the record names. Never executes
    anything (``json``, ``np.load(allow_pickle=False)``)."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("%s is not a complete record (%s: %s): ignored", path,
                    type(error).__name__, error)
        return None
    missing = [k for k in REQUIRED if not isinstance(record, dict) or k not in record]
    if missing or not isinstance(record.get("test"), dict) or not record["test"]:
        log.warning("%s is not a complete record (missing %s): ignored", path,
                    missing or ["test metrics"])
        return None
    record = migrate(record)
    if NPZ not in json.dumps(record):
        return record
    try:
        with np.load(companion_path(path), allow_pickle=False) as arrays:
            return _restore(record, arrays)
    except (OSError, ValueError, KeyError) as error:
        log.warning("%s: its companion %s is missing or incomplete (%s): ignored", path,
                    companion_path(path).name, error)
        return None


def find_records(root: str | Path) -> list[Path]:
    """The record files below ``root``: ``*.json`` not inside a run folder (one holding
    ``.hydra/``), not hidden (a killed write's ``.<name>.*.tmp`` never matches) and not a
    ``metrics.json``; sorted. Whether each is complete is :func:`read_record`'s to say."""
    out = []
    for path in sorted(Path(root).rglob("*.json")):
        if (path.name.startswith(".") or path.name == "metrics.json"
                or any(part.startswith(".") for part in path.relative_to(root).parts)
                or (path.parent / ".hydra").is_dir()):
            continue
        out.append(path)
    return out


def save_run_record(run_dir: str | Path, metrics: Mapping[str, Any] | None = None,
                    job: Mapping[str, Any] | None = None, *, only_if_missing: bool = False,
                    only_if_exists: bool = False) -> Path | None:
    """Write the record of the finished run in ``run_dir`` (its ``metrics.json``, or
    ``metrics`` if given) to :func:`record_path` and return that path; None when the run
    belongs to no scale, is not finished, or is a debug run (:func:`debug_choice`). ``job``
    is the run's Hydra job (default: its ``.hydra/``, else the job of the record it replaces).

    With ``only_if_missing``, an existing complete record of the same ``config_hash`` is
    kept as it is (a committed record is not rewritten by a rerun that skipped). With
    ``only_if_exists``, only a record already written is updated (``midl.evaluate`` adding
    an analysis; inside the training job the record is written once, after its analyses).
    """
    run_dir = Path(run_dir)
    if metrics is None:
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict) \
            or not isinstance(metrics.get("test"), dict):
        return None
    path = record_path(metrics["config"], run_dir)
    if path is None:
        return None
    if job is None:  # the run folder's .hydra/ (else, below, what an existing record knew)
        job = job_of(run_dir)
    if debug_choice(metrics, job) is not None:
        log.info("%s is a debug run (debug=%s): it gets no run record", run_dir,
                 debug_choice(metrics, job))
        return None
    existing = read_record(path)
    if only_if_exists and existing is None:
        return None
    if (only_if_missing and existing is not None
            and existing.get("config_hash") == metrics.get("config_hash")):
        return path
    if job is None:
        job = (existing or {}).get("job")
    record, arrays = compact(metrics, run_dir, job)
    write_record(path, record, arrays)
    log.info("wrote the run's record %s", path)
    return path


def migrate_files(root: str | Path) -> dict[str, list[Path]]:
    """Rewrite every record below ``root`` (:func:`find_records`) in today's format
    (:func:`migrate`; the companion ``.npz`` is left as it is). Returns the paths
    ``rewritten``, those whose ``config_hash`` was ``fixed``, and the ``unreadable`` ones (not
    JSON, or not a record: left alone).

    Raises:
        RecordError: if a migrated ``config`` hashes otherwise than the stored one did (the
            file is then not written).
    """
    out: dict[str, list[Path]] = {"rewritten": [], "fixed": [], "unreadable": []}
    for path in find_records(root):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            out["unreadable"].append(path)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            out["unreadable"].append(path)
            continue
        new = migrate(record)
        if new == record:
            continue
        if config_hash(new["config"]) != config_hash(record["config"]):
            raise RecordError(f"{path}: its config would hash otherwise after the migration")
        atomic_write_json(path, new)
        out["rewritten"].append(path)
        if "migrated" in new and "migrated" not in record:
            out["fixed"].append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m midl.runs.records --migrate ROOT...``: :func:`migrate_files` on each root
    (e.g. ``results/runs`` after copying records written by older code); prints the counts
    and names unreadable records. Exit status 1 if any record is unreadable."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m midl.runs.records",
                                     description=main.__doc__)
    parser.add_argument("--migrate", nargs="+", metavar="ROOT", required=True,
                        help="records folders to rewrite in today's record format")
    args = parser.parse_args(argv)
    unreadable = 0
    for root in args.migrate:
        result = migrate_files(root)
        print(f"{root}: {len(result['rewritten'])} records rewritten in format {RECORD_FORMAT}, "
              f"{len(result['fixed'])} config hashes fixed, {len(result['unreadable'])} "
              "unreadable")
        for path in result["unreadable"]:
            print(f"  unreadable (not a record): {path}")
        unreadable += len(result["unreadable"])
    return 1 if unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
