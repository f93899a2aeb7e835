"""Fast-path benchmark section of ``make bench`` (``python -m midl.bench --sections fast_path``).

What it measures, all as ratios of timings taken side by side in one run:

- **Training step** (forward, backward, Adam; batch 64; synthetic input, no data loading) of
  the CIFAR-10 CNN and the MNIST MLP with MID-L, at 1 and 2 intra-op threads, in float32,
  bf16 autocast and (CNN) float32 and bf16 autocast in channels-last, interleaved in rounds.
- **Models per hour of a CIFAR-10 sweep**: training steps per second summed over the jobs that
  run at once, for today's default (one float32 job on all cores) against the fast path (one
  bf16 + channels-last job per core, one thread each), each measured for ``seconds`` in real
  concurrent processes, rounds interleaved. A sweep's models are all the same size, so the
  ratio of summed step rates is the ratio of models trained per hour.
- **Roofline**: achieved FLOP/s of the CNN training step (forward FLOPs from
  :func:`midl.metrics.flops.count_flops` x 3 for forward + backward) over the peak of a large
  square matmul of the same dtype measured in the same run, per thread count.

Each figure is the median over rounds with its inter-quartile range (IQR).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import benchmark

from midl.backbones import CNN, MLP
from midl.bench.stats import fmt, quartiles
from midl.blocks import MIDLayer
from midl.metrics.flops import count_flops

# (workload, variant) -> (dtype under autocast or None, channels-last)
VARIANTS: dict[str, tuple[torch.dtype | None, bool]] = {
    "fp32": (None, False),
    "fp32+cl": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16+cl": (torch.bfloat16, True),
}
SHAPES = {"cifar10_cnn": (3, 32, 32), "mnist_mlp": (1, 28, 28)}
FAST_PATH = "bf16+cl, 1 job per core x 1 thread (fast path)"
BARRIER_TIMEOUT_S = 600.0  # seconds a worker waits for the others (spawn + warm-up)


def build_net(workload: str, channels_last: bool) -> nn.Module:
    """The benchmark's network: the table backbones with MID-L (d = 256, top-k 50%)."""
    block = lambda d: MIDLayer(d)  # noqa: E731 - the backbone's block factory
    if workload == "cifar10_cnn":
        return CNN(SHAPES[workload], 10, block, channels_last=channels_last)
    return MLP(SHAPES[workload], 10, block)


def make_step(workload: str, variant: str, batch: int, seed: int = 0) -> Callable[[], None]:
    """One training step (forward, backward, Adam) of ``workload`` in ``variant``, as a
    closure over fixed synthetic inputs (B, *shape) and labels (B,).

    Raises:
        KeyError: for an unknown workload or variant.
    """
    dtype, channels_last = VARIANTS[variant]
    torch.manual_seed(seed)
    net = build_net(workload, channels_last).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, *SHAPES[workload])
    y = torch.randint(0, 10, (batch,))
    autocast = (torch.autocast("cpu", dtype=dtype) if dtype is not None
                else contextlib.nullcontext())

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_times(batch: int, threads: list[int], rounds: int, min_run_time: float
               ) -> dict[str, Any]:
    """Seconds per training step of every (workload, variant, threads), rounds interleaved,
    and each variant's speed-up over float32 at the same thread count."""
    cases = {f"{w}/{v}/{t}": (make_step(w, v, batch), t)
             for w in SHAPES for v in VARIANTS for t in threads
             if not (w == "mnist_mlp" and v.endswith("+cl"))}
    for fn, t in cases.values():  # warm-up (oneDNN primitive creation)
        torch.set_num_threads(t)
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (fn, t) in cases.items():
            timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=t)
            times[name].append(timer.blocked_autorange(min_run_time=min_run_time).median)
    speedups = {}
    for name in cases:
        w, v, t = name.split("/")
        if v != "fp32":
            base = times[f"{w}/fp32/{t}"]
            speedups[name] = quartiles([b / a for a, b in zip(times[name], base, strict=True)])
    return {"time_s": {k: quartiles(v) for k, v in times.items()},
            "speedup_vs_fp32_same_threads": speedups}


def _job(variant: str, threads: int, seconds: float, batch: int, start: Any,
         out: Any) -> None:
    """Worker: train the CNN in ``variant`` on ``threads`` threads; report steps/s."""
    torch.set_num_threads(threads)
    step = make_step("cifar10_cnn", variant, batch)
    step()
    step()
    start.wait(timeout=BARRIER_TIMEOUT_S)  # a worker whose parent died does not hang
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    out.put(n / (time.perf_counter() - t0))


