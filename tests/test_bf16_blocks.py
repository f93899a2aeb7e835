"""Blocks trained and tested under ``trainer.precision=bf16-mixed`` through ``midl.train``:
the test stage counts FLOPs under ``FlopCounterMode`` inside Lightning's autocast, where a
float32 parameter meeting a bfloat16 activation used to fail (LoRAMoE's einsum)."""

from __future__ import annotations

import torch

from midl.blocks import LoRAMoEBlock
from midl.train import train


def test_loramoe_mlp_trains_and_tests_in_bf16_mixed(compose_cfg):
    cfg = compose_cfg(["block=loramoe", "trainer.precision=bf16-mixed", "trainer.max_epochs=2",
                       "callbacks.progress_bar.refresh_rate=0"])
    record = train(cfg)   # fit, test of the final weights, test of the best checkpoint
    assert record["test"]["test/acc"] > 0.5 and record["test_last"]["test/acc"] > 0.5
    assert record["test"]["test/flops_block"] > 0   # FlopCounterMode ran in test_step


def test_loramoe_lora_branch_runs_in_the_input_dtype():
    torch.manual_seed(0)
    block = LoRAMoEBlock(16)
    torch.nn.init.normal_(block.lora_b)       # a nonzero update (lora_b starts at zero)
    x = torch.randn(4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = block(x.bfloat16())
    assert mixed.dtype == torch.bfloat16
    # the same function as float32, to bfloat16 rounding
    assert torch.allclose(mixed.float(), block(x), atol=0.15, rtol=0.05)
