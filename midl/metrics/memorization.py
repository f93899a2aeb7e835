"""How far a model trained on noisy labels has memorized them (Zhang et al. 2017, "Understanding
deep learning requires rethinking generalization"; Arpit et al. 2017, "A closer look at
memorization in deep networks").

Under symmetric label noise (:func:`midl.data.conditions.symmetric_label_noise`) a training
sample is either *flipped* (its label was replaced by another class) or not. A network that
fits the flipped samples' noisy labels has memorized noise; one that keeps predicting their
clean class has not. Both fractions are measured on the training set itself, in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def memorization(predictions: Tensor, noisy_labels: Tensor, clean_labels: Tensor
                 ) -> dict[str, float | int]:
    """Training accuracy split by whether the label was flipped (``noisy != clean``: symmetric
    noise never draws a label's own class, so that is exactly the flipped set).

    Args:
        predictions: (N,) int64 predicted classes of the training samples.
        noisy_labels: (N,) int64 labels the model was trained on.
        clean_labels: (N,) int64 labels before the noise.

    Returns:
        ``memorized``: the fraction of flipped samples predicted as their *noisy* label
        (1.0: every flipped label fitted; 0.0: none); ``flipped_clean_acc``: the fraction of
        flipped samples predicted as their *clean* label; ``unflipped_acc``: accuracy on the
        samples whose label was kept; ``flipped`` and ``unflipped``: their counts. A fraction
        over zero samples is NaN.

    Raises:
        ValueError: if the three tensors do not have the same length N.
    """
    n = len(predictions)
    if not len(noisy_labels) == len(clean_labels) == n:
        raise ValueError(
            f"memorization needs tensors of one length N: predictions {n}, noisy_labels "
            f"{len(noisy_labels)}, clean_labels {len(clean_labels)}")
    flipped = noisy_labels != clean_labels

    def fraction(hits: Tensor) -> float:
        return float(hits.double().mean()) if len(hits) else float("nan")

    kept = ~flipped
    return {
        "memorized": fraction(predictions[flipped] == noisy_labels[flipped]),
        "flipped_clean_acc": fraction(predictions[flipped] == clean_labels[flipped]),
        "unflipped_acc": fraction(predictions[kept] == clean_labels[kept]),
        "flipped": int(flipped.sum()),
        "unflipped": int(kept.sum()),
    }


@torch.no_grad()
def predict(net: torch.nn.Module, inputs: Tensor, batch_size: int = 1000,
            transform: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Predicted classes (N,) of ``net`` on ``inputs`` (N, ...), in batches of
    ``batch_size``, each batch passed through ``transform`` first when given (e.g. a data
    module's normalisation); ``net`` is used in the mode it is in (the caller sets eval)."""
    transform = transform or (lambda x: x)
    return torch.cat([net(transform(inputs[i:i + batch_size])).argmax(-1).cpu()
                      for i in range(0, len(inputs), batch_size)])
