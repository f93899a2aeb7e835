"""Reliability: kill-and-resume, failed sweep jobs, atomic writes, config validation,
non-finite losses and determinism."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fault_hooks import wait_for_pause
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import compose_train
from midl.callbacks import FiniteLossGuard, NonFiniteLossError, ReleaseFreedMemory
from midl.config import ConfigError, validate
from midl.data.formats import read_idx
from midl.metrics.memory import resident_mb
from midl.runs.io import atomic_write_json
from midl.runs.provenance import config_hash
from midl.train import train

QUIET = ["callbacks.progress_bar.refresh_rate=0", "logger=none"]
GUARD_S = 1800  # hang guard for a subprocess only: no test waits on a time
TESTS = Path(__file__).resolve().parent


def pause_at(epoch: int, batch: int, signal_name: str | None = "SIGTERM") -> list[str]:
    """Overrides that make a run pause after ``batch`` of ``epoch`` and write ``paused.json``
    (:class:`fault_hooks.PauseAt`), so a test signals it at that point, not after a delay."""
    return ["+callbacks.pause._target_=fault_hooks.PauseAt", f"+callbacks.pause.epoch={epoch}",
            f"+callbacks.pause.batch={batch}", f"+callbacks.pause.signal_name={signal_name}"
            if signal_name else "+callbacks.pause.signal_name=null"]


def _run(args: list[str], out, **kwargs) -> subprocess.Popen:
    pythonpath = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(out), "PYTHONPATH": pythonpath}
    return subprocess.Popen([sys.executable, "-m", "midl.train", *args], env=env, cwd=out,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kwargs)


@pytest.fixture
def run():
    """``run(args, out)`` starts ``python -m midl.train`` (:func:`_run`) in its own session;
    runs still going when the test ends (it failed) are killed with their children, so a
    failed test leaves no training behind."""
    started: list[subprocess.Popen] = []

    def start(args: list[str], out) -> subprocess.Popen:
        started.append(_run(args, out))
        return started[-1]

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_sigkill_mid_run_then_rerun_matches_uninterrupted_run(tmp_path, run):
    args = [*QUIET, "trainer.max_epochs=3", "seed=5"]
    whole_dir, killed_dir = tmp_path / "whole", tmp_path / "killed"
    whole_dir.mkdir(), killed_dir.mkdir()
    uninterrupted = run(args, whole_dir)

    # killed inside epoch 2 (0-based 1), once epoch 1's last.ckpt is written; the rerun of the
    # same command finds the folder (named from the overrides) and resumes from it
    victim = run([*args, *pause_at(epoch=1, batch=3, signal_name=None)], killed_dir)
    paused = wait_for_pause(killed_dir, victim)
    run_dir = next((killed_dir / "train" / "runs").iterdir())
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert paused == {"pid": victim.pid, "epoch": 1, "batch": 3}
    assert not (run_dir / "metrics.json").exists()

    rerun = run([*args, *pause_at(epoch=1, batch=3, signal_name=None)], killed_dir)
    assert rerun.wait(timeout=GUARD_S) == 0, rerun.stderr.read()[-3000:]
    assert uninterrupted.wait(timeout=GUARD_S) == 0, uninterrupted.stderr.read()[-3000:]
    resumed = json.loads((run_dir / "metrics.json").read_text())
    whole = json.loads(next((whole_dir / "train" / "runs").glob("*/metrics.json")).read_text())
    assert resumed["resumed_from"] is not None and whole["resumed_from"] is None
    assert resumed["test"] == whole["test"]


def test_sigterm_saves_mid_epoch_checkpoint_and_resume_is_exact(tmp_path, run):
    # small batches: ~160 steps per epoch; the run pauses after batch 20 of its first epoch
    # (before any epoch-end checkpoint: the case that once made Lightning write later epochs
    # to last-v1.ckpt beside a stale last.ckpt) and the signal is sent then, so it lands
    # inside that epoch however loaded the machine
    args = [*QUIET, "trainer.max_epochs=2", "data.batch_size=8", "seed=7"]
    whole_dir, stopped_dir = tmp_path / "whole", tmp_path / "stopped"
    whole_dir.mkdir(), stopped_dir.mkdir()
    uninterrupted = run(args, whole_dir)

    victim = run([*args, *pause_at(epoch=0, batch=20)], stopped_dir)
    paused = wait_for_pause(stopped_dir, victim)
    assert paused["pid"] == victim.pid
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=GUARD_S) == 128 + signal.SIGTERM, victim.stderr.read()[-3000:]
    run_dir = next((stopped_dir / "train" / "runs").iterdir())
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    position = next(v for k, v in checkpoint.items() if k.endswith("DataModule"))
    assert position == {"epoch": 0, "batches_done": 21}  # saved at the next batch boundary
    assert "SIGTERMException" in (run_dir / "error.txt").read_text()

    rerun = run([*args, *pause_at(epoch=0, batch=20)], stopped_dir)
    assert rerun.wait(timeout=GUARD_S) == 0, rerun.stderr.read()[-3000:]
    assert uninterrupted.wait(timeout=GUARD_S) == 0, uninterrupted.stderr.read()[-3000:]
    resumed = json.loads((run_dir / "metrics.json").read_text())
    whole = json.loads(next((whole_dir / "train" / "runs").glob("*/metrics.json")).read_text())
    assert resumed["resumed_from"] is not None
    assert resumed["test"] == whole["test"]
    assert not (run_dir / "error.txt").exists()
    # the resumed epochs rewrote last.ckpt itself: no versioned copy beside a stale one
    last = sorted(p.name for p in (run_dir / "checkpoints").glob("last*.ckpt"))
    assert last == ["last.ckpt"]
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


def test_failing_sweep_job_is_recorded_and_others_complete(tmp_path, run):
    # block.top_k=5000 exceeds d=256: that job fails validation, the other one completes
    proc = run(["-m", "debug=fdr", "block.top_k=0.5,5000"], tmp_path)
    assert proc.wait(timeout=GUARD_S) != 0
    sweep = tmp_path / "train" / "multirun"
    ok, failed = sweep / "block.top_k=0.5,debug=fdr", sweep / "block.top_k=5000,debug=fdr"
    assert (ok / "metrics.json").exists() and not (ok / "error.txt").exists()
    assert not (failed / "metrics.json").exists()
    assert "block.top_k=5000 is out of range" in (failed / "error.txt").read_text()


def test_interrupted_atomic_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"acc": 0.9})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(path, {"acc": 0.1})
    assert json.loads(path.read_text()) == {"acc": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


@pytest.mark.parametrize("override, message", [
    ("block.top_k=1.5", r"block.top_k=1.5 is out of range"),
    ("block.top_k=0", r"block.top_k=0 is out of range"),
    ("trainer.max_epochs=-1", r"trainer.max_epochs=-1 is not allowed: use an int >= 1"),
    ("data.batch_size=0", r"data.batch_size=0 is not allowed"),
    ("block.estimator=soft", r"block.estimator='soft' is not allowed: use one of"),
    ("optimizer.lr=-0.1", r"optimizer.lr=-0.1 is not allowed: use a finite number > 0"),
    ("block.gate_dropout=1", r"block.gate_dropout=1 is not allowed: use a number in \[0, 1\)"),
    ("seed=-3", r"seed=-3 is not allowed"),
])
def test_bad_values_name_key_value_and_range(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        train(compose_train([override, "debug=fdr"], tmp_path))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["block.top_k", "data.batch_size", "trainer.max_epochs",
                            "block.gate_dropout", "optimizer.lr", "model.hidden_dim"]),
       value=st.one_of(st.integers(-5, 300), st.floats(-2, 3, allow_nan=False)))
def test_numeric_overrides_run_or_fail_validation(tmp_path_factory, key, value):
    out = tmp_path_factory.mktemp("prop")
    cfg = compose_train([f"{key}={value!r}", "debug=fdr", "model.hidden_dim=16"]
                        if key != "model.hidden_dim" else [f"{key}={value!r}", "debug=fdr"], out)
    try:
        validate(cfg)
    except ConfigError:
        return
    record = train(cfg)
    assert 0.0 <= record["test"]["test/acc"] <= 1.0


def test_non_finite_loss_stops_the_run(tmp_path):
    with pytest.raises(NonFiniteLossError, match="training loss is nan"):
        train(compose_train([*QUIET, "optimizer.lr=1e12", "callbacks.finite_loss.every_n_steps=1"],
                            tmp_path))
    guard = FiniteLossGuard(every_n_steps=10)
    trainer = SimpleNamespace(is_last_batch=True, current_epoch=2, global_step=7)
    guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(0.5)}, None, 3)
    with pytest.raises(NonFiniteLossError, match="inf at epoch 2, step 7"):
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(float("inf"))}, None, 3)


FRAGMENT_AND_RELEASE = """
import json, torch
from midl.callbacks import ReleaseFreedMemory
from midl.metrics.memory import resident_mb
release = ReleaseFreedMemory(every_n_steps=4)
big = torch.ones(2**21)
del big  # freeing an 8 MiB mmapped block raises glibc's mmap threshold above 1 MiB
blocks, pins = [], []
for _ in range(200):  # 1 MiB blocks from the heap, each followed by a small live one, so
    blocks.append(torch.ones(2**18))  # that the freed blocks are holes, not the heap's top
    pins.append(torch.ones(1024))
