"""MIDLayer: shapes, top-k sparsity, the paper's backward formulas, estimators, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from midl.blocks import MIDLayer, resolve_top_k, top_k_mask


@pytest.mark.parametrize("shape", [(16, 32), (4, 7, 32)])
def test_output_shape_and_gate_sparsity(shape):
    torch.manual_seed(0)
    layer = MIDLayer(32, top_k=0.25, gate_dropout=0.0)
    x = torch.randn(*shape)
    y = layer(x)
    assert y.shape == x.shape
    # exactly k = 8 nonzero gate entries per row (per sample, and per position for sequences)
    assert layer.last_mask.shape == x.shape
    assert (layer.last_mask.sum(-1) == 8).all()
    alpha_hat = layer.last_alpha * layer.last_mask
    assert ((alpha_hat != 0).sum(-1) == 8).all()
    # the kept gates are the k largest of alpha
    kept_min = layer.last_alpha.masked_fill(~layer.last_mask, 2.0).min(-1).values
    dropped_max = layer.last_alpha.masked_fill(layer.last_mask, -1.0).max(-1).values
    assert (kept_min >= dropped_max).all()
    assert layer.active_neuron_ratio().item() == pytest.approx(0.25)


def test_output_matches_formula():
    torch.manual_seed(1)
    layer = MIDLayer(12, top_k=5, gate_dropout=0.0).eval()
    x = torch.randn(9, 12)
    alpha = torch.sigmoid(layer.gate(x))
    mask = top_k_mask(alpha, 5)
    alpha_hat = alpha * mask
    expected = alpha_hat * layer.f1(x) + (1 - alpha_hat) * layer.f2(x)
    torch.testing.assert_close(layer(x), expected)
    # F1 is low-rank d -> d/2 -> d and F2 is Linear -> ReLU -> Linear (Section 4.4)
    assert [m.out_features for m in layer.f1] == [6, 12]
    assert isinstance(layer.f2[1], nn.ReLU)


def _linear_paths(dim: int, estimator: str) -> MIDLayer:
    layer = MIDLayer(dim, top_k=0.5, gate_dropout=0.0, estimator=estimator)
    layer.f1, layer.f2 = nn.Linear(dim, dim), nn.Linear(dim, dim)  # F1 = W1 x + b1, F2 = W2 x + b2
    return layer


def test_masked_estimator_matches_paper_backward_formulas():
    """Section 4.3: dL/dW1 = diag(alpha_hat) dL/dz x^T, dL/dW2 = diag(1 - alpha_hat) dL/dz x^T,
    dL/dW_alpha = (dL/dz * (F1 - F2)) dalpha/dW_alpha for kept gates only (Appendix A)."""
    torch.manual_seed(2)
    d, b = 10, 6
    layer = _linear_paths(d, "masked")
    x = torch.randn(b, d)
    target = torch.randn(b, d)
    z = layer(x)
    loss = ((z - target) ** 2).sum()
    loss.backward()

    g = 2 * (z.detach() - target)                      # dL/dz, (B, d)
    alpha = layer.last_alpha
    alpha_hat = alpha * layer.last_mask
    # per sample: diag(a) g x^T; summed over the batch
    dw1 = torch.einsum("bi,bj->ij", alpha_hat * g, x)
    dw2 = torch.einsum("bi,bj->ij", (1 - alpha_hat) * g, x)
    torch.testing.assert_close(layer.f1.weight.grad, dw1)
    torch.testing.assert_close(layer.f2.weight.grad, dw2)
    torch.testing.assert_close(layer.f1.bias.grad, (alpha_hat * g).sum(0))
    torch.testing.assert_close(layer.f2.bias.grad, ((1 - alpha_hat) * g).sum(0))

    with torch.no_grad():
        diff = layer.f1(x) - layer.f2(x)
    dalpha = g * diff * layer.last_mask               # gradient only through kept gates
    dpre = dalpha * alpha * (1 - alpha)               # sigmoid'
    torch.testing.assert_close(layer.gate.weight.grad, dpre.T @ x)


def test_ste_estimator_gives_gradient_to_unselected_gates():
    grads = {}
    for estimator in ("ste", "masked"):
        torch.manual_seed(3)
        layer = _linear_paths(10, estimator)
        x = torch.randn(5, 10)
        # capture dL/d(W_alpha x), the gradient reaching the gate's pre-activation
        captured = {}

        def capture(module, inputs, output, captured=captured):
            output.register_hook(lambda g: captured.setdefault("pre", g))

        hook = layer.gate.register_forward_hook(capture)
        layer(x).sum().backward()
        hook.remove()
        grads[estimator] = (captured["pre"], layer.last_mask)
    pre_ste, mask = grads["ste"]
    pre_masked, mask_m = grads["masked"]
    assert torch.equal(mask, mask_m)
    unselected = ~mask
    assert (pre_ste[unselected].abs() > 0).any()       # STE: unselected alphas get gradient
    assert (pre_masked[unselected] == 0).all()         # masked: they get none
    # on the kept gates both estimators agree
    torch.testing.assert_close(pre_ste[mask], pre_masked[mask])


def test_forward_is_the_same_for_both_estimators():
    torch.manual_seed(4)
    a = MIDLayer(16, estimator="ste", gate_dropout=0.0)
    b = MIDLayer(16, estimator="masked", gate_dropout=0.0)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 16)
    torch.testing.assert_close(a(x), b(x))


def test_gate_dropout_only_in_training():
    torch.manual_seed(5)
    layer = MIDLayer(64, gate_dropout=0.5)
    x = torch.randn(8, 64)
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    layer.train()
    assert not torch.equal(layer(x), layer(x))


def test_top_k_forms_and_errors():
    assert resolve_top_k(0.5, 10) == 5
    assert resolve_top_k(1.0, 10) == 10
    assert resolve_top_k(3, 10) == 3
    assert resolve_top_k(0.01, 10) == 1
    for bad in (0, 11, -1):
        with pytest.raises(ValueError, match=r"top_k=.*\[1, 10\]"):
            MIDLayer(10, top_k=bad)
    for bad in (0.0, 1.5, -0.2, float("nan")):
        with pytest.raises(ValueError, match=r"top_k=.*\(0, 1\]"):
            MIDLayer(10, top_k=bad)
    with pytest.raises(TypeError, match="top_k"):
        MIDLayer(10, top_k=True)
    with pytest.raises(ValueError, match="estimator='gumbel'"):
        MIDLayer(10, estimator="gumbel")
    with pytest.raises(ValueError, match="gate_dropout=1.0"):
        MIDLayer(10, gate_dropout=1.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 10\)"):
        MIDLayer(10)(torch.randn(2, 11))


def test_top_k_annealing_schedule():
    layer = MIDLayer(10, top_k=0.5, top_k_start=1.0, anneal_epochs=5)
    ks = []
    for epoch in range(8):
        layer.set_epoch(epoch)
        ks.append(layer.k)
    assert ks == [10, 9, 8, 7, 6, 5, 5, 5]
    layer(torch.randn(2, 10))
    assert (layer.last_mask.sum(-1) == 5).all()
