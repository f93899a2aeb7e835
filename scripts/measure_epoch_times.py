"""Measure per-step training and per-sample evaluation cost of the table backbones on this machine.

Used to choose ``configs/scale/quick.yaml`` (epochs and subset sizes so that every table fits in
about two hours on a 2-core CPU). Prints, per (dataset, model, block): set-up time, seconds per
training step (batch 64, forward + backward + Adam) and seconds per 1,000 evaluated samples, as
wall time and as process CPU time (CPU time / cores is a load-independent estimate of the wall
time on an idle machine).

    MIDL_DATA_DIR=/work/shared/data python scripts/measure_epoch_times.py [--steps 30]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch
from hydra import compose, initialize_config_dir

from midl.evaluation import CONFIG_DIR
from midl.factory import build

SETTINGS = [("mnist", "mlp", "midl"), ("mnist", "mlp", "dropout"), ("adult", "mlp", "midl"),
            ("cifar10", "cnn", "midl"), ("cifar10", "cnn", "dropout"), ("cifar10", "cnn", "switch"),
            ("cifar10", "cnn", "gumbel"), ("cifar100", "cnn", "midl"), ("imdb", "lstm", "midl")]


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def measure(data: str, model: str, block: str, steps: int) -> dict[str, float]:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={data}", f"model={model}", f"block={block}",
                                          "paths.output_dir=/tmp/measure"])
    w0, c0 = clock()
    datamodule, module = build(cfg)
    w1, c1 = clock()
    opt = module.configure_optimizers()
    module.train()
    batches = []
    while len(batches) < steps + 3:  # small training sets: cycle through the epoch
        batches += list(itertools.islice(datamodule.train_dataloader(), steps + 3 - len(batches)))
    for i, (x, y) in enumerate(batches):
        if i == 3:
            w2, c2 = clock()
        x = datamodule.transform(x, train=True)
        loss = torch.nn.functional.cross_entropy(module.net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w3, c3 = clock()
    module.eval()
    n = 0
    with torch.inference_mode():
        for x, _ in datamodule.test_dataloader():
            module.net(datamodule.transform(x, train=False))
            n += len(x)
            if n >= 2000:
                break
    w4, c4 = clock()
    return {"setup_wall_s": w1 - w0, "setup_cpu_s": c1 - c0,
            "step_wall_s": (w3 - w2) / steps, "step_cpu_s": (c3 - c2) / steps,
            "eval_per_1000_wall_s": (w4 - w3) / n * 1000,
            "eval_per_1000_cpu_s": (c4 - c3) / n * 1000,
            "train_size": len(datamodule.train_set), "test_size": len(datamodule.test_set)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed training steps")
    parser.add_argument("--only", nargs="*", help="dataset names to measure (default: all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    for data, model, block in SETTINGS:
        if args.only and data not in args.only:
            continue
        result = measure(data, model, block, args.steps)
        print(json.dumps({"data": data, "model": model, "block": block,
                          **{k: round(v, 4) for k, v in result.items()}}), flush=True)


if __name__ == "__main__":
    main()
