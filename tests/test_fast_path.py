"""The CPU fast path: bf16 autocast for every block, float32 top-k gates, a channels-last CNN,
one thread per sweep job, and parallel sweep jobs that do not clobber each other's files."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch import nn

from conftest import CONFIG_DIR, REPO
from midl.backbones import CNN, MLP
from midl.blocks import MIDLayer, top_k_mask

BLOCK_NAMES = sorted(p.stem for p in (CONFIG_DIR / "block").glob("*.yaml"))
BF16 = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16)


def build(name: str, dim: int) -> nn.Module:
    """Block ``name`` as the backbone builds it, from its config composed by Hydra (a block
    config may extend another through its defaults list)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=[f"block={name}"])
    return instantiate(cfg.block)(dim)


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_every_block_trains_under_bf16_autocast_with_exact_top_k(name):
    torch.manual_seed(0)
    dim = 32
    block = build(name, dim).train()
    shape = (8, dim, 4, 4) if name == "midl_channel" else (16, dim)
    x = torch.randn(*shape, requires_grad=True)
    with BF16():
        y = block(x)
        loss = y.float().pow(2).mean()
        if callable(getattr(block, "aux_loss", None)):
            loss = loss + block.aux_loss()
    loss.backward()
    assert y.shape == x.shape and torch.isfinite(y.float()).all()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    grads = [p.grad for p in block.parameters() if p.grad is not None]  # (unrouted experts: none)
    assert grads and all(torch.isfinite(g).all() for g in grads)
    mask = getattr(block, "last_mask", None)
    if mask is not None and hasattr(block, "k"):  # the top-k blocks: exactly k ones per row
        assert (mask.sum(-1) == block.k).all()


@pytest.mark.parametrize("name", ["midl", "gumbel", "midl_channel", "loramoe"])
def test_gate_logits_stay_float32_under_autocast(name):
    """The gate (router) Linear runs in float32 inside bf16 autocast, so the selection is the
    one of a float32 model for the same input."""
    torch.manual_seed(1)
    block = build(name, 64).eval()
    x = torch.randn(32, 64, 2, 2) if name == "midl_channel" else torch.randn(32, 64)
    with torch.no_grad():
        block(x)
        reference = block.last_alpha if hasattr(block, "last_alpha") else block.last_weights
        reference = reference.clone()
        with BF16():
            block(x)
        fast = block.last_alpha if hasattr(block, "last_alpha") else block.last_weights
    assert fast.dtype == torch.float32
    torch.testing.assert_close(fast, reference)


@pytest.mark.parametrize("backbone", ["mlp", "cnn"])
def test_bf16_mask_agrees_with_float32_mask_for_most_rows(backbone):
    """Inside a model the block's input itself is computed in bf16, so some rows' selections
    move at the k-th gate. Measured (seed 0, untrained, d = 256, k = 128): 86% (MLP) / 87%
    (CNN) of rows identical and 99.9% of mask entries; top-k over bf16 gates (the gate not
    kept in float32) gives only 38% / 15% of rows, from ties among rounded gates."""
    torch.manual_seed(0)
    factory = functools.partial(MIDLayer, top_k=0.5)
    if backbone == "mlp":
        net, x = MLP((784,), 10, factory), torch.randn(1024, 784)
    else:
        net, x = CNN((3, 32, 32), 10, factory), torch.randn(512, 3, 32, 32)
    net.eval()
    with torch.no_grad():
        net(x)
        reference = net.block.last_mask.clone()
        with BF16():
            net(x)
        fast, alpha = net.block.last_mask, net.block.last_alpha
    assert (fast.sum(-1) == net.block.k).all()
    assert (fast == reference).all(-1).float().mean() >= 0.75
    assert (fast == reference).float().mean() >= 0.995
    rounded = top_k_mask(alpha.bfloat16(), net.block.k).bool()  # what a bf16 gate would select
    assert (rounded == reference).all(-1).float().mean() < 0.5


