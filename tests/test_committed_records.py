"""The run records committed under results/runs/: each parses, stores the configuration hash
today's code computes from its config, and holds no absolute path of the machine that ran it
(midl.runs.records.migrate brings older records up to date, on read and once for the files:
python -m midl.runs.records --migrate results/runs). A record that does not parse is named
as corrupt by the report, never counted as a run not made."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from midl.reporting.render import build_table, markdown
from midl.reporting.runs import CORRUPT_RECORD, collect_runs
from midl.reporting.tables import TABLES
from midl.runs import records as rec
from midl.runs.provenance import config_hash

ROOT = REPO / "results" / "runs"
MIGRATE = "python -m midl.runs.records --migrate results/runs"
# a filesystem path of some machine: /work/..., /tmp/..., /home/..., C:\... is not expected
ABSOLUTE = re.compile(r"(?<![\w.<>~-])/(?:work|tmp|home|root|mnt|scratch|data|Users|var|opt|"
                      r"srv|usr|private|net|gpfs|lustre|cluster|nfs|storage|shared)(?:/|\b)")
PAPER = yaml.safe_load((REPO / "results" / "paper_reference.yaml").read_text())


def committed_records() -> list[Path]:
    """The record files git tracks under results/runs/ (every record found there when git is
    not available)."""
    try:
        listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "results/runs"],
                                capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return rec.find_records(ROOT)
    tracked = {REPO / line for line in listed.splitlines()}
    return [p for p in rec.find_records(ROOT) if p in tracked]


def absolute_paths(node, where: str = "") -> list[str]:
    """``key: value`` for every string in ``node`` that holds an absolute machine path."""
    if isinstance(node, dict):
        return [hit for k, v in node.items() for hit in absolute_paths(v, f"{where}.{k}")]
    if isinstance(node, list):
        return [hit for i, v in enumerate(node) for hit in absolute_paths(v, f"{where}[{i}]")]
    if isinstance(node, str) and ABSOLUTE.search(node):
        return [f"{where}: {node[:120]}"]
    return []


def test_there_are_committed_records():
    assert len(committed_records()) > 100


def test_every_committed_record_parses_and_stores_the_hash_the_code_computes():
    bad = []
    for path in committed_records():
        raw = json.loads(path.read_text())  # not JSON: the test fails here, naming the file
        record = rec.read_record(path)
        if record is None:
            bad.append(f"{path.relative_to(REPO)}: not a complete record")
        elif raw.get("record_format") != rec.RECORD_FORMAT:
            bad.append(f"{path.relative_to(REPO)}: record format {raw.get('record_format')}")
        elif raw["config_hash"] != config_hash(raw["config"]):
            bad.append(f"{path.relative_to(REPO)}: stored hash {raw['config_hash']}, computed "
                       f"{config_hash(raw['config'])}")
    assert not bad, f"run `{MIGRATE}`, or restore these records:\n" + "\n".join(bad)


def test_no_committed_record_holds_an_absolute_machine_path():
    hits = []
    for path in committed_records():
        hits += [f"{path.relative_to(REPO)} {hit}"
                 for hit in absolute_paths(json.loads(path.read_text()))]
    assert not hits, f"run `{MIGRATE}`:\n" + "\n".join(hits[:20])


def _format_1(tmp_path: Path) -> dict:
    """A record as format 1 wrote it: absolute paths of the machine, the module's file in
    the command, and a config hash from before model.channels_last left the hash."""
    out = "/work/sweeps/outputs/grid_x/multirun/+experiment_setting=x,seed=0"
    config = {"task_name": "grid_x", "seed": 0, "model": {"channels_last": True, "width": 8},
              "data": {"data_dir": "/work/shared/data", "cache_dir": "/work/sweeps/cache"},
              "trainer": {"default_root_dir": out},
              "callbacks": {"model_checkpoint": {"dirpath": f"{out}/checkpoints"}},
              "paths": {"data_dir": "/work/shared/data", "cache_dir": "/work/sweeps/cache",
                        "log_dir": "/work/sweeps/outputs", "output_dir": out,
                        "records_dir": "/work/sweeps/records"}}
    return {"record_format": 1, "test": {"test/acc": 0.5}, "seed": 0,
            "command": "/work/wt-sweep/midl/train.py -m +experiment/setting=x seed=0 "
                       "paths.log_dir=/work/sweeps/outputs",
            "config": config, "config_hash": "0123456789abcdef",
            "analysis": {"smi": {"checkpoint": f"{out}/checkpoints/epoch_004.ckpt",
                                 "command": "/work/wt-sweep/midl/evaluate.py smi "
                                            f"{out}"}},
            "side_files": {"c.json": {"source": "generated in /work/sweeps/cache/C-10-C"}},
            "job": {"overrides": ["+experiment/setting=x", "seed=0",
                                  "paths.log_dir=/work/sweeps/outputs"], "choices": {}}}


def test_migrate_keeps_the_hash_of_the_config_and_leaves_no_machine_path(tmp_path):
    old = _format_1(tmp_path)
    new = rec.migrate(old)
    assert config_hash(new["config"]) == config_hash(old["config"])
    assert new["config_hash"] == config_hash(old["config"])  # the stale one fixed ...
    assert new["migrated"] == {"from_format": 1, "config_hash": "0123456789abcdef"}  # kept
    assert new["record_format"] == rec.RECORD_FORMAT and list(new) == [*old, "migrated"]
    assert absolute_paths(new) == []
    assert new["command"] == ("python -m midl.train -m +experiment/setting=x seed=0 "
                              "paths.log_dir=<paths.log_dir>")
    assert new["config"]["data"] == {"data_dir": "<paths.data_dir>",
                                     "cache_dir": "<paths.cache_dir>"}
    assert new["config"]["callbacks"]["model_checkpoint"]["dirpath"] == \
        "<paths.output_dir>/checkpoints"
    assert new["config"]["paths"]["output_dir"] == \
        "<paths.log_dir>/grid_x/multirun/+experiment_setting=x,seed=0"
    assert new["analysis"]["smi"] == {
        "checkpoint": "<paths.output_dir>/checkpoints/epoch_004.ckpt",
        "command": "python -m midl.evaluate smi <paths.output_dir>"}
    assert new["side_files"]["c.json"]["source"] == "generated in <paths.cache_dir>/C-10-C"
    assert rec.migrate(new) == new  # today's format: unchanged
    # applied on read, and by the one-off rewrite of the files
    path = tmp_path / "smoke" / "grid_x" / "+experiment_setting=x,seed=0.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    assert rec.read_record(path) == new
    done = rec.migrate_files(tmp_path)
    assert done == {"rewritten": [path], "fixed": [path], "unreadable": []}
    assert json.loads(path.read_text()) == new
    assert rec.migrate_files(tmp_path)["rewritten"] == []


def test_a_record_written_now_holds_no_machine_path(tmp_path):
    run = tmp_path / "outputs" / "grid_x" / "multirun" / "+experiment_setting=x,seed=0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- +experiment/setting=x\n- seed=0\n")
    metrics = json.loads(json.dumps(_format_1(tmp_path)).replace("/work/sweeps/outputs",
                                                                 str(tmp_path / "outputs")))
    metrics["config"]["scale"] = {"name": "smoke"}
    metrics["config"]["paths"]["records_dir"] = str(tmp_path / "records")
    metrics["config_hash"] = config_hash(metrics["config"])
    del metrics["record_format"], metrics["side_files"], metrics["job"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    path = rec.save_run_record(run)
    assert path == tmp_path / "records" / "smoke" / "grid_x" / f"{run.name}.json"
    written = json.loads(path.read_text())
    assert absolute_paths(written) == [] and str(tmp_path) not in path.read_text()
    assert written["record_format"] == rec.RECORD_FORMAT
    assert written["config_hash"] == config_hash(written["config"]) == metrics["config_hash"]
    assert written["command"].startswith("python -m midl.train -m ")


def test_a_corrupt_committed_record_is_reported_as_corrupt_not_as_missing(tmp_path):
    """A record cut to 500 bytes: its cell's run is listed as a corrupt record (incomplete),
    not as a run never made."""
    source = ROOT / "cpu" / "grid_mnist_mlp"
    names = [f"+experiment_setting=mnist_mlp,+scale=cpu,block={b},data.label_noise=0.0,"
             f"seed={s}.json" for b in ("midl", "dropout") for s in range(5)]
    folder = tmp_path / "cpu" / "grid_mnist_mlp"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(source / name, folder / name)
        if (source / name).with_suffix(".npz").exists():
            shutil.copy((source / name).with_suffix(".npz"), (folder / name).with_suffix(".npz"))
    broken = folder / names[0]
    broken.write_bytes(broken.read_bytes()[:500])

    runs = collect_runs([tmp_path / "cpu"])
    [corrupt] = [r for r in runs if not r.complete]
    assert corrupt.path == broken.resolve() and corrupt.note == CORRUPT_RECORD
    assert (corrupt.key.block, corrupt.key.seed, corrupt.key.scale) == ("midl", 0, "cpu")
    result = build_table(TABLES["baselines"], runs, [0, 1, 2, 3, 4], "cpu", PAPER)
    ours = [k for k in result.expected
            if k.setting == "mnist_mlp" and k.block in ("midl", "dropout")]
    assert len(ours) == 10 and not set(ours) & set(result.missing)
    assert corrupt in result.incomplete
    text = markdown(result, [])
    assert f"- incomplete ({CORRUPT_RECORD}): " in text and broken.name in text


@pytest.mark.parametrize("name", ["not-a-run.json", "seed=x.json"])
def test_an_unreadable_file_that_names_no_cell_is_no_run(tmp_path, name):
    (tmp_path / "cpu" / "grid_x").mkdir(parents=True)
    (tmp_path / "cpu" / "grid_x" / name).write_text("{")
    assert collect_runs([tmp_path]) == []


def test_a_cell_names_the_counted_runs_that_lack_its_result():
    """The clean CIFAR-10 runs of seeds 0-3 were recorded before the final weights were
    tested (no test_last; their checkpoints are not kept): a final-weights cell says so
    instead of showing seed 4 alone as if it were the whole cell."""
    from midl.reporting.columns import ACC, ACC_LAST
    from midl.reporting.render import ours_text
    from midl.reporting.tables import Column, Row, TableSpec

    spec = TableSpec("t", "clean CIFAR-10, best and final", None,
                     rows=(Row("midl", "cifar10_cnn", "midl", None),),
                     columns=(Column("acc", "Accuracy", "%", None, ACC),
                              Column("acc_last", "Accuracy, final", "%", None, ACC_LAST)))
    runs = collect_runs([ROOT / "cpu" / "grid_cifar10_cnn"])
    result = build_table(spec, runs, [0, 1, 2, 3, 4], "cpu", PAPER)
    best, final = result.cells[("midl", "acc")], result.cells[("midl", "acc_last")]
    assert best.n == 5 and not best.lacking
    assert final.n == 1 and final.seeds == [4]
    assert final.lacking == [(0, "test_last"), (1, "test_last"), (2, "test_last"),
                             (3, "test_last")]
    assert ours_text(final, 1).endswith("(n=1; seeds 0,1,2,3 lack test_last)")
    final.values, final.seeds = [], []
    assert ours_text(final, 1) == "missing (n=0; seeds 0,1,2,3 lack test_last)"
