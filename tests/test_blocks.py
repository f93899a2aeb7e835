"""Baseline and ablation blocks: shapes, gradients, auxiliary losses, the published
formulas (checked against independent computations), configs, errors, and the CNN channel slot."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from conftest import CONFIG_DIR
from midl import blocks as B
from midl.backbones import CNN, blocks_of
from midl.blocks import (
    ConcreteDropoutBlock,
    DynamicReLUBlock,
    F1Only,
    F2Only,
    FixedAlpha,
    GumbelMIDLayer,
    LoRAMoEBlock,
    MIDLChannel,
    RandomTopK,
    SwitchBlock,
    relaxed_top_k,
    top_k_mask,
)
from midl.train import train

BLOCK_NAMES = sorted(p.stem for p in (CONFIG_DIR / "block").glob("*.yaml"))
ISSUE_BLOCKS = ["dropout", "concrete_dropout", "dynamic_relu", "switch", "loramoe", "midl",
                "f1_only", "f2_only", "fixed_alpha", "random_topk", "gumbel", "midl_channel"]


def block_config(name: str) -> dict:
    """Block ``name``'s config as Hydra composes it (a block config may extend another
    through its defaults list, e.g. ``midl_masked`` extends ``midl``)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose("train", overrides=[f"block={name}"])
    return OmegaConf.to_container(cfg.block)


def build(name: str, dim: int, **overrides) -> nn.Module:
    """Build block ``name`` from its config file, as the backbone does (``block(dim)``)."""
    cfg = block_config(name)
    cfg.update(overrides)
    return instantiate(cfg)(dim)


def test_every_issue_block_has_a_config():
    assert set(ISSUE_BLOCKS) <= set(BLOCK_NAMES)


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_config_is_partial_commented_and_exported(name):
    path = CONFIG_DIR / "block" / f"{name}.yaml"
    cfg = block_config(name)
    assert cfg["_partial_"] is True
    cls_name = cfg["_target_"].rpartition(".")[2]
    assert cfg["_target_"] == f"midl.blocks.{cls_name}" and cls_name in B.__all__
    for line in path.read_text().splitlines():  # every key has a short comment
        if (line and not line.startswith(("#", "_target_", "defaults:", "  - "))
                and ":" in line):
            assert "#" in line, f"{path.name}: no comment on {line!r}"
    block = build(name, 16)
    doc = (type(block).__doc__ or "") + (type(block).active_neuron_ratio.__doc__ or "")
    assert "ANR" in doc or "active neuron ratio" in doc.lower(), f"{cls_name}: no ANR definition"


def _inputs(name: str, dim: int) -> list[torch.Tensor]:
    if name == "midl_channel":
        return [torch.randn(6, dim), torch.randn(4, dim, 5, 3)]
    return [torch.randn(6, dim), torch.randn(4, 5, dim)]


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_shape_preserved_in_train_and_eval(name):
    torch.manual_seed(0)
    block = build(name, 24)
    for mode in (True, False):
        block.train(mode)
        for x in _inputs(name, 24):
            y = block(x)
            assert y.shape == x.shape and y.dtype == x.dtype
            assert torch.isfinite(y).all()
            anr = block.active_neuron_ratio()
            assert anr is not None and 0.0 <= float(anr) <= 1.0


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_gradients_reach_every_parameter_and_aux_loss_is_differentiable(name):
    torch.manual_seed(0)
    block = build(name, 32)
    if name == "loramoe":
        # B = 0 at initialisation, so A and the router get exactly zero gradient on the first
        # step (LoRA's design, checked in test_loramoe_*); give B a value to check the wiring.
        nn.init.normal_(block.lora_b, std=0.1)
    x = (torch.randn(4, 32, 6, 6) if name == "midl_channel" else torch.randn(256, 32))
    y = block(x)
    loss = (y * torch.randn_like(y)).sum()
    if hasattr(block, "aux_loss"):
        aux = block.aux_loss()
        assert aux.dim() == 0 and torch.isfinite(aux)
        assert aux.requires_grad or float(aux) == 0.0
        loss = loss + aux
    loss.backward()
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {pname}"


# --------------------------------------------------------------------------- concrete dropout


