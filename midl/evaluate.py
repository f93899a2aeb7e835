"""Evaluate a trained checkpoint: test metrics plus the slower analyses (``configs/evaluate.yaml``).

Usage::

    python -m midl.evaluate ckpt_path=<run_dir>/checkpoints/last.ckpt \\
        analysis=[flops,latency,memory,smi,calibration,tsne]

    # a CIFAR-10 run evaluated on CIFAR-10-C (severity 3), stored as analysis.cifar10c_s3;
    # the accuracy on each corruption is under its test_parts (the one CIFAR-10-C entry point)
    python -m midl.evaluate ckpt_path=... eval_data=cifar10c +data.severity=3 \\
        eval_name=cifar10c_s3 analysis=[calibration]

What each analysis measures and where its result goes (``metrics.json``'s
``analysis.<eval_name>``, figures next to it): :mod:`midl.evaluation`, the library this entry
point runs.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from midl.config import register_resolvers
from midl.extras import quiet_console

register_resolvers()


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: evaluate (:func:`midl.evaluation.evaluate`) and print the headline
    numbers as JSON (:func:`midl.evaluation.summary`)."""
    from midl.evaluation import evaluate, run_dir_of, summary

    quiet_console()  # Lightning's tip banner and doubled log lines (midl.extras)
    result = evaluate(cfg)
    print(json.dumps({"run_dir": str(run_dir_of(cfg.ckpt_path)), **summary(result)}, indent=2))


if __name__ == "__main__":
    main()
