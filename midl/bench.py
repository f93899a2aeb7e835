"""Benchmark suite: ``python -m midl.bench`` / ``make bench``.

Every figure is a ratio of two timings taken side by side in this one process: the candidates
of a comparison are timed in interleaved rounds (``torch.utils.benchmark``, fixed thread count,
warm-up first), each round gives one ratio, and the table shows the median ratio and its
inter-quartile range (IQR) over the rounds. A loaded machine slows both sides of a ratio alike,
so the ratios hold where absolute times do not. Results go to ``results/bench/<device>.json``
(written atomically).

Sections:

- ``block_cost``: forward (eval, no grad) and forward+backward (train mode, input requiring
  grad) of :class:`midl.blocks.MIDLayer` (fused and reference paths), F2 alone and
  ``nn.Linear(d, d)`` at d in {256, 512, 1024}, batch 1, 64, 256, with FLOPs counted by
  ``FlopCounterMode``; plus MID-L's GEMM floor: the same matrix multiplications (forward: its
  five projections; backward: their input and weight gradients) run alone on preallocated
  tensors. ``midl_reference/gemm_floor`` (the default path, ``block.fused=false``) is the
  issue's target ratio (<= 1.3 at d = 512, batch 64); ``midl_fused/gemm_floor`` is the
  fused option's.
- ``baselines``: every block of ``configs/block/`` at d = 512, batch 64, forward+backward,
  against ``nn.Linear`` and MID-L.
- ``overhead``: one epoch (batch 64, synthetic tensors of MNIST's and CIFAR-10's shapes) of the
  ``midl.train`` machinery (Hydra config, Lightning module and trainer) against a plain
  PyTorch loop with the same model, optimiser, batch size, number of steps and batch
  transform (augmentation), for the MNIST MLP and the CIFAR-10 CNN; and the training
  loader's sample rate against the training-step rate.
- ``compile``: a training step of the MNIST MLP eager vs ``torch.compile`` (``compile=true``),
  and the seconds the compilation takes.
- ``fast_path``: training steps in fp32 / bf16 autocast / bf16 + channels-last at 1 and all
  threads, the CIFAR-10 sweep's models per hour (one single-thread job per core vs one job on
  all cores) and the CNN step's fraction of the matmul peak (:mod:`midl.bench_fastpath`).

``--smoke`` runs tiny sizes with one round (what the test suite runs; no timing meaning).
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from midl.blocks import MIDLayer
from midl.blocks.midl import rich_path
from midl.runs.io import atomic_write_json

REPO = Path(__file__).resolve().parent.parent
SECTIONS = ("block_cost", "baselines", "overhead", "compile", "fast_path")
BLOCK_DIR = REPO / "configs" / "block"


# ------------------------------------------------------------------------------------------
# timing helpers


def _quartiles(values: list[float]) -> dict[str, float]:
    """Median and IQR (q3 - q1) of ``values``; IQR 0 for fewer than two values."""
    med = statistics.median(values)
    if len(values) < 2:
        return {"median": med, "iqr": 0.0, "n": len(values)}
    q = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": med, "iqr": q[2] - q[0], "n": len(values)}


def time_side_by_side(fns: dict[str, Callable[[], Any]], rounds: int, min_run_time: float,
                      threads: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, one median per round, rounds interleaved.

    Each round times every candidate once with ``Timer.blocked_autorange`` (which
    synchronises CUDA), in the order given, so slow phases of a loaded machine hit all
    candidates of a round.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
            out[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    return out


def _ratio(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Median and IQR over rounds of the per-round ratio ``num / den``."""
    return _quartiles([a / b for a, b in zip(times[num], times[den], strict=True)])


