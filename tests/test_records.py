"""Run records kept in git (midl/runs/records.py): a finished run of a scale is also written,
compact and atomically, to <records>/<scale>/<task_name>/<run folder>.json; a sweep skips a
run whose record exists (same configuration hash; force=true reruns); a half-written record
is never read as complete; the report made from the records alone equals the report made
from the run folders."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, compose_train, require_real
from midl.report import report_table
from midl.reporting.render import build_table
from midl.reporting.runs import collect_runs
from midl.reporting.tables import TABLES
from midl.runs import records as rec
from midl.runs.folder import StaleResultError
from midl.runs.outcome import existing_result
from midl.runs.provenance import config_hash

SWEEP = ["+experiment/setting=mnist_mlp", "+scale=smoke", "block=midl,dropout",
         "data.label_noise=0.0", "seed=0"]
QUIET = ["logger=none", "callbacks.progress_bar.refresh_rate=0", "extras.print_config=false"]
# the analyses the figures need, inside the job (as configs/scale/cpu.yaml asks for them)
IN_JOB = "analyses={_target_:midl.analyses.in_job,_partial_:true,names:[smi,tsne]}"
PAPER = yaml.safe_load((REPO / "results" / "paper_reference.yaml").read_text())


def _env(root: Path, outputs: Path) -> dict[str, str]:
    return {**os.environ, "MIDL_OUTPUT_DIR": str(outputs),
            "MIDL_RECORDS_DIR": str(root / "records"), "MIDL_CACHE_DIR": str(root / "cache"),
            "MIDL_DATA_DIR": str(require_real("MNIST"))}


def _sweep(root: Path, outputs: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "midl.train", "-m", *SWEEP, *QUIET, IN_JOB,
                           *extra],
                          cwd=REPO, env=_env(root, outputs), capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Two real smoke-scale runs (MNIST MLP, MID-L and Dropout, seed 0, 256 images, one
    epoch), their run folders and their records."""
    root = tmp_path_factory.mktemp("smoke")
    done = _sweep(root, root / "outputs")
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def _folders(outputs: Path) -> list[Path]:
    return sorted(p.parent.parent for p in outputs.rglob(".hydra/overrides.yaml"))


def test_a_finished_run_of_a_scale_writes_its_compact_record(smoke):
    folders = _folders(smoke / "outputs")
    assert len(folders) == 2
    for folder in folders:
        path = smoke / "records" / "smoke" / "grid_mnist_mlp" / f"{folder.name}.json"
        metrics = json.loads((folder / "metrics.json").read_text())
        record = rec.read_record(path)
        assert record is not None
        assert path.stat().st_size < 20_000  # a few KB: no checkpoint, no curves
        assert record["test"] == metrics["test"]
        # the config without this machine's folders, hashing as the run's did
        assert record["config"] == rec.machine_free(metrics)["config"]
        assert record["config_hash"] == metrics["config_hash"] == config_hash(record["config"])
        assert str(smoke) not in path.read_text()
        assert record["command"].startswith("python -m midl.train -m ")
        assert "result_config" not in record
        assert record["tested_checkpoint"] == Path(metrics["tested_checkpoint"]).name
        assert "+scale=smoke" in record["job"]["overrides"]
        assert record["job"]["choices"]["experiment/setting"] == "mnist_mlp"


