"""Lightning module for classification with any backbone and block.

Loss: cross-entropy plus the sum of every block's ``aux_loss()`` (if a block has one).
Metrics per stage (``train/``, ``val/``, ``test/``): ``loss``, ``acc`` (top-1 accuracy),
``f1`` (macro F1 over classes, torchmetrics; validation and test only), and ``anr``, the
active neuron ratio averaged over samples and over the blocks that report one (see each
block's ``active_neuron_ratio``). Training sums loss, correct predictions and ANR on the
device and logs epoch means once per epoch, plus ``train/loss_step`` every
``trainer.log_every_n_steps`` steps, so a step costs no host synchronisation.
Validation and test also log each block's ``extra_metrics()`` as ``{stage}/{block}/{key}``
(e.g. ``test/block/p``, concrete dropout's learned rate), averaged over batches.

The test stage also logs (definitions in :mod:`midl.metrics`):

- ``test/anr_tau``: threshold ANR, the fraction of neurons with alpha_hat > tau (0.5), averaged
  over samples and blocks (``test/anr`` is the nonzero-gate ANR, k / d for MID-L);
- ``test/ece`` (15 bins, L1, Guo et al. 2017), ``test/brier`` (multiclass Brier score summed
  over classes, ``brier_sum``) and ``test/brier_mean`` (the same divided by C);
- ``test/flops`` (FLOPs per sample, ``FlopCounterMode``, counted once per test run on one
  sample), ``test/flops_conditional`` (what skipping masked work would need, from the test
  set's gate statistics), and the same two for the blocks alone (``test/flops_block``,
  ``test/flops_block_conditional``, summed over blocks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
)

from midl.backbones import blocks_of
from midl.metrics.anr import DEFAULT_TAU, block_anr
from midl.metrics.calibration import DEFAULT_BINS, BrierScore
from midl.metrics.flops import FlopReport, conditional_flops, count_flops

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class ClassF1Score(MulticlassF1Score):
    """F1 score of one class (the positive class of a binary task), from multiclass logits.

    Args:
        num_classes: number of classes.
        positive_class: the class whose F1 is reported.
    """

    def __init__(self, num_classes: int, positive_class: int) -> None:
        super().__init__(num_classes, average="none")
        self.positive_class = positive_class

    def compute(self) -> Tensor:
        """The positive class's F1, a scalar tensor in [0, 1]."""
        return super().compute()[self.positive_class]


