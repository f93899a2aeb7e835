"""Run folders that behave, records a person can read, a quiet console:

- a debug run (``debug=fdr|limit|overfit|profiler``) keeps its ``metrics.json`` (marked
  ``"debug"``) but never gets a run record, and no report or summary counts it;
- a failed composition leaves no run folder, and answers before torch is imported;
- a single run and a one-job sweep of the same overrides find each other's finished result;
- settings that cannot change a result stay out of folder names;
- every sweep keeps its own ``multirun.<time>.yaml``;
- ``metrics.json`` opens with the test metrics as the console prints them, lists on one line;
- Lightning's tip banner, its ``log_every_n_steps`` warning and doubled log lines are gone;
- ``make tables`` ends with what it did (midl.reporting.session).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import CONFIG_DIR, compose_train
from midl.extras import dropped_log_lines, quiet_console
from midl.reporting.runs import collect_runs
from midl.runs import records as rec
from midl.runs.provenance import NOT_RESULT_KEYS
from midl.summarize import find_runs, summarize

QUIET = ["logger=none", "callbacks.progress_bar.refresh_rate=0", "extras.print_config=false"]
TINY = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
        "+trainer.limit_test_batches=1"]


def _midl_train(args: list[str], outputs: Path, records: Path, *python: str,
                timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(outputs), "MIDL_RECORDS_DIR": str(records)}
    return subprocess.run([sys.executable, *python, "-m", "midl.train", *args], cwd=outputs.parent,
                          env=env, capture_output=True, text=True, timeout=timeout)


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level package names in ``python -X importtime`` output."""
    return {line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in importtime_stderr.splitlines() if line.startswith("import time:")}


# -- composition, --help and folder names: no training, no torch --------------------------------

def test_a_failed_composition_leaves_no_folder_and_never_imports_torch(tmp_path):
    outputs = tmp_path / "outputs"
    typo = _midl_train(["trainer.max_epoch=1"], outputs, tmp_path / "records", "-X", "importtime")
    assert typo.returncode != 0 and "max_epoch" in typo.stderr
    assert not outputs.exists()  # no run folder, not even the task's
    assert "torch" not in _imported(typo.stderr) and "lightning" not in _imported(typo.stderr)
    helped = _midl_train(["--help"], outputs, tmp_path / "records", "-X", "importtime")
    assert helped.returncode == 0 and "== Config ==" in helped.stdout
    assert "torch" not in _imported(helped.stderr) and not outputs.exists()


def test_settings_that_cannot_change_a_result_stay_out_of_folder_names(tmp_path):
    args = ["logger=tensorboard", "extras=none", "tags=[a]",
            "callbacks.progress_bar.refresh_rate=5", "+trainer.enable_progress_bar=false",
            "num_threads=1", "seed=3",
            "--cfg", "all", "-p", "hydra.run.dir", "--resolve"]
    named = _midl_train(args, tmp_path / "outputs", tmp_path / "records")
    assert named.returncode == 0, named.stderr[-2000:]
    assert named.stdout.strip() == str(tmp_path / "outputs" / "train" / "runs" / "seed=3")
    # the callbacks group also chooses early stopping (a result changes): it names the folder
    bar = _midl_train(["callbacks=rich_progress_bar", *args[-5:]], tmp_path / "outputs",
                      tmp_path / "records")
    assert bar.stdout.strip().endswith("runs/callbacks=rich_progress_bar")


def test_every_key_left_out_of_folder_names_is_a_setting_that_cannot_change_a_result():
    hydra = yaml.safe_load((CONFIG_DIR / "hydra" / "default.yaml").read_text())
    excluded = hydra["job"]["config"]["override_dirname"]["exclude_keys"]

    def not_result(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") for k in NOT_RESULT_KEYS)

    # `experiment` is a group whose content counts, but its name is the task's folder
    assert [k for k in excluded if not not_result(k)] == ["experiment"]
    for key in ("logger", "extras", "tags", "callbacks.progress_bar",
                "trainer.enable_progress_bar", "trainer.log_every_n_steps"):
        assert key in excluded


def test_every_sweep_keeps_its_own_multirun_yaml(tmp_path):
    outputs = tmp_path / "outputs"
    sweep = outputs / "train" / "multirun"
    # the job fails its config check at once (before torch): only the sweep itself matters
    args = ["-m", "debug=fdr", "block.top_k=5000", "logger=none", "extras=none"]
    first = _midl_train([*args, "seed=1"], outputs, tmp_path / "records")
    second = _midl_train([*args, "seed=2"], outputs, tmp_path / "records")
    assert first.returncode != 0 and second.returncode != 0  # the jobs failed, as meant
    kept = sorted(sweep.glob("multirun.*.yaml"))
    assert len(kept) == 2, kept
    seeds = sorted(yaml.safe_load(p.read_text())["hydra"]["overrides"]["task"][-1]
                   for p in kept)
    assert seeds == ["seed=1", "seed=2"]
    latest = yaml.safe_load((sweep / "multirun.yaml").read_text())
    assert latest["hydra"]["overrides"]["task"][-1] == "seed=2"  # Hydra's own: the latest


# -- debug runs -------------------------------------------------------------------------------

def _write_run(folder: Path, record: dict, choices: dict) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
        [f"{k}={v}" for k, v in choices.items()] + ["seed=0"]))
    (folder / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(
        {"hydra": {"runtime": {"choices": choices}}}))
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