def test_compact_digests_long_lists_and_moves_analysis_arrays_to_a_companion(tmp_path):
    run = tmp_path / "grid_x" / "multirun" / "seed=0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- +experiment/setting=x\n- seed=0\n")
    indices = list(range(500))
    mi, frequency = np.linspace(0, 1, 256).tolist(), np.linspace(1, 0, 256).tolist()
    points = np.arange(200 * 2, dtype=float).reshape(200, 2)
    labels = np.arange(200) % 10
    np.savez(run / "figure4_tsne_tsne.npz", points=points, labels=labels)
    side = {"severity": 3, "accuracy": {"mean": 0.5, "contrast": 0.5}}
    (run / "cifar10c_severity3.json").write_text(json.dumps(side))
    metrics = {"task_name": "grid_x", "seed": 0, "test": {"test/acc": 0.5},
               "tested_checkpoint": "/somewhere/checkpoints/epoch=0.ckpt",
               "data": {"subset": {"train_indices": indices}},
               "analysis": {"smi": {"smi": {"per_neuron_mi": mi, "activation_frequency":
                                            frequency}},
                            "tsne": {"tsne": {"figure4": "figure4_tsne_tsne.png"}}},
               "config": {"task_name": "grid_x", "scale": {"name": "smoke"},
                          "paths": {"records_dir": str(tmp_path / "records")}},
               "config_hash": "0123456789abcdef", "result_config": {"a": 1}}
    (run / "metrics.json").write_text(json.dumps(metrics))

    path = rec.save_run_record(run)
    assert path == tmp_path / "records" / "smoke" / "grid_x" / "seed=0.json"
    stored = json.loads(path.read_text())
    assert stored["data"]["subset"]["train_indices"] == {
        "$digest": rec._digest(indices), "length": 500}
    assert stored["analysis"]["smi"]["smi"]["per_neuron_mi"] == {
        "$npz": "analysis.smi.smi.per_neuron_mi", "length": 256}
    assert stored["side_files"] == {"cifar10c_severity3.json": side}
    assert rec.companion_path(path).exists() and path.stat().st_size < 4_000

    record = rec.read_record(path)
    assert record["analysis"]["smi"]["smi"]["per_neuron_mi"] == mi
    assert record["analysis"]["smi"]["smi"]["activation_frequency"] == frequency
    assert record["tested_checkpoint"] == "epoch=0.ckpt"
    [as_run] = collect_runs([tmp_path / "records"])
    assert as_run.is_record and as_run.complete and as_run.key.setting == "x"
    assert as_run.side_json("cifar10c_severity3.json") == side
    got_points, got_labels = as_run.tsne_points("tsne", "figure4_tsne_tsne.png")
    np.testing.assert_array_equal(got_points, points)
    np.testing.assert_array_equal(got_labels, labels)


def _record(tmp_path: Path) -> Path:
    """A small valid record with a companion (written by the real writer)."""
    record = {"record_format": 1, "seed": 0, "test": {"test/acc": 0.5}, "config": {},
              "config_hash": "0123456789abcdef",
              "job": {"overrides": ["+experiment/setting=x", "seed=0"], "choices": {}},
              "analysis": {"smi": {"mi": {"$npz": "analysis.smi.mi", "length": 100}}}}
    return rec.write_record(tmp_path / "smoke" / "grid_x" / "seed=0.json", record,
                            {"analysis.smi.mi": np.arange(100.0)})