def test_concrete_dropout_regulariser_equals_the_formula():
    d = 5
    block = ConcreteDropoutBlock(d, init_p=0.3, weight_regularizer=0.01, dropout_regularizer=0.02)
    weights = [[0.1 * (i - j) for j in range(d)] for i in range(d)]
    with torch.no_grad():
        block.linear.weight.copy_(torch.tensor(weights))
        block.linear.bias.fill_(5.0)           # the bias is not part of ||W||^2
    p = 0.3
    sq = sum(w * w for row in weights for w in row)
    expected = 0.01 * sq / (1 - p) + 0.02 * d * (p * math.log(p) + (1 - p) * math.log(1 - p))
    reg = block.aux_loss()
    assert reg.item() == pytest.approx(expected, rel=1e-5)
    assert float(block.p) == pytest.approx(p, rel=1e-6)
    assert float(block.extra_metrics()["p"]) == pytest.approx(p, rel=1e-6)
    reg.backward()
    # d/dp of the formula, times dp/dlogit = p (1 - p)
    dreg_dp = 0.01 * sq / (1 - p) ** 2 + 0.02 * d * (math.log(p) - math.log(1 - p))
    assert float(block.p_logit.grad) == pytest.approx(dreg_dp * p * (1 - p), rel=1e-4)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.6])
def test_concrete_dropout_mask_mean_approaches_one_minus_p(p):
    torch.manual_seed(0)
    block = ConcreteDropoutBlock(4, init_p=p).train()
    x = torch.ones(50_000, 4)
    block(x)
    keep = block.last_keep_mask
    assert float(keep.mean()) == pytest.approx(1 - p, abs=0.01)
    # temperature 0.1 makes the relaxed mask nearly binary
    assert float(((keep > 0.05) & (keep < 0.95)).float().mean()) < 0.2


def test_concrete_dropout_is_deterministic_in_eval_and_learns_p():
    torch.manual_seed(0)
    block = ConcreteDropoutBlock(8).eval()
    x = torch.randn(3, 8)
    torch.testing.assert_close(block(x), F.relu(block.linear(x)))
    block.train()
    (block(torch.randn(16, 8)).sum() + block.aux_loss()).backward()
    assert block.p_logit.grad is not None and block.p_logit.grad != 0


# ------------------------------------------------------------------------------ dynamic ReLU


def test_dynamic_relu_with_zero_hyper_output_is_relu():
    torch.manual_seed(0)
    block = DynamicReLUBlock(16)
    x = torch.randn(10, 16)
    assert not torch.allclose(block(x), F.relu(block.linear(x)))   # random hyper-function
    with torch.no_grad():
        block.hyper[-1].weight.zero_()
        block.hyper[-1].bias.zero_()
    torch.testing.assert_close(block(x), F.relu(block.linear(x)))


def test_dynamic_relu_matches_hand_computation():
    torch.manual_seed(1)
    d, k = 8, 2
    block = DynamicReLUBlock(d, k=k, reduction=4, lambda_a=1.0, lambda_b=0.5)
    x = torch.randn(5, d)
    lin, fc1, fc2 = block.linear, block.hyper[0], block.hyper[2]
    assert fc1.out_features == d // 4 and fc2.out_features == 2 * k * d
    z = x @ lin.weight.T + lin.bias
    delta = 2 * torch.sigmoid(torch.relu(z @ fc1.weight.T + fc1.bias) @ fc2.weight.T
                              + fc2.bias) - 1
    delta = delta.view(5, d, 2 * k)
    expected = torch.empty(5, d)
    for n in range(5):
        for c in range(d):
            a1 = 1.0 + 1.0 * delta[n, c, 0]
            a2 = 0.0 + 1.0 * delta[n, c, 1]
            b1 = 0.0 + 0.5 * delta[n, c, 2]
            b2 = 0.0 + 0.5 * delta[n, c, 3]
            expected[n, c] = max(a1 * z[n, c] + b1, a2 * z[n, c] + b2)
    torch.testing.assert_close(block(x), expected)


# ------------------------------------------------------------------------------------ switch


def _switch_with_router(dim: int, num_experts: int, router: torch.Tensor, **kw) -> SwitchBlock:
    block = SwitchBlock(dim, num_experts=num_experts, **kw)
    with torch.no_grad():
        block.router.weight.copy_(router)
    return block