del blocks
before = resident_mb()
release.release()
print(json.dumps({"glibc": release.available, "before": before, "after": resident_mb()}))
"""


@pytest.mark.skipif(resident_mb() is None, reason="reads Linux's /proc")
def test_release_freed_memory_gives_a_fragmented_heap_back_to_the_os():
    # a fresh process: its heap holds only what the snippet made, whatever ran before here
    out = subprocess.run([sys.executable, "-c", FRAGMENT_AND_RELEASE], capture_output=True,
                         text=True, check=True, timeout=GUARD_S, cwd=TESTS.parent)
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    if not measured["glibc"]:
        pytest.skip("the C library is not glibc")
    assert measured["before"] - measured["after"] > 100  # of the 200 MiB freed


def test_release_freed_memory_runs_every_n_steps_and_in_the_transformer_setting(tmp_path):
    release = ReleaseFreedMemory(every_n_steps=4)
    calls = []
    release._trim = calls.append
    for batch_idx in range(9):
        release.on_train_batch_end(None, None, None, None, batch_idx)
    assert len(calls) == 2  # after steps 4 and 8
    release.on_validation_end(None, None)
    assert calls == [0, 0, 0]
    with pytest.raises(ValueError, match="every_n_steps=0"):
        ReleaseFreedMemory(every_n_steps=0)
    setting = [*QUIET, "+experiment/setting=imdb_transformer", "+scale=smoke"]
    transformer = compose_train(setting, tmp_path)
    assert transformer.callbacks.release_memory._target_ == "midl.callbacks.ReleaseFreedMemory"
    assert "release_memory" not in compose_train(QUIET, tmp_path).callbacks
    assert config_hash(transformer) == config_hash(
        compose_train([*setting, "~callbacks.release_memory"], tmp_path))


def test_bit_flipped_data_file_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4])))
    data = bytearray(path.read_bytes())
    data[-6] ^= 0xFF  # corrupt the gzip CRC
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz.*corrupt"):
        read_idx(path)


def test_same_seed_same_metrics_different_seed_different(tmp_path):
    args = [*QUIET, "trainer.max_epochs=2"]
    first = train(compose_train([*args, "seed=1"], tmp_path / "a"))["test"]
    second = train(compose_train([*args, "seed=1"], tmp_path / "b"))["test"]
    other = train(compose_train([*args, "seed=2"], tmp_path / "c"))["test"]
    assert first == second
    assert first != other
