"""Benchmark sections ``overhead`` and ``compile`` of ``make bench`` (:mod:`midl.bench.suite`):
one epoch of the ``midl.train`` machinery (Hydra config, Lightning module and trainer)
against a plain PyTorch loop with the same model, optimiser, steps and batch transform, the
training loader's sample rate, Python calls per step, and a training step eager vs
``torch.compile``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from midl.bench.stats import fmt, quartiles, ratio, time_side_by_side
from midl.blocks import MIDLayer

REPO = Path(__file__).resolve().parents[2]


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


def compose_train(overrides: list[str]) -> Any:
    """``configs/train.yaml`` composed with ``overrides`` (outside any running Hydra app)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from midl.config import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "configs")):
        return compose("train", overrides=overrides)


def framework_epoch(cfg: Any, datamodule: Any) -> tuple[float, nn.Module]:
    """Seconds of ``trainer.fit`` for one epoch, built as :func:`midl.train.train` builds it
    (:func:`midl.factory.build_module`; callbacks: checkpoints, progress bar, guards; CSV
    logger). Returns the time and a copy of the network's initial weights."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from midl.factory import build_module

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

    from midl.factory import cheap_cuda_checks

    shape, model, augment, description = WORKLOADS[workload]
    cheap_cuda_checks()  # as midl.train does (both sides of the ratio run in this process)
    torch.set_num_threads(threads)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    datamodule = synthetic_images(shape, samples, batch, augment)
    datamodule.setup("fit")
    times: dict[str, list[float]] = {"midl_train": [], "plain": [], "loader": []}

    def compose(output_dir: str) -> Any:
        return compose_train([f"model={model}", "block=midl", "logger=csv", "callbacks=default",
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
        "time_s": {k: quartiles(v) for k, v in times.items()},
        "ratios": {
            "midl_train/plain": ratio(times, "midl_train", "plain"),
            # loader samples/s over training samples/s = plain step time / loader time
            "loader_rate/step_rate": ratio(times, "plain", "loader"),
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
          f"{fmt(q['midl_train/plain'])} | loader rate/step rate "
          f"{fmt(q['loader_rate/step_rate'], digits=1)} | Python calls per step "
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

    from midl.factory import build_module

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
              "time_s": {k: quartiles(v) for k, v in times.items()},
              "ratios": {"compiled/eager": ratio(times, "compiled", "eager")}}
    print(f"train step eager {result['time_s']['eager']['median'] * 1e3:.2f} ms | compiled "
          f"{result['time_s']['compiled']['median'] * 1e3:.2f} ms | compiled/eager "
          f"{fmt(result['ratios']['compiled/eager'])} | compilation {warmup_s:.1f} s",
          flush=True)
    return result