def test_switch_load_balancing_is_coef_for_uniform_routing_and_grows_when_collapsed():
    e = 4
    # token n is e_{n mod E}; router = 3 I: each expert gets N/E tokens and, by symmetry,
    # the same mean probability 1/E, so f_i = P_i = 1/E and E sum_i f_i P_i = 1.
    uniform = _switch_with_router(e, e, 3.0 * torch.eye(e), coef=0.01)
    uniform(torch.eye(e).repeat(8, 1))
    assert float(uniform.aux_loss()) == pytest.approx(0.01, rel=1e-5)

    # every token to expert 0 with probability ~1: f = P = (1, 0, 0, 0) -> coef * E
    router = torch.zeros(e, e)
    router[0] = 20.0
    collapsed = _switch_with_router(e, e, router, coef=0.01)
    collapsed(torch.ones(32, e))
    assert float(collapsed.aux_loss()) == pytest.approx(0.01 * e, rel=1e-3)

    # partially collapsed routing lies in between and matches E sum_i f_i P_i by hand
    torch.manual_seed(0)
    block = SwitchBlock(6, num_experts=e, coef=0.01)
    with torch.no_grad():
        block.router.weight[1] += 1.0
    x = torch.rand(64, 6)
    block(x)
    probs = torch.softmax(x @ block.router.weight.T, dim=-1)
    f = torch.stack([(probs.argmax(-1) == i).float().mean() for i in range(e)])
    by_hand = 0.01 * e * float((f * probs.mean(0)).sum())
    assert float(block.aux_loss()) == pytest.approx(by_hand, rel=1e-5)
    assert 0.01 < by_hand < 0.01 * e


def test_switch_router_z_loss_is_optional():
    torch.manual_seed(0)
    x = torch.randn(32, 8)
    plain = SwitchBlock(8, num_experts=4)
    z = SwitchBlock(8, num_experts=4, z_loss_coef=0.1)
    z.load_state_dict(plain.state_dict())
    plain(x)
    z(x)
    logits = x @ plain.router.weight.T
    extra = 0.1 * float((torch.logsumexp(logits, -1) ** 2).mean())
    assert float(z.aux_loss()) == pytest.approx(float(plain.aux_loss()) + extra, rel=1e-5)


@pytest.mark.parametrize("residual", [True, False])
def test_switch_tokens_over_capacity_pass_through_unchanged(residual):
    torch.manual_seed(0)
    e, n, d = 4, 16, 6
    router = torch.zeros(e, d)
    router[0] = 5.0
    block = _switch_with_router(d, e, router, capacity_factor=1.25, residual=residual).train()
    x = torch.rand(n, d) + 0.1          # positive inputs: every token prefers expert 0
    y = block(x)
    capacity = math.floor(1.25 * n / e)  # 5
    assert block.capacity(n) == capacity
    assert block.last_routed.tolist() == [True] * capacity + [False] * (n - capacity)
    assert torch.equal(y[capacity:], x[capacity:])                 # overflow: unchanged
    gate = torch.softmax(x[:capacity] @ router.T, -1)[:, 0:1]
    expert = block.experts[0](x[:capacity]) * gate
    torch.testing.assert_close(y[:capacity], x[:capacity] + expert if residual else expert)
    util = block.expert_utilisation()
    torch.testing.assert_close(util, torch.tensor([capacity / n, 0.0, 0.0, 0.0]))
    extra = block.extra_metrics()
    assert float(extra["routed"]) == capacity / n and float(extra["util_min"]) == 0.0
    assert float(block.active_neuron_ratio()) == pytest.approx(capacity / n / e)
    # eval mode uses the larger eval capacity factor (2.0): 8 tokens fit
    block.eval()
    block(x)
    assert int(block.last_routed.sum()) == math.floor(2.0 * n / e)