def sweep_rate(variant: str, jobs: int, threads: int, seconds: float, batch: int) -> float:
    """Training steps per second summed over ``jobs`` concurrent processes of the CIFAR-10 CNN
    in ``variant``, each on ``threads`` threads, started together after their warm-up."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(jobs + 1), ctx.Queue()
    procs = [ctx.Process(target=_job, args=(variant, threads, seconds, batch, start, out))
             for _ in range(jobs)]
    for p in procs:
        p.daemon = True  # ended with the benchmark process
        p.start()
    try:
        start.wait(timeout=BARRIER_TIMEOUT_S)
        rates = [out.get(timeout=seconds + BARRIER_TIMEOUT_S) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    return sum(rates)


def models_per_hour(cores: int, rounds: int, seconds: float, batch: int,
                    smoke: bool = False) -> dict[str, Any]:
    """Summed step rates of the sweep set-ups, rounds interleaved, and their ratios to today's
    default (one float32 job on ``cores`` threads); ``smoke``: the default and the fast path
    only."""
    setups = {
        "fp32, 1 job x all threads (default)": ("fp32", 1, cores),
        "fp32, 1 job per core x 1 thread": ("fp32", cores, 1),
        "fp32+cl, 1 job per core x 1 thread (cpu scale)": ("fp32+cl", cores, 1),
        "bf16+cl, 1 job x all threads": ("bf16+cl", 1, cores),
        FAST_PATH: ("bf16+cl", cores, 1),
    }
    if smoke:
        setups = {k: v for k, v in setups.items() if k.endswith("(default)") or k == FAST_PATH}
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(rounds):
        for name, (variant, jobs, threads) in setups.items():
            rates[name].append(sweep_rate(variant, jobs, threads, seconds, batch))
    default = next(iter(setups))
    ratios = {name: quartiles([a / b for a, b in zip(r, rates[default], strict=True)])
              for name, r in rates.items()}
    return {"steps_per_s": {k: quartiles(v) for k, v in rates.items()},
            "ratio_vs_default": ratios, "seconds_per_measurement": seconds}


def matmul_peak(dtype: torch.dtype, threads: int, n: int, min_run_time: float) -> float:
    """FLOP/s of an (n x n) @ (n x n) matmul in ``dtype`` on ``threads`` threads."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    timer = benchmark.Timer(stmt="a @ b", globals={"a": a, "b": b}, num_threads=threads)
    return 2 * n ** 3 / timer.blocked_autorange(min_run_time=min_run_time).median


def roofline(steps: dict[str, Any], batch: int, threads: list[int], n: int,
             min_run_time: float) -> dict[str, Any]:
    """Achieved FLOP/s of the CNN training step over the matmul peak of its dtype."""
    net = build_net("cifar10_cnn", False)
    flops = 3 * count_flops(net, torch.randn(1, *SHAPES["cifar10_cnn"])).total * batch
    out: dict[str, Any] = {"train_step_flops": flops}
    for t in threads:
        peaks = {"fp32": matmul_peak(torch.float32, t, n, min_run_time),
                 "bf16": matmul_peak(torch.bfloat16, t, n, min_run_time)}
        for variant, peak in (("fp32", peaks["fp32"]), ("fp32+cl", peaks["fp32"]),
                              ("bf16+cl", peaks["bf16"])):
            achieved = flops / steps["time_s"][f"cifar10_cnn/{variant}/{t}"]["median"]
            out[f"{variant}/{t}"] = {"achieved_flop_s": achieved, "peak_flop_s": peak,
                                     "fraction_of_peak": achieved / peak}
    return out


def run(smoke: bool, rounds: int, min_run_time: float, cores: int) -> dict[str, Any]:
    """The whole section; prints its table and returns the JSON-able result."""
    batch = 8 if smoke else 64
    threads = sorted({1, cores})
    seconds = 1.0 if smoke else 20.0
    mp_rounds = 1 if smoke else 2
    steps = step_times(batch, threads, rounds, min_run_time)
    print(f"training step, batch {batch}: ms (speed-up over fp32 at the same threads)")
    for name, q in steps["time_s"].items():
        speed = steps["speedup_vs_fp32_same_threads"].get(name)
        print(f"  {name:24s} {q['median'] * 1e3:8.2f} ms"
              + (f"   x{fmt(speed)}" if speed else ""), flush=True)
    sweep = models_per_hour(cores, mp_rounds, seconds, batch, smoke)
    print(f"CIFAR-10 sweep, models per hour vs default ({seconds:.0f} s per measurement, "
          f"{mp_rounds} rounds):")
    for name, q in sweep["ratio_vs_default"].items():
        rate = sweep["steps_per_s"][name]["median"]
        print(f"  {name:48s} {rate:6.1f} steps/s   x{fmt(q)}", flush=True)
    roof = roofline(steps, batch, threads, 256 if smoke else 2048, min_run_time)
    for key, r in roof.items():
        if isinstance(r, dict):
            print(f"  roofline {key:10s} {r['achieved_flop_s'] / 1e9:7.1f} GFLOP/s of "
                  f"{r['peak_flop_s'] / 1e9:7.1f} peak = {r['fraction_of_peak']:.1%}")
    return {"batch": batch, "steps": steps, "sweep": sweep, "roofline": roof}
