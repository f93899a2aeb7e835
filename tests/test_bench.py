"""`python -m midl.bench --smoke` produces every field. No timing thresholds."""

from __future__ import annotations

import json

from midl.bench import suite as bench


def _check_quartiles(q):
    assert set(q) >= {"median", "iqr", "n"}
    assert q["median"] > 0 and q["iqr"] >= 0


def test_smoke_bench_writes_every_field(tmp_path):
    out = tmp_path / "bench" / "cpu.json"
    result = bench.main(["--smoke", "--device", "cpu", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["smoke"] is True and written["device"] == "cpu"
    for key in ("device_name", "torch", "threads", "rounds", "load_before", "load_after",
                "command"):
        assert key in written

    rows = written["block_cost"]
    assert {(r["d"], r["batch"], r["pass"]) for r in rows} == {
        (16, b, p) for b in (1, 4) for p in ("fwd", "fwd+bwd")}
    for row in rows:
        assert set(row["time_s"]) == {"midl_fused", "midl_reference", "f2", "linear",
                                      "gemm_floor"}
        for q in row["time_s"].values():
            _check_quartiles(q)
        assert set(row["flops"]) == set(row["time_s"])
        assert all(f > 0 for f in row["flops"].values())
        assert set(row["ratios"]) == {"midl_fused/gemm_floor", "midl_reference/gemm_floor",
                                      "midl_fused/midl_reference", "midl_fused/f2",
                                      "midl_fused/linear"}
        for q in row["ratios"].values():
            _check_quartiles(q)
    # same GEMMs: the floor counts MID-L's FLOPs (forward; backward adds 2 GEMMs per layer)
    fwd = next(r for r in rows if r["pass"] == "fwd")
    assert fwd["flops"]["gemm_floor"] == fwd["flops"]["midl_reference"]

    names = {r["block"] for r in written["baselines"]}
    assert {"midl", "dropout", "switch", "loramoe", "gumbel", "linear"} <= names
    for row in written["baselines"]:
        _check_quartiles(row["time_s"])
        assert set(row["ratios"]) == {"/linear", "/midl"}

    assert set(written["overhead"]) == {"mnist_mlp", "cifar10_cnn"}
    for over in written["overhead"].values():
        assert set(over["time_s"]) == {"midl_train", "plain", "loader"}
        assert set(over["ratios"]) == {"midl_train/plain", "loader_rate/step_rate"}
        for q in [*over["time_s"].values(), *over["ratios"].values()]:
            _check_quartiles(q)
        calls = over["python_calls_per_step"]
        assert set(calls) == {"midl_train", "plain"} and calls["midl_train"] > calls["plain"] > 0
    compiled = written["compile"]
    assert set(compiled["time_s"]) == {"eager", "compiled"} and compiled["warmup_s"] > 0
    _check_quartiles(compiled["ratios"]["compiled/eager"])
    fast = written["fast_path"]
    steps = fast["steps"]["time_s"]
    assert {"cifar10_cnn/bf16+cl/1", "cifar10_cnn/fp32+cl/1", "mnist_mlp/bf16/1"} <= set(steps)
    assert not any(k.startswith("mnist_mlp/") and "+cl" in k  # a conv-only option
                   for k in steps)
    for name, q in fast["steps"]["speedup_vs_fp32_same_threads"].items():
        _check_quartiles(q)
        assert "/fp32/" not in name
    sweep = fast["sweep"]
    default = "fp32, 1 job x all threads (default)"
    assert sweep["ratio_vs_default"][default]["median"] == 1.0  # a ratio to itself
    assert all(q["median"] > 0 for q in sweep["steps_per_s"].values())
    roof = fast["roofline"]
    assert roof["train_step_flops"] > 0
    for key in ("fp32/1", "fp32+cl/1", "bf16+cl/1"):
        assert roof[key]["achieved_flop_s"] > 0 and roof[key]["fraction_of_peak"] > 0
    assert result["block_cost"] == written["block_cost"]


def test_gemm_floor_shapes_follow_the_layer():
    from midl.blocks import MIDLayer

    assert bench.midl_gemms(MIDLayer(8, rank=3)) == [(8, 8), (8, 3), (3, 8), (8, 8), (8, 8)]


def test_a_smoke_bench_without_out_saves_nothing_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = bench.parse_args(["--smoke", "--device", "cpu"])
    assert args.out is None  # the committed results/bench/<device>.json is never touched
    line = bench.save({"smoke": True}, args.out)
    assert line.startswith("smoke run: nothing saved") and not any(tmp_path.iterdir())
    out = tmp_path / "b.json"
    assert bench.save({"smoke": True}, out) == f"wrote {out}"
    assert json.loads(out.read_text()) == {"smoke": True}


def test_transformer_section_times_both_attention_paths_with_one_flop_count():
    from midl.bench import transformer

    result = transformer.run(smoke=True, rounds=1, min_run_time=1e-4, threads=1)
    steps = result["steps"]
    assert set(steps) == {f"{b}/{v}" for b in transformer.BLOCKS
                          for v in transformer.ATTENTION_DROPOUT}
    for block in transformer.BLOCKS:
        fused, unfused = steps[f"{block}/fused"], steps[f"{block}/attention dropout 0.1"]
        assert fused["flops"] == unfused["flops"] > 0  # same arithmetic, counted once
        _check_quartiles(unfused["ratio_vs_fused"])
        assert "ratio_vs_fused" not in fused
    assert result["matmul_peak_flop_s"] > 0
    memory = result["resident_memory"]
    assert set(memory) == {f"release every {transformer.RELEASE_EVERY} steps", "never released"}
    for arm in memory.values():
        assert arm["step_s"] > 0
        if arm["start_mb"] is not None:  # Linux
            assert arm["growth_mb"] == arm["end_mb"] - arm["start_mb"]