def test_switch_router_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    block = SwitchBlock(8, num_experts=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(torch.randn(16, 8))
    assert y.shape == (16, 8)
    assert block.aux_loss().dtype == torch.float32


# ----------------------------------------------------------------------------------- LoRAMoE


def test_loramoe_at_initialisation_equals_its_base_map():
    torch.manual_seed(0)
    block = LoRAMoEBlock(16)
    x = torch.randn(7, 3, 16)
    torch.testing.assert_close(block(x), block.base(x))
    assert (block.lora_b == 0).all() and block.scaling == 32 / 4
    block(torch.randn(8, 16)).sum().backward()
    assert (block.lora_a.grad == 0).all() and (block.router.weight.grad == 0).all()
    assert (block.lora_b.grad != 0).any()


@pytest.mark.parametrize("top_k", [None, 2])
def test_loramoe_matches_hand_computation(top_k):
    torch.manual_seed(1)
    n_exp, r, d = 4, 3, 10
    block = LoRAMoEBlock(d, num_experts=n_exp, rank=r, lora_alpha=6.0, top_k=top_k)
    nn.init.normal_(block.lora_b)
    x = torch.randn(5, d)
    logits = x @ block.router.weight.T
    expected = x @ block.base.weight.T + block.base.bias
    for t in range(5):
        if top_k is None:
            w = torch.softmax(logits[t], -1)
        else:
            keep = logits[t].argsort(descending=True)[:top_k]
            w = torch.zeros(n_exp)
            w[keep] = torch.softmax(logits[t][keep], -1)
        for i in range(n_exp):
            expected[t] += w[i] * (6.0 / r) * (block.lora_b[i] @ (block.lora_a[i] @ x[t]))
    torch.testing.assert_close(block(x), expected)
    nonzero = (block.last_weights != 0).sum(-1)
    assert (nonzero == (n_exp if top_k is None else top_k)).all()
    assert float(block.active_neuron_ratio()) == (1.0 if top_k is None else top_k / n_exp)


def test_loramoe_balance_loss():
    torch.manual_seed(0)
    block = LoRAMoEBlock(8, num_experts=4, balance_coef=0.5)
    block(torch.randn(20, 8))
    q = block.last_weights.sum(0)
    expected = 0.5 * float(((q - q.mean()) ** 2).mean() / q.mean())
    aux = block.aux_loss()
    assert float(aux) == pytest.approx(expected, rel=1e-5) and aux.requires_grad
    assert float(LoRAMoEBlock(8).aux_loss()) == 0.0


# --------------------------------------------------------------------------------- ablations


def test_f1_only_and_f2_only_are_the_midl_paths():
    torch.manual_seed(0)
    x = torch.randn(4, 12)
    f1 = F1Only(12)
    assert [m.out_features for m in f1.f1] == [6, 12]
    lin1, lin2 = f1.f1
    torch.testing.assert_close(f1(x), (x @ lin1.weight.T + lin1.bias) @ lin2.weight.T + lin2.bias)
    f2 = F2Only(12)
    a, _, b = f2.f2
    torch.testing.assert_close(f2(x), F.relu(x @ a.weight.T + a.bias) @ b.weight.T + b.bias)
    assert float(f1.active_neuron_ratio()) == float(f2.active_neuron_ratio()) == 1.0


def test_fixed_alpha_is_the_mean_of_both_paths():
    torch.manual_seed(0)
    block = FixedAlpha(12).eval()
    x = torch.randn(9, 12)
    torch.testing.assert_close(block(x), 0.5 * block.f1(x) + 0.5 * block.f2(x))
    assert not any("gate" in n for n, _ in block.named_parameters())   # no gate network
    # without gate dropout the training forward is the same
    train_block = FixedAlpha(12, gate_dropout=0.0)
    train_block.load_state_dict(block.state_dict())
    torch.testing.assert_close(train_block(x), 0.5 * block.f1(x) + 0.5 * block.f2(x))


def test_random_topk_masks_have_k_ones_differ_between_calls_and_are_uniform():
    torch.manual_seed(0)
    block = RandomTopK(20, top_k=0.25, gate_dropout=0.0)
    x = torch.randn(500, 20)
    y1 = block(x)
    m1 = block.last_mask.clone()
    y2 = block(x)
    m2 = block.last_mask
    assert (m1.sum(-1) == 5).all() and (m2.sum(-1) == 5).all()
    assert not torch.equal(m1, m2) and not torch.equal(y1, y2)
    # the output uses alpha = 0.5 on the kept neurons and F2 alone on the others
    a = 0.5 * m2.float()
    torch.testing.assert_close(y2, a * block.f1(x) + (1 - a) * block.f2(x))
    # a uniformly random subset: every neuron is kept in about k / d = 25% of the rows,
    # independently of the input
    freq = m1.float().mean(0)
    assert (freq - 0.25).abs().max() < 0.08
    assert float(block.active_neuron_ratio()) == pytest.approx(0.25)
    block.eval()
    block(x)
    assert not torch.equal(block.last_mask, m2)            # random in eval too


def test_relaxed_top_k_properties():
    torch.manual_seed(0)
    logits = torch.randn(6, 10)
    soft = relaxed_top_k(logits, 3, 0.5)
    torch.testing.assert_close(soft.sum(-1), torch.full((6,), 3.0))
    assert (soft >= 0).all() and (soft <= 1 + 1e-6).all()
    # k = 1 is the Gumbel-softmax relaxation softmax(l / t)
    torch.testing.assert_close(relaxed_top_k(logits, 1, 0.7), torch.softmax(logits / 0.7, -1))
    # as t -> 0 it becomes the hard top-k mask
    torch.testing.assert_close(relaxed_top_k(logits, 3, 1e-5), top_k_mask(logits, 3),
                               atol=1e-3, rtol=0)


def test_gumbel_hard_masks_have_k_ones_and_gradients_reach_gate_logits():
    torch.manual_seed(0)
    block = GumbelMIDLayer(16, top_k=4, gate_dropout=0.0).train()
    x = torch.randn(32, 16)
    captured = {}

    def capture(module, inputs, output):
        output.register_hook(lambda g: captured.setdefault("logits", g))

    block.gate.register_forward_hook(capture)
    y = block(x)
    mask = block.last_mask.clone()
    assert (mask.sum(-1) == 4).all()
    (y * torch.randn_like(y)).sum().backward()
    grad = captured["logits"]
    # the relaxed top-k passes gradient to every gate logit, kept or not
    assert (grad[~mask].abs() > 0).float().mean() > 0.9
    assert block.gate.weight.grad.abs().sum() > 0
    # noise: another training pass draws another mask; eval is MID-L's deterministic top-k
    block(x)
    assert not torch.equal(block.last_mask, mask)
    block.eval()
    y_eval = block(x)
    assert torch.equal(block.last_mask, top_k_mask(block.gate(x), 4).bool())
    alpha = torch.sigmoid(block.gate(x))
    a_hat = alpha * block.last_mask
    torch.testing.assert_close(y_eval, a_hat * block.f1(x) + (1 - a_hat) * block.f2(x))


def test_gumbel_top_1_samples_neurons_with_softmax_probabilities():
    # Gumbel-max: with k = 1 the kept neuron is a sample from softmax(gate logits)
    torch.manual_seed(0)
    block = GumbelMIDLayer(4, top_k=1, gate_dropout=0.0).train()
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5])
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.bias.copy_(logits)
    block(torch.randn(40_000, 4))
    freq = block.last_mask.float().mean(0)
    torch.testing.assert_close(freq, torch.softmax(logits, -1), atol=0.01, rtol=0)


