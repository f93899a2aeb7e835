"""A Transformer's feed-forward sub-layer (Vaswani et al. 2017, "Attention is all you need",
Section 3.3; GELU as in Devlin et al. 2019, BERT): the baseline of ``model=transformer``'s
block slot. Pure PyTorch."""

from __future__ import annotations

from torch import nn

from midl.blocks._checks import check_dim, check_range
from midl.blocks._dense import DenseBlock


class FFNBlock(DenseBlock):
    """Linear(d, e d) -> GELU -> Dropout(p) -> Linear(e d, d) -> Dropout(p).

    Args:
        dim: model width d.
        expansion: hidden width as a multiple e of d (default 4).
        dropout: dropout probability p in [0, 1) after the activation and after the output
            projection (default 0.1).

    Shapes:
        input (..., d), output (..., d); applied to every position independently.

    Raises:
        ValueError: if ``dim`` or ``expansion`` is not a positive int, or ``dropout`` is
            outside [0, 1).
    """

    def __init__(self, dim: int, expansion: int = 4, dropout: float = 0.1) -> None:
        check_dim("dim", dim)
        hidden = check_dim("expansion", expansion) * dim
        p = check_range("dropout", dropout, 0.0, 1.0, high_open=True)
        super().__init__(dim, nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(p),
                                            nn.Linear(hidden, dim), nn.Dropout(p)))

