"""Hydra launchers for table sweeps: joblib (local parallel) and submitit (SLURM, local)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_hooks import wait_for_pause
from hydra import compose, initialize_config_dir

from midl.evaluation import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
GUARD_S = 1800  # hang guard for a subprocess only: no test waits on a time
TARGETS = {
    "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "local_parallel": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "slurm_gpu": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
}


@pytest.mark.parametrize("launcher", sorted(TARGETS))
def test_launcher_composes_with_a_table_sweep(launcher):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"hydra/launcher={launcher}", "+experiment=table4",
                                          "+scale=cpu"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == TARGETS[launcher]
    assert str(cfg.hydra.sweeper.params.seed) == "0,1,2,3,4"
    if launcher == "slurm_gpu":
        assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.tasks_per_node == 1
    if launcher == "local_parallel":
        assert cfg.hydra.launcher.n_jobs == 2


@pytest.mark.slow
def test_submitit_local_runs_a_tiny_sweep(tmp_path):
    """Two fast_dev_run jobs through submitit's local executor land in the usual folders."""
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "midl.train", "-m", "hydra/launcher=submitit_local", "debug=fdr",
         "seed=0,1", "hydra.launcher.timeout_min=30"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=GUARD_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for seed in (0, 1):
        record = json.loads((tmp_path / "train" / "multirun" / f"debug=fdr,seed={seed}"
                             / "metrics.json").read_text())
        assert record["seed"] == seed and "test/acc" in record["test"]
    assert (tmp_path / "train" / "multirun" / ".submitit").is_dir()


@pytest.mark.slow
def test_submitit_requeue_saves_mid_epoch_and_resumes_exactly(tmp_path):
    """A sweep job launched by submitit gets submitit's pre-emption signal (SIGUSR2) in the
    middle of training: it saves last.ckpt at the next batch boundary, submitit requeues it,
    the requeued job resumes from that checkpoint, and its metrics equal an uninterrupted
    run's (the mechanism SLURM requeues go through, with submitit's local executor)."""
    args = ["callbacks.progress_bar.refresh_rate=0", "logger=none", "trainer.max_epochs=2",
            "data.batch_size=8", "seed=3"]
    whole_dir, sweep_dir = tmp_path / "whole", tmp_path / "sweep"
    whole = subprocess.Popen([sys.executable, "-m", "midl.train", *args], cwd=ROOT,
                             env={**os.environ, "MIDL_OUTPUT_DIR": str(whole_dir)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    # the job pauses after batch 20 of its second (last) epoch and writes its pid into its run
    # folder's paused.json (tests/fault_hooks.py): the signal lands there, not after a delay
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(sweep_dir), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))}
    sweep = subprocess.Popen(
        [sys.executable, "-m", "midl.train", "-m", "hydra/launcher=submitit_local", *args,
         "hydra.launcher.timeout_min=30", "+callbacks.pause._target_=fault_hooks.PauseAt",
         "+callbacks.pause.epoch=1", "+callbacks.pause.batch=20",
         "+callbacks.pause.signal_name=SIGUSR2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    multirun = sweep_dir / "train" / "multirun"
    try:
        paused = wait_for_pause(multirun, sweep, pattern="*/paused.json")
        assert paused["pid"] != sweep.pid  # the submitit job process, not the launching one
        os.kill(paused["pid"], signal.SIGUSR2)
        assert sweep.wait(timeout=GUARD_S) == 0, sweep.stderr.read()[-3000:]
        assert whole.wait(timeout=GUARD_S) == 0, whole.stderr.read()[-3000:]
    finally:  # a failed test leaves no training behind (submitit's job is in sweep's session)
        for proc in (sweep, whole):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    logs = "".join(p.read_text() for p in (multirun / ".submitit").rglob("*_log.*"))
    assert "received SIGUSR2" in logs and "saved" in logs and "Requeued job" in logs, logs[-3000:]
    requeued = json.loads(next(multirun.glob("*/metrics.json")).read_text())
    uninterrupted = json.loads(next((whole_dir / "train" / "runs").glob("*/metrics.json"))
                               .read_text())
    assert requeued["resumed_from"] is not None and uninterrupted["resumed_from"] is None
    assert requeued["test"] == uninterrupted["test"]