def _count_flops(fn: Callable[[], Any]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


# ------------------------------------------------------------------------------------------
# block cost


def _fwd(model: nn.Module, x: Tensor) -> Callable[[], Any]:
    def run() -> Tensor:
        with torch.no_grad():
            return model(x)
    return run


def _fwd_bwd(model: nn.Module, x: Tensor, grad: Tensor) -> Callable[[], Any]:
    params = [p for p in model.parameters() if p.requires_grad]

    def run() -> None:
        for p in params:
            p.grad = None
        x.grad = None
        model(x).backward(grad)
    return run


def midl_gemms(layer: MIDLayer) -> list[tuple[int, int]]:
    """(in, out) sizes of MID-L's five projections: gate, F1 down/up, F2 first/second."""
    return [(m.in_features, m.out_features)
            for m in (layer.gate, layer.f1[0], layer.f1[1], layer.f2[0], layer.f2[2])]


def gemm_floor(shapes: list[tuple[int, int]], rows: int, backward: bool, device: torch.device,
               dtype: torch.dtype = torch.float32) -> Callable[[], Any]:
    """The matrix multiplications of linear layers ``shapes`` at ``rows`` rows, run alone.

    Forward: Y = X W^T per layer. With ``backward``, also dX = dY W and dW = dY^T X per layer.
    Operands and outputs are preallocated (``torch.mm(..., out=...)``): no allocation, no
    element-wise work, no autograd, no Python module calls; a lower bound for the layer.
    """
    ops: list[tuple[Tensor, Tensor, Tensor]] = []
    for fan_in, fan_out in shapes:
        x = torch.randn(rows, fan_in, device=device, dtype=dtype)
        w = torch.randn(fan_out, fan_in, device=device, dtype=dtype)
        y = torch.empty(rows, fan_out, device=device, dtype=dtype)
        ops.append((x, w.t(), y))
        if backward:
            gy = torch.randn(rows, fan_out, device=device, dtype=dtype)
            ops.append((gy, w, torch.empty(rows, fan_in, device=device, dtype=dtype)))
            ops.append((gy.t(), x, torch.empty(fan_out, fan_in, device=device, dtype=dtype)))

    def run() -> None:
        for a, b, out in ops:
            torch.mm(a, b, out=out)
    return run


def block_cost(dims: list[int], batches: list[int], rounds: int, min_run_time: float,
               threads: int, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    for d in dims:
        torch.manual_seed(0)
        fused = MIDLayer(d, fused=True).to(device)
        reference = MIDLayer(d, fused=False).to(device)
        reference.load_state_dict(fused.state_dict())
        models = {"midl_fused": fused, "midl_reference": reference,
                  "f2": rich_path(d).to(device), "linear": nn.Linear(d, d).to(device)}
        for batch in batches:
            for mode in ("fwd", "fwd+bwd"):
                x = torch.randn(batch, d, device=device, requires_grad=mode == "fwd+bwd")
                grad = torch.randn(batch, d, device=device)
                fns: dict[str, Callable[[], Any]] = {}
                for name, model in models.items():
                    model.train(mode == "fwd+bwd")
                    fns[name] = (_fwd(model, x) if mode == "fwd"
                                 else _fwd_bwd(model, x, grad))
                fns["gemm_floor"] = gemm_floor(midl_gemms(fused), batch, mode == "fwd+bwd",
                                               device)
                flops = {name: _count_flops(fn) for name, fn in fns.items()}
                times = time_side_by_side(fns, rounds, min_run_time, threads)
                rows.append({
                    "d": d, "batch": batch, "pass": mode,
                    "time_s": {n: _quartiles(t) for n, t in times.items()},
                    "flops": flops,
                    "ratios": {
                        "midl_fused/gemm_floor": _ratio(times, "midl_fused", "gemm_floor"),
                        "midl_reference/gemm_floor": _ratio(times, "midl_reference",
                                                            "gemm_floor"),
                        "midl_fused/midl_reference": _ratio(times, "midl_fused",
                                                            "midl_reference"),
                        "midl_fused/f2": _ratio(times, "midl_fused", "f2"),
                        "midl_fused/linear": _ratio(times, "midl_fused", "linear"),
                    },
                })
                print(_block_row(rows[-1]), flush=True)
    return rows


def _fmt(q: dict[str, float], scale: float = 1.0, digits: int = 2) -> str:
    return f"{q['median'] * scale:.{digits}f}±{q['iqr'] * scale:.{digits}f}"


BLOCK_HEADER = (f"{'d':>5} {'B':>4} {'pass':>7} | {'fused ms':>8} {'ref ms':>8} {'F2 ms':>8} "
                f"{'lin ms':>8} {'floor ms':>8} | {'fused/floor':>11} {'ref/floor':>11} "
                f"{'fused/ref':>11} {'fused/F2':>11} {'fused/lin':>11}")


def _block_row(r: dict[str, Any]) -> str:
    t, q = r["time_s"], r["ratios"]
    ms = " ".join(f"{t[n]['median'] * 1e3:8.3f}"
                  for n in ("midl_fused", "midl_reference", "f2", "linear", "gemm_floor"))
    ratios = " ".join(f"{_fmt(q[n]):>11}" for n in (
        "midl_fused/gemm_floor", "midl_reference/gemm_floor", "midl_fused/midl_reference",
        "midl_fused/f2", "midl_fused/linear"))
    return f"{r['d']:>5} {r['batch']:>4} {r['pass']:>7} | {ms} | {ratios}"


# ------------------------------------------------------------------------------------------
# baseline blocks


def baseline_blocks(dim: int) -> dict[str, nn.Module]:
    """Every block of ``configs/block/*.yaml`` built at ``dim`` as the backbones build it
    (composed by Hydra, so a block config may extend another through its defaults list)."""
    from hydra.utils import instantiate

    blocks = {}
    for path in sorted(BLOCK_DIR.glob("*.yaml")):
        cfg = _compose([f"block={path.stem}"])
        torch.manual_seed(0)
        blocks[path.stem] = instantiate(cfg.block)(dim=dim)
    return blocks


def baselines(dim: int, batch: int, rounds: int, min_run_time: float, threads: int,
              device: torch.device) -> list[dict[str, Any]]:
    blocks = {name: b.to(device).train() for name, b in baseline_blocks(dim).items()}
    blocks["linear"] = nn.Linear(dim, dim).to(device)
    x = torch.randn(batch, dim, device=device, requires_grad=True)
    grad = torch.randn(batch, dim, device=device)
    fns = {name: _fwd_bwd(b, x, grad) for name, b in blocks.items()}
    flops = {name: _count_flops(fn) for name, fn in fns.items()}
    times = time_side_by_side(fns, rounds, min_run_time, threads)
    rows = []
    for name in blocks:
        rows.append({"block": name, "d": dim, "batch": batch, "pass": "fwd+bwd",
                     "time_s": _quartiles(times[name]), "flops": flops[name],
                     "ratios": {"/linear": _ratio(times, name, "linear"),
                                "/midl": _ratio(times, name, "midl")}})
        print(f"{name:>16} | {rows[-1]['time_s']['median'] * 1e3:8.3f} ms | "
              f"{flops[name] / 1e6:9.2f} MFLOP | /linear {_fmt(rows[-1]['ratios']['/linear'])}"
              f" | /midl {_fmt(rows[-1]['ratios']['/midl'])}", flush=True)
    return rows


# ------------------------------------------------------------------------------------------
# framework overhead and data rate


# name -> (input shape, model config, augmentation, description)
WORKLOADS: dict[str, tuple[tuple[int, ...], str, bool, str]] = {
    "mnist_mlp": ((1, 28, 28), "mlp", False,
                  "MLP 784 -> 256 -> MID-L(256) -> 10 (configs/model/mlp.yaml, block=midl)"),
    "cifar10_cnn": ((3, 32, 32), "cnn", True,
                    "CNN 32-64-128 -> 256 -> MID-L(256) -> 10 (configs/model/cnn.yaml, "
                    "block=midl), random crop + flip on each training batch"),
}


def synthetic_images(shape: tuple[int, ...], samples: int, batch_size: int,
                     augment: bool) -> Any:
    """A :class:`midl.data.base.InMemoryDataModule` of random uint8 images of ``shape``
    (``samples`` training images, one batch of validation; CIFAR's random crop + flip when
    ``augment``), so no data files are needed."""
    from midl.data.base import InMemoryDataModule, Splits, random_crop_flip

    class SyntheticImages(InMemoryDataModule):
        name = "synthetic"
        num_classes = 10
        input_shape = shape

        def load(self) -> Splits:
            g = torch.Generator().manual_seed(0)
            n = samples + batch_size
            x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
            y = torch.randint(0, 10, (n,), generator=g)
            return Splits(x, y, x[:batch_size], y[:batch_size])

        def augment_batch(self, x: Tensor) -> Tensor:
            return random_crop_flip(x, padding=4, flip=True)

    return SyntheticImages(batch_size=batch_size, val_size=batch_size, augment=augment)


def _compose(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from midl.config import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        return compose("train", overrides=overrides)


def framework_epoch(cfg: Any, datamodule: Any) -> tuple[float, nn.Module]:
    """Seconds of ``trainer.fit`` for one epoch, built as :func:`midl.train.train` builds it
    (:func:`midl.train.build_module`; callbacks: checkpoints, progress bar, guards; CSV
    logger). Returns the time and a copy of the network's initial weights."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from midl.train import build_module

    torch.manual_seed(0)
    module = build_module(cfg, datamodule)
    initial = copy.deepcopy(module.net)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    loggers = [instantiate(lg) for lg in (cfg.get("logger") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return time.perf_counter() - start, initial


def plain_epoch(net: nn.Module, datamodule: Any, optimizer: Any, device: torch.device,
                max_steps: int | None = None) -> float:
    """Seconds of a plain PyTorch epoch: the same model, optimiser, batch size and steps, on
    the data module's in-memory tensors (shuffled; augmented and standardised per batch by
    the data module's own ``transform``, as in training); ``max_steps`` cuts it short."""
    import torch.nn.functional as F

    net = net.to(device).train()
    opt = optimizer(net.parameters())
    x_all, y_all = datamodule.train_set.x.to(device), datamodule.train_set.y.to(device)
    batch = datamodule.batch_size
    start = time.perf_counter()
    order = torch.randperm(len(y_all), device=device)
    if max_steps is not None:
        order = order[:max_steps * batch]
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        x = datamodule.transform(x_all[idx], train=True)
        loss = F.cross_entropy(net(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def loader_epoch(datamodule: Any, device: torch.device) -> float:
    """Seconds to draw one epoch from the training loader, moved and transformed as the
    trainer does (``on_after_batch_transfer``), with no model."""
    start = time.perf_counter()
    for x, y in datamodule.train_dataloader():
        datamodule.transform(x.to(device), train=True)
        y.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def overhead(workload: str, samples: int, batch: int, rounds: int, threads: int,
             device: torch.device) -> dict[str, Any]:
    """midl.train epoch / plain epoch, and loader rate / step rate, in interleaved rounds,
    for one of :data:`WORKLOADS`."""
    import logging
    import tempfile
    import warnings

    from hydra.utils import instantiate

    from midl.train import cheap_cuda_checks

    shape, model, augment, description = WORKLOADS[workload]
    cheap_cuda_checks()  # as midl.train does (both sides of the ratio run in this process)
    torch.set_num_threads(threads)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    datamodule = synthetic_images(shape, samples, batch, augment)
    datamodule.setup("fit")
    times: dict[str, list[float]] = {"midl_train": [], "plain": [], "loader": []}

    def compose(output_dir: str) -> Any:
        return _compose([f"model={model}", "block=midl", "logger=csv", "callbacks=default",
                         f"trainer.accelerator={accelerator}", "trainer.max_epochs=1",
                         f"paths.output_dir={output_dir}", f"data.batch_size={batch}"])

    for logger_name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(logger_name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(rounds):
            cfg = compose(f"{tmp}/{r}")
            seconds, initial = framework_epoch(cfg, datamodule)
            times["midl_train"].append(seconds)
            times["plain"].append(plain_epoch(initial, datamodule, instantiate(cfg.optimizer),
                                              device))
            times["loader"].append(loader_epoch(datamodule, device))
        cfg = compose(f"{tmp}/calls")
        batches = -(-len(datamodule.train_set) // batch)
        calls = python_calls_per_step(cfg, datamodule, device,
                                      steps=(max(1, min(4, batches // 2)), min(12, batches)))
    n = len(datamodule.train_set)
    result = {
        "model": description,
        "data": f"synthetic uint8 (N, {', '.join(map(str, shape))}), {n} training samples, "
                "one val batch",
        "batch": batch, "steps": -(-n // batch), "rounds": rounds,
        "time_s": {k: _quartiles(v) for k, v in times.items()},
        "ratios": {
            "midl_train/plain": _ratio(times, "midl_train", "plain"),
            # loader samples/s over training samples/s = plain step time / loader time
            "loader_rate/step_rate": _ratio(times, "plain", "loader"),
        },
        "python_calls_per_step": calls,
        "note": "midl_train includes Trainer setup, one validation batch, the epoch-end "
                "checkpoint and CSV log; plain is the training loop alone; "
                "python_calls_per_step counts Python function calls per training step "
                "(cProfile, exact, independent of load)",
    }
    q = result["ratios"]
    print(f"{workload:12s} midl.train epoch {result['time_s']['midl_train']['median']:.2f} s | "
          f"plain {result['time_s']['plain']['median']:.2f} s | loader "
          f"{result['time_s']['loader']['median']:.3f} s | midl_train/plain "
          f"{_fmt(q['midl_train/plain'])} | loader rate/step rate "
          f"{_fmt(q['loader_rate/step_rate'], digits=1)} | Python calls per step "
          f"{calls['midl_train']:.0f} vs {calls['plain']:.0f}", flush=True)
    return result


def python_calls_per_step(cfg: Any, datamodule: Any, device: torch.device,
                          steps: tuple[int, int] = (4, 12)) -> dict[str, float]:
    """Python function calls per training step of the ``midl.train`` machinery and of the
    plain loop, counted by ``cProfile``: the difference between epochs cut at ``steps[1]``
    and ``steps[0]`` steps, over the steps between them (set-up and epoch-end work cancel).
    Exact and unaffected by machine load, unlike the timings; it shows where per-step
    framework time goes."""
    import cProfile
    import pstats

    from hydra.utils import instantiate
    from omegaconf import open_dict

    from midl.train import build_module

    def count(fn: Callable[[], Any]) -> int:
        profile = cProfile.Profile()
        profile.runcall(fn)
        return pstats.Stats(profile).total_calls

    counts: dict[str, list[int]] = {"midl_train": [], "plain": []}
    for n in steps:
        short = cfg.copy()
        with open_dict(short):
            short.trainer.limit_train_batches = n
        counts["midl_train"].append(count(lambda c=short: framework_epoch(c, datamodule)))
        net = build_module(cfg, datamodule).net
        counts["plain"].append(count(lambda m=net, k=n: plain_epoch(
            m, datamodule, instantiate(cfg.optimizer), device, max_steps=k)))
    return {k: (v[1] - v[0]) / (steps[1] - steps[0]) for k, v in counts.items()}


def compiled_step(batch: int, rounds: int, min_run_time: float, threads: int,
                  device: torch.device) -> dict[str, Any]:
    """One training step (forward, backward, Adam) of the MNIST MLP with MID-L, eager against
    ``torch.compile`` (``nn.Module.compile``, the ``compile=true`` path), after the compiled
    model's warm-up, which is timed separately (seconds of compilation)."""
    import torch.nn.functional as F

    from midl.backbones import MLP

    torch.set_num_threads(threads)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    steps: dict[str, Callable[[], Any]] = {}
    warmup_s = 0.0
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        net = MLP((1, 28, 28), 10, block=lambda d: MIDLayer(d)).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(net: nn.Module = net, opt: Any = opt) -> None:
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if name == "compiled":
            net.compile()
            start = time.perf_counter()
            step()
            step()
            warmup_s = time.perf_counter() - start
        steps[name] = step
    times = time_side_by_side(steps, rounds, min_run_time, threads)
    result = {"model": WORKLOADS["mnist_mlp"][3], "batch": batch, "warmup_s": warmup_s,
              "time_s": {k: _quartiles(v) for k, v in times.items()},
              "ratios": {"compiled/eager": _ratio(times, "compiled", "eager")}}
    print(f"train step eager {result['time_s']['eager']['median'] * 1e3:.2f} ms | compiled "
          f"{result['time_s']['compiled']['median'] * 1e3:.2f} ms | compiled/eager "
          f"{_fmt(result['ratios']['compiled/eager'])} | compilation {warmup_s:.1f} s",
          flush=True)
    return result


def _uptime() -> str:
    try:
        load = os.getloadavg()
        return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load unknown"


def run_benchmarks(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "device": args.device,
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "torch": torch.__version__, "python": platform.python_version(),
        "threads": args.threads, "smoke": args.smoke, "rounds": args.rounds,
        "min_run_time_s": args.min_run_time,
        "load_before": _uptime(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, "-m", "midl.bench", *args.argv]),
    }
    sections = set(args.sections)
    if "block_cost" in sections:
        print(f"\n== block cost ({args.device}, {args.threads} threads, {args.rounds} rounds; "
              "ratio = median±IQR over rounds)\n" + BLOCK_HEADER, flush=True)
        result["block_cost"] = block_cost(args.dims, args.batches, args.rounds,
                                          args.min_run_time, args.threads, device)
    if "baselines" in sections:
        print(f"\n== baseline blocks, d={args.baseline_dim}, batch {args.baseline_batch}, "
              "fwd+bwd", flush=True)
        result["baselines"] = baselines(args.baseline_dim, args.baseline_batch, args.rounds,
                                        args.min_run_time, args.threads, device)
    if "overhead" in sections:
        print(f"\n== framework overhead: one epoch, batch {args.overhead_batch}, "
              f"{args.overhead_rounds} rounds", flush=True)
        result["overhead"] = {
            name: overhead(name, samples, args.overhead_batch, args.overhead_rounds,
                           args.threads, device)
            for name, samples in args.overhead_samples.items()}
    if "compile" in sections:
        print(f"\n== torch.compile: one training step, batch {args.overhead_batch}",
              flush=True)
        result["compile"] = compiled_step(args.overhead_batch, args.rounds, args.min_run_time,
                                          args.threads, device)
    if "fast_path" in sections:
        from midl import bench_fastpath

        cores = os.cpu_count() or 1
        print(f"\n== CPU fast path: fp32 / bf16 / bf16 + channels-last, 1 and {cores} threads; "
              "CIFAR-10 sweep throughput; roofline", flush=True)
        result["fast_path"] = bench_fastpath.run(args.smoke, args.rounds, args.min_run_time,
                                                 cores)
    result["load_after"] = _uptime()
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m midl.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one round (for tests; the timings mean nothing)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: half the CPUs, 1 to 8)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (7)")
    parser.add_argument("--min-run-time", type=float, default=None,
                        help="seconds per candidate per round (0.2)")
    parser.add_argument("--dims", type=int, nargs="+", default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=None)
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--out", type=Path, default=None,
                        help="output JSON (default results/bench/<device>.json; smoke: none)")
    args = parser.parse_args(argv)
    args.argv = list(argv)
    smoke = args.smoke
    # half the CPUs (1 on the 2-core machine): a loaded machine's other jobs then cost the
    # candidates of a round alike instead of stalling a multi-threaded GEMM
    args.threads = args.threads or max(1, min((os.cpu_count() or 2) // 2, 8))
    args.rounds = args.rounds or (1 if smoke else 7)
    args.min_run_time = args.min_run_time or (1e-4 if smoke else 0.2)
    args.dims = args.dims or ([16] if smoke else [256, 512, 1024])
    args.batches = args.batches or ([1, 4] if smoke else [1, 64, 256])
    args.baseline_dim = 16 if smoke else 512
    args.baseline_batch = 4 if smoke else 64
    args.overhead_samples = ({"mnist_mlp": 256, "cifar10_cnn": 128} if smoke
                             else {"mnist_mlp": 60_000, "cifar10_cnn": 10_000})
    args.overhead_batch = 64
    args.overhead_rounds = 1 if smoke else 3
    if args.out is None and not smoke:
        args.out = REPO / "results" / "bench" / f"{args.device.split(':')[0]}.json"
    return args


def save(result: dict[str, Any], out: Path | None) -> str:
    """Write ``result`` to ``out`` (atomically) and return the line that says so; with
    ``out=None`` (``--smoke`` without ``--out``: a check that every section runs, not a
    measurement) write nothing and return the line that says that."""
    if out is None:
        return ("smoke run: nothing saved (tiny sizes, one round: the timings mean nothing); "
                "without --smoke the results go to results/bench/<device>.json (or --out)")
    atomic_write_json(out, result)
    return f"wrote {out}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_benchmarks(args)
    print(result["load_after"])
    print(f"\n{save(result, args.out)}")
    return result


if __name__ == "__main__":
    main()
