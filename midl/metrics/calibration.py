"""Calibration of predicted class probabilities (the paper's Table 7, Appendix B).

- Expected calibration error (ECE; Guo et al., "On calibration of modern neural networks",
  ICML 2017): the confidence max_c p_c of each prediction is put in one of 15 equal-width bins
  on [0, 1]; ECE = sum_b (|B_b| / n) * |accuracy(B_b) - mean confidence(B_b)| (L1 norm). Computed
  with torchmetrics' ``MulticlassCalibrationError(n_bins=15, norm="l1")``. A fraction in
  [0, 1]; the paper prints it in %.
- Brier score (Brier, "Verification of forecasts expressed in terms of probability", Monthly
  Weather Review 1950), multiclass form: mean_n sum_c (p_nc - y_nc)^2 with y one-hot, in
  [0, 2]. torchmetrics has none, so :class:`BrierScore` is ours; it equals scikit-learn's
  multiclass ``brier_score_loss``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_calibration_error

DEFAULT_BINS = 15


def _check(probs: Tensor, targets: Tensor) -> None:
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (N, C), got {tuple(probs.shape)}")
    if targets.shape != probs.shape[:1]:
        raise ValueError(f"targets must have shape (N,) = ({probs.shape[0]},), "
                         f"got {tuple(targets.shape)}")


def brier_score(probs: Tensor, targets: Tensor) -> Tensor:
    """Multiclass Brier score mean_n sum_c (p_nc - 1[y_n = c])^2 (Brier 1950).

    Args:
        probs: predicted probabilities (N, C), rows summing to 1.
        targets: integer labels (N,) in [0, C).

    Returns:
        A 0-d tensor in [0, 2]; 0 for a perfectly confident correct predictor.

    Raises:
        ValueError: for mis-shaped inputs.
    """
    _check(probs, targets)
    onehot = F.one_hot(targets.long(), probs.shape[1]).to(probs.dtype)
    return ((probs - onehot) ** 2).sum(1).mean()


def expected_calibration_error(probs: Tensor, targets: Tensor,
                               n_bins: int = DEFAULT_BINS) -> Tensor:
    """ECE with ``n_bins`` equal-width confidence bins and the L1 norm (Guo et al. 2017).

    Args:
        probs: predicted probabilities (N, C); targets: labels (N,).
        n_bins: number of bins (15 by default).

    Returns:
        A 0-d tensor in [0, 1] (torchmetrics ``multiclass_calibration_error``).
    """
    _check(probs, targets)
    return multiclass_calibration_error(probs, targets.long(), probs.shape[1], n_bins=n_bins,
                                        norm="l1")


def reliability_bins(probs: Tensor, targets: Tensor,
                     n_bins: int = DEFAULT_BINS) -> list[dict[str, Any]]:
    """Per-bin accuracy, mean confidence and count of a reliability diagram.

    Bins are [i/n_bins, (i+1)/n_bins), the last one closed; empty bins are listed with
    ``None`` accuracy and confidence.

    Returns:
        A list of ``{"lower", "upper", "count", "accuracy", "confidence"}`` dicts.
    """
    _check(probs, targets)
    confidence, predicted = probs.max(1)
    correct = (predicted == targets).double()
    index = (confidence.double() * n_bins).long().clamp(0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        rows.append({"lower": b / n_bins, "upper": (b + 1) / n_bins, "count": count,
                     "accuracy": float(correct[members].mean()) if count else None,
                     "confidence": float(confidence[members].double().mean()) if count
                     else None})
    return rows


class BrierScore(Metric):
    """torchmetrics ``Metric`` accumulating the multiclass Brier score over batches.

    ``update(probs (N, C), targets (N,))``; ``compute()`` -> 0-d tensor, see
    :func:`brier_score`.

    Args:
        num_classes: C (checked against ``probs``).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: Tensor, targets: Tensor) -> None:
        """Add a batch of probabilities (N, C) and labels (N,)."""
        _check(probs, targets)
        if probs.shape[1] != self.num_classes:
            raise ValueError(f"probs has {probs.shape[1]} classes, expected {self.num_classes}")
        onehot = F.one_hot(targets.long(), self.num_classes).to(torch.float64)
        self.total += ((probs.double() - onehot) ** 2).sum()
        self.count += probs.shape[0]

    def compute(self) -> Tensor:
        """The mean over all samples seen."""
        return (self.total / self.count).float()


__all__ = ["DEFAULT_BINS", "BrierScore", "brier_score", "expected_calibration_error",
           "reliability_bins"]