def test_gumbel_forward_value_uses_the_hard_mask():
    torch.manual_seed(1)
    block = GumbelMIDLayer(12, top_k=3, gate_dropout=0.0).train()
    x = torch.randn(5, 12)
    y = block(x)
    a_hat = block.last_alpha * block.last_mask
    torch.testing.assert_close(y, a_hat * block.f1(x) + (1 - a_hat) * block.f2(x))


def test_gumbel_temperature_annealing():
    block = GumbelMIDLayer(8, temperature=0.5, temperature_start=2.0, temperature_anneal_epochs=2)
    temps = []
    for epoch in range(4):
        block.set_epoch(epoch)
        temps.append(block.temperature)
    assert temps == pytest.approx([2.0, 1.0, 0.5, 0.5])
    assert GumbelMIDLayer(8).temperature == 0.5


# ------------------------------------------------------------------------------ midl_channel


def test_midl_channel_gates_whole_channels():
    torch.manual_seed(0)
    c = 8
    block = MIDLChannel(c, top_k=0.25, gate_dropout=0.0).eval()
    x = torch.randn(3, c, 5, 4)
    y = block(x)
    assert block.last_mask.shape == (3, c) and (block.last_mask.sum(-1) == 2).all()
    # independent computation: GAP -> gate, 1x1 convolutions as channel matmuls
    alpha = torch.sigmoid(x.mean((2, 3)) @ block.gate.weight.T + block.gate.bias)
    a_hat = (alpha * top_k_mask(alpha, 2))[:, :, None, None]

    def conv1x1(conv, t):
        return torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], t) + conv.bias[:, None, None]

    f1 = conv1x1(block.f1[1], conv1x1(block.f1[0], x))
    f2 = conv1x1(block.f2[2], F.relu(conv1x1(block.f2[0], x)))
    torch.testing.assert_close(y, a_hat * f1 + (1 - a_hat) * f2)
    assert block.f1[0].out_channels == c // 2
    assert float(block.active_neuron_ratio()) == pytest.approx(0.25)
    # a (B, C) input is the 1x1 map
    pixel = x[:, :, :1, :1]
    torch.testing.assert_close(block(pixel.flatten(1)), block(pixel)[:, :, 0, 0])