def test_channels_last_cnn_matches_contiguous():
    torch.manual_seed(2)
    factory = functools.partial(MIDLayer, top_k=0.5, gate_dropout=0.0)
    plain = CNN((3, 32, 32), 10, factory).eval()
    fast = CNN((3, 32, 32), 10, factory, channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
        with BF16():
            a, b = fast(x).float(), plain(x).float()
    torch.testing.assert_close(a, b, rtol=0.05, atol=0.05)  # bf16 keeps ~3 significant digits


def test_channels_last_cnn_trains_like_contiguous_in_float32():
    """Training mode (batch-norm statistics, backward): the NHWC conv stack gives the float32
    loss and every gradient of the NCHW one to float rounding, so ``model.channels_last`` is a
    layout choice, not a result setting (midl.runs.provenance.NOT_RESULT_KEYS)."""
    torch.manual_seed(3)
    plain = CNN((3, 32, 32), 10, lambda d: nn.Identity()).train()
    fast = CNN((3, 32, 32), 10, lambda d: nn.Identity(), channels_last=True).train()
    fast.load_state_dict(plain.state_dict())
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    losses = [nn.functional.cross_entropy(net(x), y) for net in (plain, fast)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    for (name, a), (_, b) in zip(plain.named_parameters(), fast.named_parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(fast.features[1].running_var, plain.features[1].running_var)


def test_two_parallel_single_thread_jobs_keep_their_own_files(tmp_path):
    """`make tables`' default launcher: two jobs at once, one thread each, separate folders."""
    out = tmp_path / "out"
    env = {**os.environ, "MIDL_OUTPUT_DIR": str(out), "MIDL_CACHE_DIR": str(tmp_path / "c")}
    cmd = [sys.executable, "-m", "midl.train", "-m", "seed=0,1", "trainer.max_epochs=1",
           "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", "num_threads=1",
           "trainer.precision=bf16-mixed", "logger=csv"]
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    runs = sorted(p.parent for p in (out / "train" / "multirun").glob("*/metrics.json"))
    assert len(runs) == 2 and runs[0] != runs[1]
    records = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert sorted(rec["seed"] for rec in records) == [0, 1]
    assert records[0]["test"]["test/acc"] > 0.5  # digits: learns in one epoch
    for run in runs:  # each job's own curve file, written by one process
        assert (run / "csv").exists() and list((run / "csv").rglob("metrics.csv"))
        assert json.loads((run / "metrics.json").read_text())["config"]["num_threads"] == 1


def test_num_threads_is_set_inside_the_job(tmp_path):
    from midl.factory import set_num_threads

    before = torch.get_num_threads()
    try:
        set_num_threads(1)
        assert torch.get_num_threads() == 1
        set_num_threads(None)  # null keeps the current setting
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


TABLE_TARGETS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")
                       if p.stem.startswith("table") or p.stem in ("baselines", "figures"))


@pytest.mark.parametrize("target", TABLE_TARGETS)
@pytest.mark.parametrize("trainer", ["cpu", "gpu"])
def test_parallel_launcher_composes_for_every_table_target(target, trainer):
    """What `make <target>` passes (Makefile PARALLEL), on the CPU and with trainer=gpu
    (several jobs sharing one GPU), with the bf16 fast path chosen on the command line."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=[
            f"+experiment={target}", "+scale=cpu", "hydra/launcher=local_parallel",
            "hydra.launcher.n_jobs=2", "num_threads=1", f"trainer={trainer}",
            "trainer.precision=bf16-mixed"], return_hydra_config=True)
    assert cfg.hydra.launcher.n_jobs == 2 and cfg.hydra.launcher.prefer == "processes"
    assert cfg.num_threads == 1 and cfg.trainer.precision == "bf16-mixed"
    assert cfg.trainer.accelerator == trainer
    assert cfg.hydra.sweeper.params  # a sweep: the launcher has jobs to run in parallel


def test_makefile_runs_table_sweeps_one_single_thread_job_per_core():
    dry = subprocess.run(["make", "-n", "-o", ".venv/.installed", "table4", "SCALE=smoke"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    line = next(x for x in dry.splitlines() if "-m midl.train" in x)
    assert "hydra/launcher=local_parallel" in line and "num_threads=1" in line
    assert f"hydra.launcher.n_jobs={len(os.sched_getaffinity(0))}" in line  # nproc
    chosen = subprocess.run(["make", "-n", "-o", ".venv/.installed", "table4", "SCALE=smoke",
                             "ARGS=hydra/launcher=submitit_slurm"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    line = next(x for x in chosen.splitlines() if "-m midl.train" in x)
    assert "local_parallel" not in line and "hydra/launcher=submitit_slurm" in line


@pytest.mark.parametrize("name", ["cpu", "quick"])
def test_cpu_scale_precision_follows_the_committed_equivalence_check(name):
    """The CPU scales use bf16 for a backbone only where results/bench/precision.md adopted
    the fast path for its measured setting (MNIST MLP -> mlp, CIFAR-10 CNN -> cnn)."""
    report = (REPO / "results" / "bench" / "precision.md").read_text()
    decision = report.split("## Decision", 1)[1]
    scale = yaml.safe_load((CONFIG_DIR / "scale" / f"{name}.yaml").read_text())["scale"]
    for setting, backbone in (("mnist_mlp", "mlp"), ("cifar10_cnn", "cnn")):
        line = next(x for x in decision.splitlines() if x.startswith(f"- {setting}:"))
        adopted = "fast path adopted" in line
        assert (scale["precision"][backbone] == "bf16-mixed") == adopted, line
    if scale["precision"]["cnn"] == "bf16-mixed":  # the AMX kernels want NHWC; fp32 may too
        assert scale["channels_last"]


def test_precision_report_regenerates_from_its_committed_records():
    """results/bench/precision.md is a function of results/runs/precision/ (and the report's
    code): rendering the committed records again gives the committed file, whatever machine
    renders it (hardware comes from the records). Only the code stamp may differ, while the
    report's code has uncommitted changes."""
    from midl.reporting.precision import render
    from midl.reporting.runs import collect_runs

    committed = (REPO / "results" / "bench" / "precision.md").read_text()
    command = next(line for line in committed.splitlines()
                   if line.startswith("- Command: `"))[len("- Command: `"):-1]
    again = render(collect_runs([REPO / "results" / "runs" / "precision"]), command)

    def unstamped(text: str) -> list[str]:
        return [line.split(";", 1)[-1] if line.startswith("- Report code:") else line
                for line in text.splitlines()]

    assert unstamped(again) == unstamped(committed)
