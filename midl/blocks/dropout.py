"""The "MLP + Dropout" baseline block (Srivastava et al. 2014, JMLR 15(1)).

Pure PyTorch. This is the block the paper compares MID-L against in Tables 2, 3 and 8.
"""

from __future__ import annotations

from torch import nn

from midl.blocks._dense import DenseBlock


class DropoutBlock(DenseBlock):
    """Linear(d, d) -> ReLU -> Dropout(p): the paper's "MLP + Dropout" block.

    Args:
        dim: feature size d of input and output.
        p: dropout probability in [0, 1); default 0.5, the hidden-unit rate of
            Srivastava et al. (2014).

    Shapes:
        input (..., d), output (..., d).

    Raises:
        ValueError: if ``p`` is outside [0, 1) or ``dim`` < 1.
    """

    def __init__(self, dim: int, p: float = 0.5) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim={dim!r} must be a positive int")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p={p} is out of range: the dropout probability must lie in [0, 1)")
        super().__init__(dim, nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(p)))


class WideDropoutBlock(DenseBlock):
    """Linear(d, w d) -> ReLU -> Dropout(p) -> Linear(w d, d): a Dropout MLP block whose
    parameter count matches MID-L's, to separate "MID-L's gating helps" from "more parameters
    help" (the paper compares MID-L with :class:`DropoutBlock`, which holds about a quarter of
    its parameters).

    With the default ``width`` = 2 it holds 4 d^2 + 3 d parameters: 262,912 at d = 256 against
    :class:`~midl.blocks.MIDLayer`'s 263,296 (within 0.2%), and 1,050,112
    at d = 512 (MID-L: 1,050,880). Its forward costs 4 d^2 multiply-adds per sample, as
    MID-L's dense forward does.

    Args:
        dim: feature size d of input and output.
        p: dropout probability in [0, 1) on the hidden layer; default 0.5, as
            :class:`DropoutBlock`.
        width: hidden width as a multiple of d (an int >= 1); default 2.

    Shapes:
        input (..., d), output (..., d).

    Raises:
        ValueError: if ``dim`` or ``width`` is not a positive int, or ``p`` is outside [0, 1).
    """

    def __init__(self, dim: int, p: float = 0.5, width: int = 2) -> None:
        for name, value in (("dim", dim), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive int")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p={p} is out of range: the dropout probability must lie in [0, 1)")
        super().__init__(dim, nn.Sequential(nn.Linear(dim, width * dim), nn.ReLU(),
                                            nn.Dropout(p), nn.Linear(width * dim, dim)))
