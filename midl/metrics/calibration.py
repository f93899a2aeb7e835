"""Calibration of predicted class probabilities (the paper's Table 7, Appendix B).

- Expected calibration error (ECE; Guo et al., "On calibration of modern neural networks",
  ICML 2017): the confidence max_c p_c of each prediction is put in one of 15 equal-width bins
  on [0, 1]; ECE = sum_b (|B_b| / n) * |accuracy(B_b) - mean confidence(B_b)| (L1 norm). Computed
  with torchmetrics' ``MulticlassCalibrationError(n_bins=15, norm="l1")``. A fraction in
  [0, 1]; the paper prints it in %.
- Brier score (Brier, "Verification of forecasts expressed in terms of probability", Monthly
  Weather Review 1950), in two forms over C classes with y one-hot:

  - ``brier_sum`` (Brier's original multiclass score): mean_n sum_c (p_nc - y_nc)^2, in [0, 2].
    For C > 2 it equals scikit-learn's ``brier_score_loss(y, p, labels=...)`` with (N, C)
    probabilities; for C = 2 scikit-learn's binary score is the squared error of the
    positive class only, (p_n1 - y_n1)^2, which is half of ours.
  - ``brier_mean``: the mean over classes, brier_sum / C, in [0, 2 / C].

  A model of accuracy a has brier_sum >= 0.5 x (1 - a) (each wrong prediction puts at most
  0.5 on the true class, so it contributes at least 0.5) and brier_mean >= 0.5 x (1 - a) / C.
  The paper's Table 7 (0.072-0.084 at about 83% accuracy) is below the first bound (0.085) and
  above the second (0.0085), so only ``brier_mean`` can be the paper's definition; the tables
  compare that one with the paper and show ``brier_sum`` beside it. torchmetrics has no Brier
  score, so :class:`BrierScore` is ours.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_calibration_error

DEFAULT_BINS = 15
BRIER_REDUCTIONS = ("sum", "mean")


def _check(probs: Tensor, targets: Tensor) -> None:
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (N, C), got {tuple(probs.shape)}")
    if targets.shape != probs.shape[:1]:
        raise ValueError(f"targets must have shape (N,) = ({probs.shape[0]},), "
                         f"got {tuple(targets.shape)}")


def _check_reduction(reduction: str) -> None:
    if reduction not in BRIER_REDUCTIONS:
        raise ValueError(f"reduction must be one of {BRIER_REDUCTIONS}, got {reduction!r}")


def brier_score(probs: Tensor, targets: Tensor, reduction: str = "sum") -> Tensor:
    """Multiclass Brier score (Brier 1950), summed or averaged over the C classes.

    ``reduction="sum"``: mean_n sum_c (p_nc - 1[y_n = c])^2 (``brier_sum``, in [0, 2]);
    ``reduction="mean"``: the same divided by C (``brier_mean``, in [0, 2 / C]). See the
    module docstring for how they relate to scikit-learn's ``brier_score_loss``.

    Args:
        probs: predicted probabilities (N, C), rows summing to 1.
        targets: integer labels (N,) in [0, C).
        reduction: ``"sum"`` or ``"mean"`` over classes.

    Returns:
        A 0-d tensor; 0 for a perfectly confident correct predictor.

    Raises:
        ValueError: for mis-shaped inputs or an unknown ``reduction``.
    """
    _check(probs, targets)
    _check_reduction(reduction)
    onehot = F.one_hot(targets.long(), probs.shape[1]).to(probs.dtype)
    per_sample = ((probs - onehot) ** 2).sum(1)
    if reduction == "mean":
        per_sample = per_sample / probs.shape[1]
    return per_sample.mean()


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
        reduction: ``"sum"`` (``brier_sum``) or ``"mean"`` (``brier_mean``) over classes.

    Raises:
        ValueError: for an unknown ``reduction``.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, num_classes: int, reduction: str = "sum", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_reduction(reduction)
        self.num_classes = num_classes
        self.reduction = reduction
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
        """The mean over all samples seen (divided by C for ``reduction="mean"``)."""
        divisor = self.num_classes if self.reduction == "mean" else 1
        return (self.total / self.count / divisor).float()


__all__ = ["BRIER_REDUCTIONS", "DEFAULT_BINS", "BrierScore", "brier_score",
           "expected_calibration_error", "reliability_bins"]
