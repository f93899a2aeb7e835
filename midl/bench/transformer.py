"""Transformer benchmark section of ``make bench`` (``python -m midl.bench --sections
transformer``): where the IMDB Transformer's training step spends its time.

One training step (forward, backward, Adam; synthetic token ids with a quarter of each batch's
positions padding, as IMDB's last-256-token reviews have about; no data loading) of the
Transformer as ``configs/model/transformer.yaml`` configures it (d = 128, 2 layers, 4 heads;
T = 256, batch 64) with the ``ffn`` and ``midl_ffn`` blocks in its feed-forward slot, with
dropout on the attention weights off (the model's default: PyTorch's fused
``scaled_dot_product_attention`` kernel) and at 0.1 (the unfused path, which materializes the
(B, heads, T, T) weights and draws a dropout mask over them), timed side by side in
interleaved rounds. Each figure is the median over rounds with its inter-quartile range.
Bound: the step's FLOPs (``torch.utils.flop_counter``, counted on the unfused path, whose
arithmetic is the same) over the peak of a large float32 matmul measured in the same run.

Resident memory: the process's RSS growth over ``MEMORY_STEPS`` training steps of the ``ffn``
Transformer whose batches each have a different number of real tokens per sequence (as IMDB's
do), with freed memory given back every ``RELEASE_EVERY`` steps (as the Transformer setting
does, :class:`midl.callbacks.ReleaseFreedMemory`) and never; the step times of the two arms give
their ratio. (Sequential in one process, released arm first: RSS is per process, so the two
cannot be interleaved.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from midl.bench.fastpath import matmul_peak
from midl.bench.overhead import compose_train
from midl.bench.stats import count_flops, fmt, quartiles, ratio, time_side_by_side
from midl.callbacks import ReleaseFreedMemory
from midl.metrics.memory import resident_mb

BLOCKS = ("ffn", "midl_ffn")
ATTENTION_DROPOUT = {"fused": 0.0, "attention dropout 0.1": 0.1}
PAD_FRACTION = 0.25  # padded share of each sequence (IMDB at 256 tokens: about 0.25)
MEMORY_STEPS = 48    # training steps per resident-memory arm
RELEASE_EVERY = 8    # callbacks.release_memory.every_n_steps of configs/experiment/setting/
                     # imdb_transformer.yaml


def make_step(block: str, attention_dropout: float, batch: int, length: int, vocab: int,
              seed: int = 0, vary_padding: bool = False) -> Callable[[], None]:
    """One training step of the Transformer with ``block`` in its feed-forward slot, as a
    closure over fixed synthetic token ids (batch, length) (the last ``PAD_FRACTION`` of
    every sequence padding, id 0) and labels (batch,); with ``vary_padding`` each call instead
    pads every sequence after a random number of real tokens (1 to ``length``).

    Raises:
        hydra.errors.MissingConfigException: for a block with no ``configs/block/`` file.
    """
    cfg = compose_train([f"block={block}", "model=transformer"])
    torch.manual_seed(seed)
    net = instantiate(cfg.model, input_shape=(length,), num_classes=2,
                      block=instantiate(cfg.block), vocab_size=vocab,
                      attention_dropout=attention_dropout).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randint(1, vocab, (batch, length))
    x[:, length - int(PAD_FRACTION * length):] = 0
    y = torch.randint(0, 2, (batch,))
    if vary_padding:
        ids, positions = torch.randint(1, vocab, (batch, length)), torch.arange(length)
        lengths = torch.Generator().manual_seed(seed)

    def step() -> None:
        if vary_padding:
            real = torch.randint(1, length + 1, (batch, 1), generator=lengths)
            x.copy_(ids.masked_fill(positions >= real, 0))
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def resident_growth(release_every: int | None, steps: int, batch: int, length: int,
                    vocab: int) -> dict[str, float | None]:
    """RSS (MB) before and after ``steps`` training steps of the ``ffn`` Transformer with a
    varying number of real tokens per sequence, freed memory given back every
    ``release_every`` steps (None: never), and the mean step time (s). RSS is None where
    Linux's ``/proc`` is unavailable."""
    step = make_step("ffn", 0.0, batch, length, vocab, vary_padding=True)
    release = ReleaseFreedMemory(release_every) if release_every else None
    step()
    ReleaseFreedMemory().release()  # each arm starts from a released heap
    start, t0 = resident_mb(), time.perf_counter()
    for i in range(steps):
        step()
        if release is not None:  # the callback's own schedule, as in a training run
            release.step_done(i)
    seconds = (time.perf_counter() - t0) / steps
    end = resident_mb()
    return {"start_mb": start, "end_mb": end, "step_s": seconds,
            "growth_mb": None if start is None or end is None else end - start}


def run(smoke: bool, rounds: int, min_run_time: float, threads: int) -> dict[str, Any]:
    """The whole section; prints its table and returns the JSON-able result."""
    batch, length, vocab = (4, 16, 50) if smoke else (64, 256, 20_000)
    fns = {f"{b}/{name}": make_step(b, p, batch, length, vocab)
           for b in BLOCKS for name, p in ATTENTION_DROPOUT.items()}
    # the unfused path's count for both: FlopCounterMode does not count the fused CPU
    # attention kernel, and the two paths do the same arithmetic
    unfused = next(name for name, p in ATTENTION_DROPOUT.items() if p > 0)
    flops = {name: count_flops(fns[f"{name.split('/')[0]}/{unfused}"]) for name in fns}
    times = time_side_by_side(fns, rounds, min_run_time, threads)
    peak = matmul_peak(torch.float32, threads, 64 if smoke else 2048, min_run_time)
    rows = {}
    print(f"training step, batch {batch}, {length} tokens, {threads} thread(s); "
          f"float32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    for name, t in times.items():
        block, variant = name.split("/")
        q = quartiles(t)
        rows[name] = {"time_s": q, "flops": flops[name],
                      "fraction_of_peak": flops[name] / q["median"] / peak}
        if variant != "fused":
            rows[name]["ratio_vs_fused"] = ratio(times, name, f"{block}/fused")
        speed = rows[name].get("ratio_vs_fused")
        print(f"  {name:32s} {q['median'] * 1e3:9.1f} ms  {flops[name] / 1e9:6.1f} GFLOP  "
              f"{rows[name]['fraction_of_peak']:6.1%} of peak"
              + (f"   x{fmt(speed)} the fused step's time" if speed else ""), flush=True)
    steps = 2 if smoke else MEMORY_STEPS
    memory = {f"release every {RELEASE_EVERY} steps": resident_growth(
        RELEASE_EVERY, steps, batch, length, vocab),
        "never released": resident_growth(None, steps, batch, length, vocab)}
    print(f"resident memory over {steps} steps with varying real-token counts (ffn):")
    for name, m in memory.items():
        growth = "n/a" if m["growth_mb"] is None else f"{m['growth_mb']:+.0f} MB"
        print(f"  {name:32s} {growth:>10s}  ({m['step_s']:.2f} s per step)", flush=True)
    return {"batch": batch, "length": length, "vocab": vocab, "pad_fraction": PAD_FRACTION,
            "matmul_peak_flop_s": peak, "steps": rows, "resident_memory": memory}
