"""Data conditions shared by every dataset: symmetric label noise and low-data subsets.

Both are pure functions of the labels and their own seed (never the model seed), so that a
sweep over model seeds trains every run on the same noisy labels and the same subset.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_seed(key: str, seed: object) -> int:
    """Validate a seed: a non-negative int (raises ValueError naming ``key``)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{key}={seed!r} must be a non-negative int")
    return seed


def check_noise_rate(rate: object, key: str = "data.label_noise") -> float:
    """Validate a label-noise rate: a number in [0, 1).

    Raises:
        ValueError: naming ``key`` and the allowed range.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(f"{key}={rate!r} is out of range: a label-noise rate must be a number "
                         "in [0, 1) (the paper uses 0.2, 0.4 and 0.6)")
    return float(rate)


def symmetric_label_noise(labels: Tensor, rate: float, num_classes: int,
                          seed: int = 0) -> tuple[Tensor, Tensor]:
    """Symmetric label noise: each label is replaced, with probability ``rate``, by a class
    drawn uniformly from the *other* ``num_classes - 1`` classes.

    This is the "symmetric" (uniform off-diagonal) noise transition matrix of Patrini et al.
    (2017, CVPR, "Making deep neural networks robust to label noise") as used by Co-teaching
    (Han et al. 2018): T = (1 - r) I + r / (K - 1) (1 - I). A label is never "flipped" to itself,
    so the expected fraction of wrong labels is exactly ``rate``.

    Args:
        labels: (N,) int64 class indices in [0, num_classes).
        rate: noise rate r in [0, 1).
        num_classes: K >= 2.
        seed: seed of a private generator (independent of the global/model seed).

    Returns:
        ``(noisy, flipped)``: (N,) int64 noisy labels and (N,) bool mask of changed labels;
        the realised noise rate is ``flipped.float().mean()``.

    Raises:
        ValueError: for a rate outside [0, 1), fewer than two classes, labels out of range or
            a negative seed.
    """
    rate = check_noise_rate(rate)
    check_seed("data.noise_seed", seed)
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes} must be >= 2 for label noise")
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) for label noise")
    gen = torch.Generator().manual_seed(seed)
    flipped = torch.rand(len(labels), generator=gen) < rate
    offsets = torch.randint(1, num_classes, (len(labels),), generator=gen)  # 1..K-1: never 0
    noisy = torch.where(flipped, (labels + offsets) % num_classes, labels)
    return noisy, flipped


def select_subset(labels: Tensor, num_classes: int, per_class: int | None = None,
                  size: int | None = None, seed: int = 0) -> Tensor:
    """Seeded training subset for the low-data regimes (paper Section 5.4).

    Either ``per_class`` samples of every class (balanced: 20 per class gives 200 images for
    CIFAR-10 and MNIST), or ``size`` samples drawn uniformly without replacement (not
    stratified; e.g. 1,000 Adult records). Exactly one of the two must be given.

    Args:
        labels: (N,) int64 labels of the official training split.
        num_classes: number of classes.
        per_class: samples per class, in [1, smallest class count].
        size: total samples, in [1, N - 1] (at least one sample must remain for validation).
        seed: seed of a private generator (``data.subset_seed``).

    Returns:
        (M,) int64 sorted indices into the official training split.

    Raises:
        ValueError: when both or neither are given, or a value is out of range (naming the key
            ``data.train_per_class`` / ``data.train_size`` and the allowed range).
    """
    check_seed("data.subset_seed", seed)
    if (per_class is None) == (size is None):
        raise ValueError("set exactly one of data.train_per_class and data.train_size")
    labels = torch.as_tensor(labels, dtype=torch.int64)
    n = len(labels)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if per_class is not None:
        counts = torch.bincount(labels, minlength=num_classes)
        smallest = int(counts.min())
        if isinstance(per_class, bool) or not isinstance(per_class, int) \
                or not 1 <= per_class <= smallest:
            raise ValueError(f"data.train_per_class={per_class!r} is out of range: use an int in "
                             f"[1, {smallest}] (the smallest class has {smallest} samples)")
        labels_perm = labels[perm]
        chosen = [perm[labels_perm == c][:per_class] for c in range(num_classes)]
        return torch.cat(chosen).sort().values
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= n - 1:
        raise ValueError(f"data.train_size={size!r} is out of range: use an int in [1, {n - 1}] "
                         "(the rest of the training split holds the validation slice)")
    return perm[:size].sort().values
