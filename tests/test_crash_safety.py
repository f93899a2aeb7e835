"""No crash leaves a run stuck or loses what it had: checkpoints written
atomically and verified before a resume, last.ckpt every epoch, resumed curves appended, a
corrupt metrics.json redone, one process per run folder. Process faults use real processes
and wait on events (a file the run writes), never on a time."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import compose_train
from midl.reporting.runs import read_run
from midl.runs.folder import RunLockedError, run_lock
from midl.train import train

HERE = Path(__file__).resolve().parent
QUIET = ["callbacks.progress_bar.refresh_rate=0"]


def _env(out: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "MIDL_OUTPUT_DIR": str(out), **extra}


def _paused_run(args: list[str], out: Path, epoch: int) -> tuple[subprocess.Popen, Path]:
    """``midl.train`` in a subprocess that stops at the start of ``epoch`` (0-based) and
    writes its pid to the returned file then (tests/run_paused.py)."""
    marker = out / f"paused_at_{epoch}"
    proc = subprocess.Popen([sys.executable, str(HERE / "run_paused.py"), *args],
                            env=_env(out, MIDL_PAUSE_AT_EPOCH=str(epoch),
                                     MIDL_PAUSE_FILE=str(marker)),
                            cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, marker


def _wait_for(marker: Path, proc: subprocess.Popen) -> None:
    """Block until ``proc`` writes ``marker`` (fails if it exits first)."""
    while not marker.exists():
        try:
            proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the run exited ({proc.returncode}) before {marker.name}: "
                    f"{proc.stderr.read()[-3000:]}")


def _rows(path: Path) -> list[dict[str, str]]:
    """The rows of a metrics.csv, each without its empty cells."""
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


def test_kill_after_epoch_3_of_4_resumes_at_epoch_4_and_keeps_every_row(tmp_path):
    # one intra-op thread in both processes: the reference trains inside pytest, whose thread
    # count earlier tests may have changed, and float sums depend on it
    args = [*QUIET, "trainer.max_epochs=4", "seed=3", "num_threads=1"]
    killed_out = tmp_path / "killed"
    killed_out.mkdir()
    victim, marker = _paused_run(args, killed_out, epoch=3)
    _wait_for(marker, victim)  # epochs 1-3 done, epoch 4 about to start
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run_dir = killed_out / "train" / "runs" / "seed=3,trainer.max_epochs=4"
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2  # last.ckpt is epoch 3's (0-based 2), improved or not
    rows_before = _rows(run_dir / "csv" / "metrics.csv")
    assert {r["epoch"] for r in rows_before} == {"0", "1", "2"}

    rerun = subprocess.run([sys.executable, "-m", "midl.train", *args], env=_env(killed_out),
                           cwd=killed_out, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming from {run_dir / 'checkpoints' / 'last.ckpt'} (step {last['global_step']})" \
        in rerun.stdout + rerun.stderr  # Hydra logs to stdout
    resumed = json.loads((run_dir / "metrics.json").read_text())
    reference_dir = tmp_path / "whole"  # the same run, uninterrupted
    threads = torch.get_num_threads()
    try:
        reference = train(compose_train(args, reference_dir))
    finally:
        torch.set_num_threads(threads)  # the tests after this one keep theirs
    assert resumed["test"] == reference["test"]
    # the curves of the epochs before the kill are kept, and the resumed epoch follows them:
    # row for row the uninterrupted run's curves
    curves = run_dir / "csv" / "metrics.csv"
    assert _rows(curves)[:len(rows_before)] == rows_before
    assert curves.read_text() == (reference_dir / "csv" / "metrics.csv").read_text()


def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """A full disk while last.ckpt is written (here: the rename fails) leaves the previous
    last.ckpt whole and no temporary file; the rerun resumes from the newest whole
    checkpoint: epoch 2's top-k checkpoint, written just before the failed last.ckpt."""
    real_replace, calls = os.replace, []

    def replace(src, dst, *a, **k):
        if str(dst).endswith("last.ckpt"):
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        train(compose_train([*QUIET, "trainer.max_epochs=3"], tmp_path))
    monkeypatch.setattr(os, "replace", real_replace)
    checkpoints = tmp_path / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["epoch"] == 0
    assert not [p.name for p in checkpoints.iterdir() if p.name.endswith(".tmp")]
    newest = max(checkpoints.glob("epoch_*.ckpt"), key=lambda p: p.stat().st_mtime)
    assert torch.load(newest, weights_only=True)["epoch"] == 1
    record = train(compose_train([*QUIET, "trainer.max_epochs=3"], tmp_path))
    assert record["resumed_from"] == str(newest)
    assert record["epochs_trained"] == 3


