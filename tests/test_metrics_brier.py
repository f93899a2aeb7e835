"""Both Brier score definitions (sum and mean over classes) against NumPy and scikit-learn, for
2 and 10 classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss

from midl.metrics.calibration import BrierScore, brier_score


def predictions(n: int, c: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=gen)
    logits = 1.5 * torch.randn(n, c, generator=gen)
    logits[torch.arange(n), labels] += 1.0
    return logits.double().softmax(-1), labels


def numpy_brier_sum(probs: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.eye(probs.shape[1])[labels]
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


@pytest.mark.parametrize("c", [2, 10])
def test_both_definitions_match_numpy(c):
    probs, labels = predictions(3000, c)
    p, y = probs.numpy(), labels.numpy()
    total = numpy_brier_sum(p, y)
    assert brier_score(probs, labels).item() == pytest.approx(total, rel=1e-12)
    assert brier_score(probs, labels, reduction="sum").item() == pytest.approx(total, rel=1e-12)
    assert brier_score(probs, labels, reduction="mean").item() == pytest.approx(total / c,
                                                                                rel=1e-12)


def test_ten_classes_sum_equals_scikit_learn_multiclass():
    probs, labels = predictions(3000, 10)
    sklearn_score = brier_score_loss(labels.numpy(), probs.numpy(), labels=list(range(10)))
    assert brier_score(probs, labels, reduction="sum").item() == pytest.approx(sklearn_score,
                                                                               rel=1e-9)


def test_two_classes_scikit_learn_binary_score_is_half_of_the_sum():
    probs, labels = predictions(3000, 2)
    # scikit-learn's binary score: squared error of the positive class's probability only
    sklearn_binary = brier_score_loss(labels.numpy(), probs[:, 1].numpy())
    ours_sum = brier_score(probs, labels, reduction="sum").item()
    ours_mean = brier_score(probs, labels, reduction="mean").item()
    assert ours_sum == pytest.approx(2 * sklearn_binary, rel=1e-9)
    assert ours_mean == pytest.approx(sklearn_binary, rel=1e-9)  # C = 2: mean = sum / 2


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_metric_accumulates_like_one_pass(reduction):
    probs, labels = predictions(1000, 10, seed=1)
    metric = BrierScore(10, reduction=reduction)
    for chunk in range(0, 1000, 300):
        metric.update(probs[chunk:chunk + 300], labels[chunk:chunk + 300])
    assert metric.compute().item() == pytest.approx(
        brier_score(probs, labels, reduction=reduction).item(), rel=1e-6)


def test_sum_respects_the_accuracy_bound_the_paper_violates():
    # every wrong prediction contributes at least 0.5 to the sum over classes
    probs, labels = predictions(5000, 10, seed=2)
    accuracy = (probs.argmax(1) == labels).double().mean().item()
    assert brier_score(probs, labels).item() >= 0.5 * (1 - accuracy)


def test_unknown_reduction_is_refused():
    probs, labels = predictions(10, 3)
    with pytest.raises(ValueError, match="reduction must be one of"):
        brier_score(probs, labels, reduction="median")
    with pytest.raises(ValueError, match="'none'"):
        BrierScore(3, reduction="none")
