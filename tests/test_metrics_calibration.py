"""ECE and Brier score against independent NumPy computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss

from midl.metrics.calibration import (
    BrierScore,
    brier_score,
    expected_calibration_error,
    reliability_bins,
)


def numpy_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Guo et al. (2017), eq. (3): 15 equal-width confidence bins, |acc - conf| weighted."""
    confidence, correct = probs.max(1), probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        members = (confidence > lo) & (confidence <= hi)
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return ece


def numpy_brier(probs: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(1).mean())


def random_predictions(n: int = 2000, c: int = 10, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=gen)
    logits = 2.0 * torch.randn(n, c, generator=gen)
    logits[torch.arange(n), labels] += 1.5  # better than chance, not calibrated
    return logits.double().softmax(-1), labels


def test_perfectly_confident_correct_predictor_scores_zero():
    labels = torch.tensor([0, 2, 1, 2, 0])
    probs = torch.nn.functional.one_hot(labels, 3).float()
    assert expected_calibration_error(probs, labels).item() == 0.0
    assert brier_score(probs, labels).item() == 0.0


def test_constant_overconfident_predictor_has_known_ece():
    # confidence 0.9 everywhere, half of the predictions right: ECE = |0.5 - 0.9| = 0.4
    probs = torch.tensor([[0.9, 0.1]] * 4)
    labels = torch.tensor([0, 1, 0, 1])
    assert expected_calibration_error(probs, labels).item() == pytest.approx(0.4)
    assert brier_score(probs, labels).item() == pytest.approx((0.02 + 1.62) / 2)


def test_random_predictions_match_numpy_and_scikit_learn():
    probs, labels = random_predictions()
    p, y = probs.numpy(), labels.numpy()
    ece = expected_calibration_error(probs.float(), labels).item()
    assert ece == pytest.approx(numpy_ece(p, y), abs=1e-5)
    assert ece > 0.01  # a non-trivial case
    assert brier_score(probs, labels).item() == pytest.approx(numpy_brier(p, y), rel=1e-9)
    assert numpy_brier(p, y) == pytest.approx(brier_score_loss(y, p, labels=list(range(10))))


def test_brier_metric_accumulates_batches_like_one_pass():
    probs, labels = random_predictions(seed=1)
    metric = BrierScore(10)
    for chunk_p, chunk_y in zip(probs.split(300), labels.split(300), strict=True):
        metric.update(chunk_p.float(), chunk_y)
    assert metric.compute().item() == pytest.approx(brier_score(probs, labels).item(), rel=1e-6)
    with pytest.raises(ValueError, match="classes"):
        metric.update(torch.rand(3, 4), torch.zeros(3, dtype=torch.long))


def test_reliability_bins_partition_the_predictions():
    probs, labels = random_predictions(seed=2)
    bins = reliability_bins(probs, labels, n_bins=15)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == len(labels)
    gap = sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    assert gap / len(labels) == pytest.approx(numpy_ece(probs.numpy(), labels.numpy()), abs=1e-9)