def test_truncated_last_ckpt_is_set_aside_and_the_previous_one_used(tmp_path, caplog):
    first = train(compose_train([*QUIET, "trainer.max_epochs=2"], tmp_path))
    (tmp_path / "metrics.json").unlink()  # killed before testing, with a truncated last.ckpt
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    best = next(p for p in (tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    leftover = tmp_path / "checkpoints" / ".last.ckpt.k1ll3d.tmp"  # a kill mid-write
    leftover.write_bytes(b"PK")

    record = train(compose_train([*QUIET, "trainer.max_epochs=2"], tmp_path))
    aside = list((tmp_path / "checkpoints").glob("last.ckpt.corrupt-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == 1000
    assert "does not load (truncated or corrupt): set aside as last.ckpt.corrupt-" in caplog.text
    assert record["resumed_from"] == str(best)
    assert record["test"] == first["test"]
    assert not leftover.exists()


def test_resume_takes_the_newest_checkpoint_also_when_lightning_wrote_last_v1(tmp_path):
    """Seen in a sweep: after a resume from a ``last.ckpt`` that ``ModelCheckpoint`` had not
    written itself (its state names no last file), Lightning keeps that file and writes the
    later epochs to ``last-v1.ckpt``. A further interruption must resume from the newest
    state (epoch 3 here), not from the stale ``last.ckpt`` (epoch 1)."""
    train(compose_train([*QUIET, "trainer.max_epochs=1"], tmp_path))
    (tmp_path / "metrics.json").unlink()
    last = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    key = next(k for k in state["callbacks"] if k.startswith("ModelCheckpoint"))
    state["callbacks"][key]["last_model_path"] = ""  # as a SIGTERM save before any epoch end
    torch.save(state, last)
    whole = train(compose_train([*QUIET, "trainer.max_epochs=3"], tmp_path))
    newer = tmp_path / "checkpoints" / "last-v1.ckpt"
    assert newer.exists() and torch.load(last, weights_only=True)["epoch"] == 0
    (tmp_path / "metrics.json").unlink()  # killed after training, before the record

    record = train(compose_train([*QUIET, "trainer.max_epochs=3"], tmp_path))
    assert record["resumed_from"] == str(newer)
    assert record["test"] == whole["test"]


def test_a_resumed_run_reports_the_time_of_every_process_that_trained_it(tmp_path):
    """wall_time_s sums the processes (the checkpoint keeps the count); wall_time_process_s
    is the last process's alone."""
    first = train(compose_train([*QUIET, "trainer.max_epochs=1"], tmp_path))
    (tmp_path / "metrics.json").unlink()
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    before = state["callbacks"]["TrainingClock"]["elapsed_s"]
    assert 0 < before <= first["wall_time_s"]
    assert first["wall_time_s"] == pytest.approx(first["wall_time_process_s"], abs=0.05)

    record = train(compose_train([*QUIET, "trainer.max_epochs=2"], tmp_path))
    assert record["resumed_from"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert record["wall_time_s"] == pytest.approx(before + record["wall_time_process_s"],
                                                  abs=0.05)


def test_a_resumed_run_records_the_commit_and_start_of_every_process(tmp_path):
    """processes: one {commit, started_at} per process that trained the run, carried in the
    checkpoint like the elapsed time; the first process's stamp survives the resume."""
    first = train(compose_train([*QUIET, "trainer.max_epochs=1"], tmp_path))
    [stamp] = first["processes"]
    assert stamp["commit"] == first["commit"] and stamp["started_at"] <= first["finished_at"]
    (tmp_path / "metrics.json").unlink()
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["callbacks"]["TrainingClock"]["processes"] == [stamp]

    record = train(compose_train([*QUIET, "trainer.max_epochs=2"], tmp_path))
    assert record["resumed_from"] is not None
    assert len(record["processes"]) == 2 and record["processes"][0] == stamp
    assert stamp["started_at"] < record["processes"][1]["started_at"] <= record["finished_at"]
    assert record["processes"][1]["commit"] == record["commit"]


def test_no_loadable_checkpoint_starts_from_scratch(tmp_path):
    train(compose_train([*QUIET, "trainer.max_epochs=1"], tmp_path))
    (tmp_path / "metrics.json").unlink()
    for path in (tmp_path / "checkpoints").glob("*.ckpt"):
        path.write_bytes(b"")
    record = train(compose_train([*QUIET, "trainer.max_epochs=1"], tmp_path))
    assert record["resumed_from"] is None and record["epochs_trained"] == 1
    assert len(list((tmp_path / "checkpoints").glob("*.corrupt-*"))) == 2


@pytest.mark.parametrize("content", ["", '{"test": {"test/acc": 0.9', "[]"])
def test_corrupt_metrics_json_is_set_aside_and_the_run_redone(tmp_path, caplog, content):
    cfg = [*QUIET, "logger=none", "trainer.max_epochs=1"]
    first = train(compose_train(cfg, tmp_path))
    (tmp_path / "metrics.json").write_text(content)
    leftover = tmp_path / ".metrics.json.x1y2z3.tmp"  # a kill during the atomic write
    leftover.write_text('{"te')
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- +experiment/setting=x\n- seed=0\n")
    listed = read_run(tmp_path)  # the report lists it until it is redone
    assert listed.status == "incomplete" and "metrics.json" in listed.note

    again = train(compose_train(cfg, tmp_path))
    assert again["test"] == first["test"]
    assert json.loads((tmp_path / "metrics.json").read_text())["test"] == first["test"]
    aside = list(tmp_path.glob("metrics.json.corrupt-*"))
    assert [p.read_text() for p in aside] == [content]
    assert "set aside as metrics.json.corrupt-" in caplog.text
    assert not leftover.exists()


def test_second_process_with_the_same_overrides_refuses_at_once(tmp_path):
    """Two real trainings with the same overrides: the first is held at the start of its
    second epoch; the second refuses, naming the folder and the first one's pid."""
    args = [*QUIET, "trainer.max_epochs=3", "seed=11"]
    first, marker = _paused_run(args, tmp_path, epoch=1)
    try:
        _wait_for(marker, first)
        second = subprocess.run([sys.executable, "-m", "midl.train", *args], env=_env(tmp_path),
                                cwd=tmp_path, capture_output=True, text=True)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    run_dir = tmp_path / "train" / "runs" / "seed=11,trainer.max_epochs=3"
    assert second.returncode != 0
    assert f"{run_dir} is in use by another process (pid {first.pid})" in second.stderr
    assert not (run_dir / "error.txt").exists()
    with run_lock(run_dir):  # the killed holder's lock went with it
        pass


def test_run_lock_is_exclusive_and_released(tmp_path):
    with run_lock(tmp_path):
        assert (tmp_path / ".run.pid").read_text().strip() == str(os.getpid())
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()}"):
            with run_lock(tmp_path):
                pass
    assert not (tmp_path / ".run.pid").exists()
    with run_lock(tmp_path):  # free again
        pass