def test_a_debug_run_writes_metrics_json_but_no_record_and_no_report_counts_it(tmp_path,
                                                                               monkeypatch):
    records = tmp_path / "records"
    monkeypatch.setenv("MIDL_RECORDS_DIR", str(records))
    run_dir = tmp_path / "out" / "train" / "runs" / "debug=fdr"
    from midl.train import train

    record = train(compose_train(["logger=none", "debug=fdr", "+scale.name=unit"], run_dir))
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["debug"] == record["debug"] == "fdr" and written["test"]["test/acc"] >= 0
    assert not records.exists()  # a scale run, yet no record
    assert rec.save_run_record(run_dir, written, {"choices": {"debug": "fdr"}}) is None

    # a table sweep's folders: a debug run (marked, or only by its Hydra choice as written
    # before the mark existed) is never read; an old debug record neither
    sweep = tmp_path / "sweep"
    choices = {"experiment/setting": "mnist_mlp", "block": "midl", "scale": "unit"}
    _write_run(sweep / "a", {**written, "debug": None}, choices)  # a real run
    _write_run(sweep / "b", written, choices)
    _write_run(sweep / "c", {k: v for k, v in written.items() if k != "debug"},
               {**choices, "debug": "limit"})
    old = {**{k: v for k, v in written.items() if k != "debug"}, "record_format": 1,
           "config_hash": "x",
           "job": {"overrides": ["seed=0"], "choices": {**choices, "debug": "fdr"}}}
    (sweep / "old.json").write_text(json.dumps(old))
    assert [r.path.name for r in collect_runs([sweep])] == ["a"]
    summary = summarize(find_runs([sweep]))
    reasons = {e.run.path.name: e.reason for e in summary.excluded}
    assert reasons == {"b": "a debug run (debug=fdr): never counted",
                       "c": "a debug run (debug=limit): never counted"}


# -- a single run and a one-job sweep find each other ----------------------------------------

def test_a_single_run_and_a_one_job_sweep_of_the_same_overrides_find_each_other(tmp_path):
    from midl.train import train

    single = tmp_path / "train" / "runs" / "seed=5"
    swept = tmp_path / "train" / "multirun" / "seed=5"
    first = train(compose_train([*QUIET, *TINY, "seed=5"], single))
    assert "copied_from" not in first
    (single / "side.json").write_text('{"a": 1}\n')  # e.g. cifar10c_severity3.json
    again = train(compose_train([*QUIET, *TINY, "seed=5"], swept))
    assert again["copied_from"] == str(single) and again["test"] == first["test"]
    assert json.loads((swept / "metrics.json").read_text())["test"] == first["test"]
    assert (swept / "side.json").read_text() == '{"a": 1}\n'
    assert not (swept / "checkpoints").exists()  # not retrained; tested_checkpoint names single's
    assert Path(again["tested_checkpoint"]).is_relative_to(single)
    # other settings in the twin: not adopted, trained here
    other = tmp_path / "train" / "multirun" / "other"
    (tmp_path / "train" / "runs" / "other").mkdir()
    (tmp_path / "train" / "runs" / "other" / "metrics.json").write_text(
        (single / "metrics.json").read_text())
    fresh = train(compose_train([*QUIET, *TINY, "seed=6"], other))
    assert "copied_from" not in fresh and (other / "checkpoints").exists()


# -- metrics.json a person can read ---------------------------------------------------------

def test_metrics_json_opens_with_the_test_metrics_and_keeps_lists_on_one_line(tmp_path):
    from midl.train import train

    record = train(compose_train([*QUIET, *TINY, "data.train_size=300"], tmp_path))
    text = (tmp_path / "metrics.json").read_text()
    assert list(json.loads(text))[:2] == ["test", "best_val"]
    assert text.startswith('{\n  "test": {\n    "test/')
    indices = record["data"]["subset"]["train_indices"]
    assert len(indices) == 300 and json.dumps(indices) in text  # one line
    assert len(text.splitlines()) < 400 and json.loads(text)["data"] == record["data"]


# -- console ----------------------------------------------------------------------------------

