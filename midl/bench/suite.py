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
  all cores) and the CNN step's fraction of the matmul peak (:mod:`midl.bench.fastpath`).

``--smoke`` runs tiny sizes with one round (what the test suite runs; no timing meaning).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from midl.bench.overhead import compiled_step, compose_train, overhead
from midl.bench.stats import count_flops, fmt, fwd, fwd_bwd, quartiles, ratio, time_side_by_side
from midl.blocks import MIDLayer
from midl.blocks.midl import rich_path
from midl.runs.io import atomic_write_json

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("block_cost", "baselines", "overhead", "compile", "fast_path", "transformer")
BLOCK_DIR = REPO / "configs" / "block"


# ------------------------------------------------------------------------------------------
# block cost


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
    """The MID-L layer's cost against its own floor (README, Performance): for every width d in
    ``dims`` and batch in ``batches``, forward and forward+backward of the fused and the
    reference ``MIDLayer``, F2 alone, one ``Linear(d, d)`` and the GEMMs the layer performs
    (``gemm_floor``), timed interleaved over ``rounds`` rounds of at least ``min_run_time``
    seconds each on ``threads`` threads; inputs (batch, d) float32 on ``device``.

    Returns one row per (d, batch, pass): median and IQR of the seconds per call of each
    candidate, their FLOPs (``torch.utils.flop_counter``), and the ratios of the fused and
    the reference layer to the floor and of the fused one to the reference, F2 and the Linear.
    """
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
                    fns[name] = (fwd(model, x) if mode == "fwd"
                                 else fwd_bwd(model, x, grad))
                fns["gemm_floor"] = gemm_floor(midl_gemms(fused), batch, mode == "fwd+bwd",
                                               device)
                flops = {name: count_flops(fn) for name, fn in fns.items()}
                times = time_side_by_side(fns, rounds, min_run_time, threads)
                rows.append({
                    "d": d, "batch": batch, "pass": mode,
                    "time_s": {n: quartiles(t) for n, t in times.items()},
                    "flops": flops,
                    "ratios": {
                        "midl_fused/gemm_floor": ratio(times, "midl_fused", "gemm_floor"),
                        "midl_reference/gemm_floor": ratio(times, "midl_reference",
                                                            "gemm_floor"),
                        "midl_fused/midl_reference": ratio(times, "midl_fused",
                                                            "midl_reference"),
                        "midl_fused/f2": ratio(times, "midl_fused", "f2"),
                        "midl_fused/linear": ratio(times, "midl_fused", "linear"),
                    },
                })
                print(_block_row(rows[-1]), flush=True)
    return rows



BLOCK_HEADER = (f"{'d':>5} {'B':>4} {'pass':>7} | {'fused ms':>8} {'ref ms':>8} {'F2 ms':>8} "
                f"{'lin ms':>8} {'floor ms':>8} | {'fused/floor':>11} {'ref/floor':>11} "
                f"{'fused/ref':>11} {'fused/F2':>11} {'fused/lin':>11}")


def _block_row(r: dict[str, Any]) -> str:
    t, q = r["time_s"], r["ratios"]
    ms = " ".join(f"{t[n]['median'] * 1e3:8.3f}"
                  for n in ("midl_fused", "midl_reference", "f2", "linear", "gemm_floor"))
    ratios = " ".join(f"{fmt(q[n]):>11}" for n in (
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
        cfg = compose_train([f"block={path.stem}"])
        torch.manual_seed(0)
        blocks[path.stem] = instantiate(cfg.block)(dim=dim)
    return blocks


def baselines(dim: int, batch: int, rounds: int, min_run_time: float, threads: int,
              device: torch.device) -> list[dict[str, Any]]:
    """Every block of ``configs/block/`` at width ``dim`` (see :func:`baseline_blocks`) and one
    ``Linear(dim, dim)``: forward+backward on a (batch, dim) float32 input, timed interleaved
    (``rounds`` rounds of at least ``min_run_time`` seconds, ``threads`` threads).

    Returns one row per block: median and IQR of seconds per call, FLOPs, and the ratios of
    its time to the Linear's (``/linear``) and to MID-L's (``/midl``).
    """
    blocks = {name: b.to(device).train() for name, b in baseline_blocks(dim).items()}
    blocks["linear"] = nn.Linear(dim, dim).to(device)
    x = torch.randn(batch, dim, device=device, requires_grad=True)
    grad = torch.randn(batch, dim, device=device)
    fns = {name: fwd_bwd(b, x, grad) for name, b in blocks.items()}
    flops = {name: count_flops(fn) for name, fn in fns.items()}
    times = time_side_by_side(fns, rounds, min_run_time, threads)
    rows = []
    for name in blocks:
        rows.append({"block": name, "d": dim, "batch": batch, "pass": "fwd+bwd",
                     "time_s": quartiles(times[name]), "flops": flops[name],
                     "ratios": {"/linear": ratio(times, name, "linear"),
                                "/midl": ratio(times, name, "midl")}})
        print(f"{name:>16} | {rows[-1]['time_s']['median'] * 1e3:8.3f} ms | "
              f"{flops[name] / 1e6:9.2f} MFLOP | /linear {fmt(rows[-1]['ratios']['/linear'])}"
              f" | /midl {fmt(rows[-1]['ratios']['/midl'])}", flush=True)
    return rows


def _uptime() -> str:
    try:
        load = os.getloadavg()
        return f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "load unknown"


def run_benchmarks(args: argparse.Namespace) -> dict[str, Any]:
    """Run the sections named in ``args.sections`` (see :func:`parse_args`) and return one JSON-
    ready dict: the machine, torch version, threads, the load average before and after, the
    command, and one entry per section."""
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
        from midl.bench import fastpath

        cores = os.cpu_count() or 1
        print(f"\n== CPU fast path: fp32 / bf16 / bf16 + channels-last, 1 and {cores} threads; "
              "CIFAR-10 sweep throughput; roofline", flush=True)
        result["fast_path"] = fastpath.run(args.smoke, args.rounds, args.min_run_time,
                                                 cores)
    if "transformer" in sections:
        from midl.bench import transformer

        print(f"\n== Transformer (IMDB setting): training step, fused attention vs attention "
              f"dropout, {args.threads} threads", flush=True)
        result["transformer"] = transformer.run(args.smoke, args.rounds, args.min_run_time,
                                                args.threads)
    result["load_after"] = _uptime()
    return result


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of ``python -m midl.bench`` with the sizes filled in (``--smoke``:
    tiny sizes and one round; otherwise the measured ones) and ``args.out`` defaulting to
    ``results/bench/<device>.json`` (None for a smoke run without ``--out``).

    Raises:
        SystemExit: an unknown option or section (argparse's message names it).
    """
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
    """Entry point: parse ``argv`` (default ``sys.argv[1:]``), run, print and save the result
    (see :func:`save`); returns the result."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = run_benchmarks(args)
    print(result["load_after"])
    print(f"\n{save(result, args.out)}")
    return result


if __name__ == "__main__":
    main()
