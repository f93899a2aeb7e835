"""Objects a config describes: the data module and the Lightning module of a run, and the
process settings a training job applies before building them.

Shared by the entry points (``midl.train``, ``midl.evaluate``) and the library code that
rebuilds a run (:mod:`midl.evaluation`, :mod:`midl.bench`, ``scripts/``), so that no module
imports an entry point. Nothing here loads torch or Lightning at import time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from midl.data.base import InMemoryDataModule
    from midl.module import ClassificationModule


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, ClassificationModule]:
    """Instantiate the data module and the Lightning module a config describes.

    The data module is set up first (``setup("fit")``) because the backbone's input shape,
    class count and (for text) vocabulary size come from the data.

    Args:
        cfg: a composed run config with ``data``, ``model``, ``block`` and ``optimizer``.

    Returns:
        ``(datamodule, module)``.
    """
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule, build_module(cfg, datamodule)


def build_module(cfg: DictConfig, datamodule: InMemoryDataModule) -> ClassificationModule:
    """The Lightning module of ``cfg`` (model with its block, optimizer) for a set-up data
    module; with ``compile: true`` the network is compiled in place (``nn.Module.compile``,
    so checkpoints keep their parameter names)."""
    from midl.module import ClassificationModule

    shape_kwargs: dict[str, Any] = {"input_shape": datamodule.input_shape,
                                    "num_classes": datamodule.num_classes}
    if datamodule.vocab_size is not None:
        shape_kwargs["vocab_size"] = datamodule.vocab_size
    net = instantiate(cfg.model, block=instantiate(cfg.block), **shape_kwargs)
    if cfg.get("compile", False):
        net.compile()
    return ClassificationModule(net, num_classes=datamodule.num_classes,
                                optimizer=instantiate(cfg.optimizer),
                                positive_class=datamodule.positive_class)


def cheap_cuda_checks() -> bool:
    """Undo ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (set by ``import lightning``) on a machine
    without a usable GPU; returns whether it did.

    With it, every ``torch.cuda.is_available()`` loads the NVML library again, and
    ``torch.optim`` asks once per ``optimizer.step()``: a measurable share of a small CPU
    training step (``make bench`` times it). The NVML check exists to avoid initialising CUDA
    before forking, which matters only where CUDA is usable; so the variable is cleared only
    after a check has found no GPU.
    """
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1" or torch.cuda.is_available():
        return False
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"
    return True


def set_num_threads(num_threads: int | None) -> None:
    """Set torch's intra-op thread count for this process (``num_threads`` in the config).

    Set inside the job, not only through ``OMP_NUM_THREADS``: a Hydra joblib worker is a
    process that may have imported torch before the environment was set. ``None`` keeps
    torch's default (one thread per core).
    """
    if num_threads is None:
        return
    import torch

    torch.set_num_threads(int(num_threads))