def test_quiet_console_silences_lightning_noise_and_repeats():
    import logging

    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from midl.data.formats import ChecksumWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_console()
        warnings.warn("The number of training batches (5) is smaller than the logging "
                      "interval Trainer(log_every_n_steps=50).", UserWarning, stacklevel=1)
        warnings.warn("Checkpoint directory /x/checkpoints exists and is not empty.",
                      UserWarning, stacklevel=1)
        for _ in range(3):
            warnings.warn("unit-test file: MD5 a differs from the published b", ChecksumWarning,
                          stacklevel=1)
        warnings.warn("You're resuming from a checkpoint that ended before the epoch ended "
                      "and your dataloader is not resumable.", UserWarning, stacklevel=1)
        warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "unit-test file: MD5 a differs from the published b", "something else"]
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    # earlier tests (Trainers, Hydra's logging config) may have raised its level or disabled
    # it: INFO and enabled for this check, restored after
    level, disabled = logger.level, logger.disabled
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.disabled = False
    try:
        rank_zero_info("💡 Tip: For seamless cloud logging ...")
        rank_zero_info("GPU available: False, used: False")
        with dropped_log_lines():  # as in an analysis: no accelerator lines
            rank_zero_info("GPU available: False, used: False")
            rank_zero_info("TPU available: False, using: 0 TPU cores")
            rank_zero_info("analysis line")
        rank_zero_info("TPU available: False, using: 0 TPU cores")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
    assert seen == ["GPU available: False, used: False", "analysis line",
                    "TPU available: False, using: 0 TPU cores"]


@pytest.mark.slow
def test_a_debug_run_console_is_quiet_and_shows_the_test_metrics_as_metrics_json(tmp_path):
    outputs, records = tmp_path / "outputs", tmp_path / "records"
    log = tmp_path / "runs.jsonl"
    os.environ["MIDL_RUN_LOG"] = str(log)  # the subprocesses inherit it
    try:
        done = _midl_train(["debug=limit", "extras=none", "+scale.name=unit"], outputs, records)
        again = _midl_train(["debug=limit", "extras=none", "+scale.name=unit"], outputs, records)
    finally:
        del os.environ["MIDL_RUN_LOG"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert again.returncode == 0, again.stderr[-3000:]
    assert [json.loads(line)["outcome"] for line in log.read_text().splitlines()] == [
        "trained", "skipped"]
    console = done.stdout + done.stderr
    for noise in ("Tip:", "litlogger", "logging interval", "LeafSpec", "INFO: "):
        assert noise not in console, noise
    assert console.count("Seed set to 0") == 1  # each Lightning line once
    run_dir = outputs / "train" / "runs" / "+scale.name=unit,debug=limit"
    written = json.loads((run_dir / "metrics.json").read_text())
    printed = json.loads(done.stdout[done.stdout.rindex('{\n  "output_dir"'):])
    assert printed["test"] == written["test"] and written["debug"] == "limit"
    assert not records.exists()


def test_the_session_summary_counts_runs_by_their_last_outcome_and_the_files_written(tmp_path):
    from midl.reporting.session import session_summary

    log = tmp_path / "runs.jsonl"
    log.write_text("\n".join(json.dumps({"run": run, "outcome": o, "seconds": 1.0}) for run, o in [
        ("a", "trained"), ("b", "skipped"), ("c", "failed"), ("c", "trained"), ("d", "failed"),
        ("e", "refused")]) + "\nnot json\n")
    results = tmp_path / "results"
    (results / ".hidden").mkdir(parents=True)
    old, new, hidden = results / "old.md", results / "table2.md", results / ".hidden" / "x"
    for path in (old, new, hidden):
        path.write_text("x")
    os.utime(old, (1_000, 1_000))
    summary = session_summary(log, since=2_000, written=[results, tmp_path / "absent"],
                              title="make tables SCALE=smoke", now=2_000 + 3_723)
    assert summary["runs"] == {"trained": 2, "skipped": 1, "failed": 1, "refused": 1,
                               "preempted": 0}
    assert summary["failed"] == ["d", "e"]
    assert summary["written"] == {str(results): [str(new)], str(tmp_path / "absent"): []}
    assert summary["lines"][:3] == [
        "== make tables SCALE=smoke: done in 1h 02m 03s",
        "   runs: 2 trained, 1 skipped, 1 failed, 1 refused (skipped: finished before, same "
        "settings)",
        f"   files written: 1 under {results}; 0 under {tmp_path / 'absent'}"]


def test_smoke_results_are_ignored_by_git():
    """`make tables SCALE=smoke` writes results/smoke/ and results/runs/smoke/: never committed."""
    from conftest import REPO

    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["results/smoke/table2.md", "results/runs/smoke/grid_x/seed=0.json",
             "outputs/train/runs/default/metrics.json"]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=REPO, capture_output=True,
                             text=True)
    assert ignored.stdout.split() == paths
    kept = subprocess.run(["git", "check-ignore", "results/cpu/table2.md"], cwd=REPO)
    assert kept.returncode == 1  # the real scales' tables stay in git
