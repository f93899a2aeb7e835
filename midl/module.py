"""Lightning module for classification with any backbone and block.

Loss: cross-entropy plus the sum of every block's ``aux_loss()`` (if a block has one).
Metrics per stage (``train/``, ``val/``, ``test/``): ``loss``, ``acc`` (top-1 accuracy),
``f1`` (macro F1 over classes, torchmetrics), and ``anr``, the active neuron ratio averaged
over samples and over the blocks that report one (see each block's ``active_neuron_ratio``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from midl.backbones import blocks_of

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
STAGES = ("train", "val", "test")


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

    Raises:
        ValueError: if ``num_classes`` < 2.
    """

    def __init__(self, net: nn.Module, num_classes: int, optimizer: OptimizerFactory,
                 positive_class: int | None = None) -> None:
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
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", metrics.clone(prefix=f"{stage}/"))
            setattr(self, f"{stage}_anr", MeanMetric())
        self.anr_blocks = blocks_of(net)
        self.aux_blocks = [m for m in net.modules() if callable(getattr(m, "aux_loss", None))]

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) for a batch ``x``."""
        return self.net(x)

    def _active_neuron_ratio(self) -> Tensor | None:
        ratios = [r for m in self.anr_blocks if (r := m.active_neuron_ratio()) is not None]
        return torch.stack([r.to(self.device) for r in ratios]).mean() if ratios else None

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        for block in self.aux_blocks:
            loss = loss + block.aux_loss()
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=on_step,
                 batch_size=len(y))
        metrics = getattr(self, f"{stage}_metrics")
        metrics.update(logits.detach(), y)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train")
        anr = self._active_neuron_ratio()
        if anr is not None:
            anr_metric = getattr(self, f"{stage}_anr")
            anr_metric.update(anr, weight=len(y))
            self.log(f"{stage}/anr", anr_metric, on_step=False, on_epoch=True)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_start(self) -> None:
        """Tell blocks with a schedule (e.g. annealed top-k) which epoch starts."""
        for module in self.net.modules():
            if callable(getattr(module, "set_epoch", None)):
                module.set_epoch(self.current_epoch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())