def test_a_half_written_record_is_never_read_as_complete(tmp_path):
    path = _record(tmp_path)
    text = path.read_text()
    assert rec.read_record(path) is not None and len(collect_runs([tmp_path])) == 1

    path.write_text(text[: len(text) // 2])  # cut short outside midl's atomic writes
    assert rec.read_record(path) is None and collect_runs([tmp_path]) == []
    path.write_text(json.dumps({"test": {"test/acc": 0.5}}))  # JSON, but not a record
    assert rec.read_record(path) is None
    path.write_text(text)
    rec.companion_path(path).unlink()  # the arrays it names are missing
    assert rec.read_record(path) is None and collect_runs([tmp_path]) == []


def test_a_record_write_killed_midway_leaves_nothing_that_reads_as_complete(tmp_path):
    """A real process is SIGKILLed inside the record's write (after its data is written,
    before the rename): only the hidden temporary file is left, and it is never read."""
    code = f"""
import os, signal, numpy as np
from midl.runs import records
os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
records.write_record({str(tmp_path / "smoke" / "grid_x" / "seed=0.json")!r},
    {{"record_format": 1, "seed": 0, "test": {{"test/acc": 0.5}}, "config": {{}},
      "config_hash": "0", "job": {{"overrides": ["+experiment/setting=x", "seed=0"]}}}}, {{}})
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          timeout=300)
    assert done.returncode == -signal.SIGKILL
    left = sorted(p.name for p in (tmp_path / "smoke" / "grid_x").iterdir())
    assert len(left) == 1 and left[0].startswith(".seed=0.json.") and left[0].endswith(".tmp")
    assert json.loads((tmp_path / "smoke" / "grid_x" / left[0]).read_text())["test"]
    assert rec.find_records(tmp_path) == [] and collect_runs([tmp_path]) == []
    cfg = {"task_name": "grid_x", "scale": {"name": "smoke"},
           "paths": {"records_dir": str(tmp_path)}}
    assert rec.read_record(rec.record_path(cfg, "seed=0")) is None


def test_report_from_the_records_alone_equals_the_report_from_the_run_folders(smoke, tmp_path):
    from_folders = collect_runs([smoke / "outputs"])
    from_records = collect_runs([smoke / "records" / "smoke"])
    assert [r.key for r in from_folders] == [r.key for r in from_records]
    assert all(r.is_record for r in from_records) and len(from_records) == 2
    written = {}
    for name, runs in (("folders", from_folders), ("records", from_records)):
        paths = report_table("baselines", runs, "smoke", tmp_path / name, force=False,
                             command="make report SCALE=smoke", paper=PAPER)
        written[name] = {p.name: p.read_bytes() for p in paths if p.suffix != ".png"}
    assert set(written["records"]) == {"baselines.md", "baselines.csv", "baselines.tex"}
    assert written["records"] == written["folders"]
    result = build_table(TABLES["baselines"], from_records, [0], "smoke", PAPER)
    assert sorted(r.key.block for r in result.counted) == ["dropout", "midl"]
    acc = {r.key.block: r.record["test"]["test/acc"] for r in from_folders}
    text = written["records"]["baselines.md"].decode()
    for block in ("midl", "dropout"):
        assert f"{100 * acc[block]:.1f}" in text  # the runs' accuracies are in the table


def test_a_run_in_a_folder_and_in_a_record_is_one_run(smoke, tmp_path):
    outputs = tmp_path / "outputs"
    shutil.copytree(smoke / "outputs", outputs)
    both = collect_runs([outputs, smoke / "records" / "smoke"])
    assert len(both) == 2 and not any(r.is_record for r in both)
    # an interrupted rerun of the folder (no metrics.json) leaves the record to count
    [midl_run] = [p for p in _folders(outputs) if "block=midl" in p.name]
    (midl_run / "metrics.json").unlink()
    both = collect_runs([outputs, smoke / "records" / "smoke"])
    assert len(both) == 2
    assert [r.is_record for r in both if r.key.block == "midl"] == [True]


def test_the_sweep_skips_a_run_whose_record_is_committed(smoke, tmp_path):
    """A fresh clone, or a new output folder: no run folders, only the committed records.
    Rerunning the sweep trains nothing: each job finds its record (same configuration hash),
    skips, and copies the record's result into its folder (``copied_from``), so the report of
    the new folder holds both rows."""
    records = smoke / "records"
    before = {p: p.read_bytes() for p in records.rglob("*.json")}
    fresh = tmp_path / "outputs"
    env_root = tmp_path
    (env_root / "records").symlink_to(records)
    done = _sweep(env_root, fresh)
    assert done.returncode == 0, done.stderr[-3000:]
    folders = _folders(fresh)
    assert len(folders) == 2
    for folder in folders:
        assert not (folder / "checkpoints").exists()  # nothing was trained
        copied = json.loads((folder / "metrics.json").read_text())
        source = records / "smoke" / "grid_mnist_mlp" / f"{folder.name}.json"
        assert copied["copied_from"] == str(env_root / "records" / source.relative_to(records))
        assert copied["test"] == rec.read_record(source)["test"]
    assert "The committed run record" in done.stdout + done.stderr
    assert {p: p.read_bytes() for p in records.rglob("*.json")} == before
    # the user's own report of the new folder: both rows, as for the first sweep's folder
    shown = subprocess.run([sys.executable, "-m", "midl.report", "baselines",
                            str(fresh / "grid_mnist_mlp" / "multirun"), "--scale", "smoke",
                            "--out", str(tmp_path / "report")],
                           cwd=REPO, env=_env(env_root, fresh), capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    text = next((tmp_path / "report").rglob("baselines.md")).read_text()
    runs = {r.key.block: r for r in collect_runs([smoke / "outputs"])}
    for block in ("midl", "dropout"):
        acc = 100 * runs[block].record["test"]["test/acc"]
        assert f"{acc:.1f}" in text
    assert "2 complete of" in text


def test_a_committed_record_of_other_settings_is_refused_and_force_reruns(smoke, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("MIDL_RECORDS_DIR", str(smoke / "records"))
    [midl_run] = [p for p in _folders(smoke / "outputs") if "block=midl" in p.name]
    run_dir = tmp_path / midl_run.name  # same folder name, no metrics.json: the record rules
    job = ["+experiment/setting=mnist_mlp", "+scale=smoke", "block=midl",
           "data.label_noise=0.0", "seed=0", *QUIET]
    same = existing_result(run_dir, compose_train(job, run_dir))
    assert same is not None and same["test"] == json.loads(
        (midl_run / "metrics.json").read_text())["test"]
    assert "copied_from" in json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").unlink()  # the committed record, not its copy, refuses
    with pytest.raises(StaleResultError) as error:
        existing_result(run_dir, compose_train([*job, "block.top_k=0.25"], run_dir))
    message = str(error.value)
    assert "The committed run record" in message and midl_run.name in message
    assert "block.top_k: recorded 0.5, now 0.25" in message and "force=true" in message
    assert existing_result(run_dir, compose_train([*job, "force=true"], run_dir)) is None


def test_a_record_of_a_scale_without_records_or_without_a_scale_is_not_written(tmp_path):
    assert rec.record_path({"task_name": "t"}, tmp_path / "run") is None
    assert rec.record_path({"task_name": "t", "scale": {"name": "precision", "records": False}},
                           tmp_path / "run") is None
    with pytest.raises(rec.RecordError, match="task_name"):
        rec.record_path({"scale": {"name": "smoke"}}, tmp_path / "run")


def test_the_analyses_the_tables_need_are_in_the_record_when_it_is_written(smoke, tmp_path):
    """The sweep asks for the figures' analyses inside the job (IN_JOB): the seed-0 MNIST
    MID-L run gets SMI (Figure 3) and t-SNE (Figure 4), its Dropout baseline t-SNE only
    (what the tables need for it); the record holds them (per-neuron arrays and points in
    its companion), and the figures are drawn from the records alone."""
    folder = smoke / "records" / "smoke" / "grid_mnist_mlp"
    runs = {r.key.block: r for r in collect_runs([smoke / "records" / "smoke"])}
    midl_record, dropout_record = runs["midl"].record, runs["dropout"].record
    assert {"smi", "tsne"} <= set(midl_record["analysis"])
    assert set(dropout_record["analysis"]) == {"tsne"}
    smi = midl_record["analysis"]["smi"]["smi"]
    assert len(smi["per_neuron_mi"]) == len(smi["activation_frequency"]) > 64
    assert rec.companion_path(runs["midl"].path).exists()
    stored = json.loads(runs["midl"].path.read_text())
    assert "$npz" in stored["analysis"]["smi"]["smi"]["per_neuron_mi"]
    assert all(p.stat().st_size < 20_000 for p in folder.glob("*.json"))
    # the record equals the run folder's final metrics.json (the analyses included)
    [midl_dir] = [p for p in _folders(smoke / "outputs") if "block=midl" in p.name]
    metrics = json.loads((midl_dir / "metrics.json").read_text())
    assert midl_record["analysis"]["smi"]["smi"]["per_neuron_mi"] == \
        metrics["analysis"]["smi"]["smi"]["per_neuron_mi"]

    from midl.report import report_figures

    written = report_figures(list(runs.values()), "smoke", tmp_path, force=False)
    names = {p.name for p in written}
    assert {"figure3_mnist.png", "figure4_mnist.png", "figures.md"} <= names
    lines = [line for line in (tmp_path / "smoke" / "figures.md").read_text().splitlines()
             if line.startswith(("- figure3 MNIST", "- figure4 MNIST"))]
    assert len(lines) == 2 and not any("missing" in line.lower() for line in lines), lines
