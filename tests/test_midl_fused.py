"""MID-L's fused path (one GEMM for the projections that read x, lerp interpolation) against
the reference formulation, for the same weights."""

from __future__ import annotations

import pytest
import torch

from midl.blocks import GumbelMIDLayer, MIDLayer


def _pair(dim: int, **kwargs) -> tuple[MIDLayer, MIDLayer]:
    torch.manual_seed(0)
    fused = MIDLayer(dim, fused=True, **kwargs)
    reference = MIDLayer(dim, fused=False, **kwargs)
    reference.load_state_dict(fused.state_dict())
    return fused, reference


def _run(layer: MIDLayer, x: torch.Tensor, grad: torch.Tensor, seed: int):
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)                      # same gate-dropout draws in both paths
    y = layer(x)
    y.backward(grad)
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    return y.detach(), x.grad.clone(), grads, layer.last_alpha, layer.last_mask


@pytest.mark.parametrize("estimator", ["ste", "masked"])
@pytest.mark.parametrize("shape", [(8, 12), (3, 5, 12)])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("gate_bias", [True, False])
def test_fused_matches_reference(estimator, shape, train, gate_bias):
    fused, reference = _pair(12, top_k=0.5, rank=5, estimator=estimator, gate_bias=gate_bias)
    fused.train(train)
    reference.train(train)
    torch.manual_seed(1)
    x = torch.randn(*shape)
    grad = torch.randn(*shape)
    out_f = _run(fused, x, grad, seed=2)
    out_r = _run(reference, x, grad, seed=2)
    torch.testing.assert_close(out_f[0], out_r[0], rtol=1e-5, atol=1e-6)     # outputs
    torch.testing.assert_close(out_f[1], out_r[1], rtol=1e-5, atol=1e-6)     # dL/dx
    assert out_f[2].keys() == out_r[2].keys()
    for name in out_r[2]:                                                    # dL/dtheta
        torch.testing.assert_close(out_f[2][name], out_r[2][name], rtol=1e-5, atol=1e-6,
                                   msg=lambda m, n=name: f"{n}: {m}")
    torch.testing.assert_close(out_f[3], out_r[3])                           # last_alpha
    assert torch.equal(out_f[4], out_r[4])                                   # last_mask
    assert out_f[4].dtype == torch.bool


def test_fused_keeps_parameters_and_state_dict():
    fused, reference = _pair(16)
    assert list(fused.state_dict()) == list(reference.state_dict())
    assert [n for n, _ in fused.named_parameters()] == [n for n, _ in
                                                       reference.named_parameters()]
    assert fused.fused and not reference.fused


def test_fused_falls_back_when_paths_or_gate_rule_are_replaced():
    layer = MIDLayer(8, fused=True)
    assert layer._fusable()
    layer.f1 = torch.nn.Linear(8, 8)                 # tests and users may swap a path
    assert not layer._fusable()
    assert layer(torch.randn(4, 8)).shape == (4, 8)
    gumbel = GumbelMIDLayer(8)                       # overrides sparse_gate and forward
    assert not gumbel._fusable()