class ClassificationModule(pl.LightningModule):
    """Trains ``net`` with cross-entropy and logs accuracy, macro F1 and ANR per stage.

    Args:
        net: a model mapping a batch (B, ...) to logits (B, num_classes).
        num_classes: number of classes (>= 2).
        optimizer: a factory ``optimizer(params) -> Optimizer``, e.g. Hydra's
            ``{_target_: torch.optim.Adam, _partial_: true, lr: 1e-3}`` (Table 12).
        positive_class: if given, ``f1`` is the F1 score of this class alone (binary tasks
            such as UCI Adult's ``>50K``); otherwise the macro average over classes.
        anr_tau: threshold tau of ``test/anr_tau`` (default 0.5).
        count_flops: whether the test stage counts FLOPs (default True).

    Raises:
        ValueError: if ``num_classes`` < 2.
    """

    def __init__(self, net: nn.Module, num_classes: int, optimizer: OptimizerFactory,
                 positive_class: int | None = None, anr_tau: float = DEFAULT_TAU,
                 count_flops: bool = True) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes} must be >= 2")
        if positive_class is not None and not 0 <= positive_class < num_classes:
            raise ValueError(f"positive_class={positive_class} must lie in [0, {num_classes})")
        self.net = net
        self.optimizer_factory = optimizer
        f1 = (MulticlassF1Score(num_classes, average="macro") if positive_class is None
              else ClassF1Score(num_classes, positive_class))
        metrics = MetricCollection({
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "f1": f1,
        })
        # One metric object per stage (attributes, since ModuleDict keys may not be "train").
        for stage in ("val", "test"):
            setattr(self, f"{stage}_metrics", metrics.clone(prefix=f"{stage}/"))
            setattr(self, f"{stage}_anr", MeanMetric())
        self.anr_blocks = blocks_of(net)
        # Test stage only: threshold ANR, calibration, per-block ANR for conditional FLOPs.
        self.anr_tau = anr_tau
        self.count_flops = count_flops
        self.test_anr_tau = MeanMetric()
        self.test_ece = MulticlassCalibrationError(num_classes, n_bins=DEFAULT_BINS, norm="l1")
        self.test_brier = BrierScore(num_classes)
        self.test_brier_mean = BrierScore(num_classes, reduction="mean")
        self.test_block_anr = nn.ModuleList(MeanMetric() for _ in self.anr_blocks)
        self.test_flops: FlopReport | None = None
        self.aux_blocks = [m for m in net.modules() if callable(getattr(m, "aux_loss", None))]
        self._train_sums: dict[str, Any] = {}  # set in on_train_epoch_start
        # Blocks with further scalars to report (e.g. concrete dropout's learned p, a Switch
        # layer's routed fraction): logged in validation and test as {stage}/{name}/{key}.
        self.extra_blocks = [(name, m) for name, m in net.named_modules()
                             if callable(getattr(m, "extra_metrics", None))]

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) for a batch ``x``."""
        return self.net(x)

    def _active_neuron_ratio(self) -> Tensor | None:
        ratios = [r for m in self.anr_blocks if (r := m.active_neuron_ratio()) is not None]
        return torch.stack([r.to(self.device) for r in ratios]).mean() if ratios else None

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self.net(x).float()  # float32 loss and metrics under bf16 autocast too
        loss = F.cross_entropy(logits, y)
        for block in self.aux_blocks:
            loss = loss + block.aux_loss()
        anr = self._active_neuron_ratio()
        if stage == "train":
            self._accumulate_train(loss.detach(), logits.detach(), y, anr)
            return loss
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.detach(), y)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True)
        if anr is not None:
            anr_metric = getattr(self, f"{stage}_anr")
            anr_metric.update(anr, weight=len(y))
            self.log(f"{stage}/anr", anr_metric, on_step=False, on_epoch=True)
        for name, block in self.extra_blocks:
            for key, value in block.extra_metrics().items():
                self.log(f"{stage}/{name}/{key}", value.detach().float(), on_step=False,
                         on_epoch=True, batch_size=len(y))
        if stage == "test":
            self._update_test_metrics(logits.detach(), y)
        return loss

    def _accumulate_train(self, loss: Tensor, logits: Tensor, y: Tensor,
                          anr: Tensor | None) -> None:
        """Sum the training loss, correct predictions and ANR on the device, without a host
        synchronisation, a metric object or a ``self.log`` call per step (Lightning's per-call
        bookkeeping is a measurable share of a small step; ``make bench``'s overhead section).
        The step loss goes to the progress bar and logger every ``trainer.log_every_n_steps``
        steps, epoch means at the epoch's end (training F1 is not computed; validation and
        test log it).

        Shapes: ``loss`` and ``anr`` scalars (``anr`` a fraction in [0, 1], or None for
        blocks without gates), ``logits`` (B, num_classes), ``y`` (B,) class indices."""
        batch_size = len(y)
        self._train_sums["loss"] += loss * batch_size
        self._train_sums["correct"] += (logits.argmax(-1) == y).sum()
        if anr is not None:
            self._train_sums["anr"] += anr.to(loss.device) * batch_size
            self._train_sums["anr_n"] += batch_size
        self._train_sums["n"] += batch_size
        interval = self.trainer.log_every_n_steps
        if interval and (self.global_step + 1) % interval == 0:
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True)

    def on_train_start(self) -> None:
        """Also start the epoch here: a run resumed from a mid-epoch checkpoint continues its
        epoch without ``on_train_epoch_start`` (its training means then cover the batches
        trained after the resume)."""
        self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        """Reset the epoch sums; tell blocks with a schedule (e.g. annealed top-k) which
        epoch starts."""
        zero = torch.zeros((), device=self.device)
        self._train_sums = {"loss": zero.clone(), "correct": zero.clone(), "anr": zero.clone(),
                            "n": 0, "anr_n": 0}
        for module in self.net.modules():
            if callable(getattr(module, "set_epoch", None)):
                module.set_epoch(self.current_epoch)

    def on_train_epoch_end(self) -> None:
        """Log the epoch's mean training loss, accuracy and ANR (``train/...``)."""
        sums = self._train_sums
        n = sums.get("n", 0)
        if n == 0:
            return
        self.log("train/loss", sums["loss"] / n, prog_bar=True)
        self.log("train/acc", sums["correct"] / n)
        if sums["anr_n"]:
            self.log("train/anr", sums["anr"] / sums["anr_n"])

    def _update_test_metrics(self, logits: Tensor, y: Tensor) -> None:
        """Threshold ANR, per-block ANR, ECE and Brier score of one test batch."""
        probs = logits.float().softmax(-1)
        for name, metric in (("ece", self.test_ece), ("brier", self.test_brier),
                             ("brier_mean", self.test_brier_mean)):
            metric.update(probs, y)
            self.log(f"test/{name}", metric, on_step=False, on_epoch=True)
        ratios = [r for m in self.anr_blocks if (r := block_anr(m, self.anr_tau)) is not None]
        if ratios:
            self.test_anr_tau.update(torch.stack([r.to(self.device) for r in ratios]).mean(),
                                     weight=len(y))
            self.log("test/anr_tau", self.test_anr_tau, on_step=False, on_epoch=True)
        for block, metric in zip(self.anr_blocks, self.test_block_anr, strict=True):
            ratio = block_anr(block)
            if ratio is not None:
                metric.update(ratio.to(self.device), weight=len(y))

    def _log_test_flops(self) -> None:
        """Log dense and conditional FLOPs per sample (whole model and blocks)."""
        report = self.test_flops
        if report is None:
            return
        names = {id(m): n for n, m in self.net.named_modules()}
        fractions = {names[id(block)]: float(metric.compute())
                     for block, metric in zip(self.anr_blocks, self.test_block_anr, strict=True)
                     if metric.update_called}
        conditional = conditional_flops(self.net, report, fractions)
        self.log_dict({"test/flops": report.total,
                       "test/flops_conditional": conditional["total"],
                       "test/flops_block": sum(report.blocks.values()),
                       "test/flops_block_conditional": sum(conditional["blocks"].values())})

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        if self.count_flops and self.test_flops is None:
            # Once per test run, on one sample, before the batch's forward pass so that the
            # blocks' recorded gates belong to the batch.
            self.test_flops = count_flops(self.net, batch[0][:1])
        self._step(batch, "test")

    def on_test_start(self) -> None:
        """Forget the previous test run's FLOPs count and per-block ANR."""
        self.test_flops = None
        for metric in self.test_block_anr:
            metric.reset()

    def on_test_epoch_end(self) -> None:
        self._log_test_flops()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