def test_cnn_channel_block_slot():
    torch.manual_seed(0)
    head = functools.partial(B.DropoutBlock, p=0.0)
    plain = CNN((3, 16, 16), 5, head, channels=(4, 8), hidden_dim=16)
    assert not any(isinstance(m, MIDLChannel) for m in plain.modules())
    every = CNN((3, 16, 16), 5, head, channels=(4, 8), hidden_dim=16,
                channel_block=functools.partial(MIDLChannel, top_k=0.5))
    gated = [m for m in every.features if isinstance(m, MIDLChannel)]
    assert [m.dim for m in gated] == [4, 8]
    last = CNN((3, 16, 16), 5, head, channels=(4, 8), hidden_dim=16,
               channel_block=MIDLChannel, channel_stages=[-1])
    assert [m.dim for m in last.features if isinstance(m, MIDLChannel)] == [8]
    assert last(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert len(blocks_of(last)) == 2
    with pytest.raises(ValueError, match="channel_stages entry 2"):
        CNN((3, 16, 16), 5, head, channels=(4, 8), channel_block=MIDLChannel, channel_stages=[2])


def test_midl_channel_inside_the_cnn_through_hydra(compose_cfg):
    cfg = compose_cfg(["model=cnn", "block=midl_channel", "model.channel_block=${block}",
                       "model.channel_stages=[-1]", "debug=fdr"])
    record = train(cfg)
    assert record["test"]["test/anr"] == pytest.approx(0.5)
    assert record["config"]["model"]["channel_block"]["_target_"] == "midl.blocks.MIDLChannel"


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("factory, kwargs, match", [
    (ConcreteDropoutBlock, {"init_p": 1.0}, r"init_p=1.0 .*\(0, 1\)"),
    (ConcreteDropoutBlock, {"temperature": 0.0}, r"temperature=0.0 .*\(0, inf\]"),
    (ConcreteDropoutBlock, {"weight_regularizer": -1.0}, r"weight_regularizer=-1.0 .*\[0, inf\]"),
    (DynamicReLUBlock, {"k": 0}, "k=0 must be a positive int"),
    (DynamicReLUBlock, {"init_a": [1.0]}, r"init_a=\[1.0\] must have k=2 entries"),
    (DynamicReLUBlock, {"lambda_b": -0.5}, r"lambda_b=-0.5 .*\[0, inf\]"),
    (SwitchBlock, {"num_experts": 0}, "num_experts=0 must be a positive int"),
    (SwitchBlock, {"capacity_factor": 0.0}, r"capacity_factor=0.0 .*\(0, inf\]"),
    (SwitchBlock, {"coef": -0.1}, r"coef=-0.1 .*\[0, inf\]"),
    (LoRAMoEBlock, {"rank": 17}, r"rank=17 .*\[1, 16\]"),
    (LoRAMoEBlock, {"top_k": 9}, r"top_k=9 .*\[1, 8\]"),
    (LoRAMoEBlock, {"lora_alpha": 0}, r"lora_alpha=0 .*\(0, inf\]"),
    (F1Only, {"rank": 0}, r"rank=0 .*\[1, 16\]"),
    (FixedAlpha, {"alpha": 1.5}, r"alpha=1.5 .*\[0, 1\]"),
    (FixedAlpha, {"gate_dropout": 1.0}, r"gate_dropout=1.0 .*\[0, 1\)"),
    (RandomTopK, {"top_k": 17}, r"top_k=17 .*\[1, 16\]"),
    (RandomTopK, {"top_k": 0.0}, r"top_k=0.0 .*\(0, 1\]"),
    (GumbelMIDLayer, {"temperature": -1.0}, r"temperature=-1.0 .*\(0, inf\]"),
    (GumbelMIDLayer, {"top_k": 40}, r"top_k=40 .*\[1, 16\]"),
    (MIDLChannel, {"estimator": "soft"}, "estimator='soft' is unknown"),
    (MIDLChannel, {"top_k": 1.2}, r"top_k=1.2 .*\(0, 1\]"),
])
def test_bad_arguments_name_the_value_and_range(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(16, **kwargs)


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_bad_dim_and_wrong_input_width_are_refused(name):
    with pytest.raises(ValueError, match="dim=0"):
        build(name, 0)
    block = build(name, 8)
    with pytest.raises(ValueError):
        block(torch.randn(2, 9) if name != "midl_channel" else torch.randn(2, 9, 3, 3))
