"""The layout of every paper table: rows (setting, block, noise, regime), columns (what is
measured, the paper's field), and which ``midl.evaluate`` analyses a column needs. The columns'
definitions, units and extractors: :mod:`midl.reporting.columns`.
"""

from __future__ import annotations

from typing import Any

from midl.reporting.columns import (  # noqa: F401  (re-exported: the tables' vocabulary)
    ACC,
    ACC_LAST,
    ACT_FREQ,
    ANR,
    ANR_NOTE,
    ANR_TAU,
    BRIER,
    BRIER_MEAN,
    C10C,
    CIFAR10C_FILE,
    CPU_MEM_NOTE,
    ECE,
    ECE_LAST,
    F1,
    FALL,
    FLOPS,
    FLOPS_COND,
    GPU_NA,
    MEMORIZED,
    NOISE_NOTE,
    SMI,
    SMI_ABOVE,
    SMI_FLOOR,
    Cell,
    Column,
    Extractor,
    Row,
    TableSpec,
    latency,
    memory,
    noise_note,
    test_metric,
)


def _pairs(setting: str, paper_models: dict[str, str], extra: dict[str, Any] | None = None,
           blocks: tuple[str, ...] = ("dropout", "midl"), labels: dict[str, str] | None = None
           ) -> tuple[Row, ...]:
    rows = []
    for block in blocks:
        match = ({"model": paper_models[block], **(extra or {})}
                 if block in paper_models else None)
        label = (labels or {}).get(block, block)
        rows.append(Row(label, setting, block, match))
    return tuple(rows)


# Tables 7, 10 and 11 (Appendix D): the paper's "cnn_mlp" row is the CNN with a Dropout block
_CNN_MLP_PAIR = _pairs("cifar10_cnn", {"dropout": "cnn_mlp", "midl": "midl"},
                       labels={"dropout": "cnn_mlp (Dropout block)"})

_ROBUST_COLUMNS = (
    Column("clean", "Clean acc", "%", "clean", ACC),
    Column("noise20", "20% noise acc", "%", "noise20", ACC, noise=0.2),
    Column("noise40", "40% noise acc", "%", "noise40", ACC, noise=0.4),
    Column("noise60", "60% noise acc", "%", None, ACC, noise=0.6),
    Column("noise20_last", "20% noise acc, last epoch", "%", "noise20", ACC_LAST, noise=0.2),
    Column("noise40_last", "40% noise acc, last epoch", "%", "noise40", ACC_LAST, noise=0.4),
    Column("noise60_last", "60% noise acc, last epoch", "%", None, ACC_LAST, noise=0.6),
    Column("cifar10c", "CIFAR-10-C acc (sev. 3)", "%", "cifar10c", C10C),
)

# the columns most tables share (accuracy, both ANR readings, both FLOPs counts)
_ACC = Column("acc", "Accuracy", "%", "accuracy", ACC)
_F1 = Column("f1", "F1", "%", "f1", F1)
_ANR_COLUMNS = (Column("anr", "ANR (nonzero)", "%", "anr", ANR),
                Column("anr_tau", "ANR (alpha>0.5)", "%", "anr", ANR_TAU))
_FLOPS_COLUMNS = (Column("flops", "FLOPs dense (M)", "M", "flops_m", FLOPS, digits=2),
                  Column("flops_cond", "FLOPs conditional (M)", "M", "flops_m", FLOPS_COND,
                         digits=2))

_ABLATION_BLOCKS = ("f1_only", "f2_only", "fixed_alpha", "random_topk", "gumbel", "midl")
# not in the paper: MID-L with Appendix A's gradient estimator (configs/block/midl_masked.yaml)
MASKED_ROW = Row("midl (masked)", "cifar10_cnn", "midl_masked", None,
                 note="not in the paper: MID-L with Appendix A's gradient estimator "
                      "(estimator: masked; the midl row is the straight-through default)")
_SMI_COLUMNS = (
    Column("smi", "SMI (nats)", "nats", "smi_nats", SMI, digits=3),
    Column("smi_floor", "SMI, permuted labels (nats)", "nats", None, SMI_FLOOR, digits=3),
    Column("smi_above", "SMI above floor (nats)", "nats", None, SMI_ABOVE, digits=3),
)
_SMI_NOTE = ("SMI floor: the same estimate with the labels randomly permuted (the k-NN "
             "estimator's positive bias, mean over permutations); SMI above floor = SMI - "
             "floor is the dependence beyond the bias.")

_T8_DATA = (  # (paper dataset, setting, paper baseline model)
    ("mnist", "mnist_mlp", "mlp_dropout"),
    ("cifar10", "cifar10_cnn", "cnn_mlp"),
    ("cifar100", "cifar100_cnn", "cnn_mlp"),
    ("cifar10c", "cifar10_cnn", "cnn_mlp"),
    ("svhn", "svhn_cnn", "cnn_mlp"),
    ("adult", "adult_mlp", "mlp_dropout"),
    ("imdb", "imdb_lstm", "lstm_dropout"),
)


def _table8_rows() -> tuple[Row, ...]:
    rows = []
    for dataset, setting, baseline in _T8_DATA:
        for block, model in (("dropout", baseline), ("midl", "midl")):
            cells: dict[str, Cell] = {}
            note = ""
            if dataset == "cifar10c":
                cells = {"acc": Cell(C10C), "f1": Cell(None, na="n/a (not computed)"),
                         "robust": Cell(C10C, noise=0.2),
                         "robust_last": Cell(None, na="n/a (best checkpoint only)")}
                note = ("CIFAR-10-C row: the CIFAR-10 runs evaluated on CIFAR-10-C (accuracy: "
                        "clean training; robust: 20% noise training); ANR, FLOPs, latency and "
                        "memory are the CIFAR-10 model's")
            rows.append(Row(f"{dataset} / {model}", setting, block,
                            {"dataset": dataset, "model": model}, cells=cells, note=note))
    return tuple(rows)


_REGIME_NOTE = ("Regimes (configs/regime/): `standard` is the tables' regime (augmentation, the "
                "scale's epochs, one noise draw for every seed); `memorize` trains without "
                "augmentation for a fixed long time with the noise draw varying with the seed, "
                "where a network can fit the flipped labels; `converge` trains the 20-per-class "
                "subsets 300 epochs with a 200-image validation slice. Best = the checkpoint of "
                "best clean validation accuracy (`test`), final = the last epoch's weights "
                "(`test_last`); memorized = the final weights' training accuracy on the flipped "
                "labels, against their noisy label; fall = the best clean validation accuracy "
                "minus the final weights' test accuracy (points; the paper's signature of "
                "memorization is a large fall; none where validation labels are noisy). "
                "`tuned`: each arm's winner of an equal-budget search over its knob (Dropout p, "
                "MID-L top_k) and the learning rate on noisy validation labels (CIFAR-10 in the "
                "standard regime, MNIST in the memorize regime; midl/tuning.py); its best "
                "checkpoint is chosen on noisy validation labels too.")
_ONLY_40 = Cell(None, na="not run (40% only)")
_NO_FALL_ON_NOISY_VALIDATION = Cell(None, na="n/a (noisy validation labels)")
"""The tuned rows' fall cell: their checkpoints are chosen on noisy validation labels, so no
best clean validation accuracy exists to fall from."""


TUNED_REGIMES = {"cifar10_cnn": "standard", "mnist_mlp": "memorize"}
"""The regime of each equal-budget search setting (``configs/tuning/search_<setting>.yaml``)."""


def _regime_rows(data: str, setting: str, paper_models: dict[str, str] | None
                 ) -> tuple[Row, ...]:
    """The label-noise rows of one setting in the regimes table: Dropout and MID-L in the
    standard and memorize regimes (20 and 40% noise), the parameter-matched Dropout block in
    both (40% only), each arm's equal-budget tuning winner (40% only, in the search's regime:
    :data:`TUNED_REGIMES`) and the paper's other MID-L formulations (memorize, 40%, MNIST
    only)."""
    only_40 = {key: _ONLY_40 for key in ("noise20", "noise20_last", "memorized20", "fall20",
                                          "ece20_last")}
    rows = []
    for regime in ("standard", "memorize"):
        for block in ("dropout", "midl", "dropout_wide"):
            match = ({"model": paper_models[block]}
                     if paper_models and block in paper_models else None)
            rows.append(Row(f"{data} / {regime} / {block}", setting, block, match,
                            cells=only_40 if block == "dropout_wide" else {},
                            regime=regime))
    tuned_cells = {**only_40, "fall40": _NO_FALL_ON_NOISY_VALIDATION}
    for block in ("dropout", "midl"):
        rows.append(Row(f"{data} / tuned / {block}", setting, block, None, cells=tuned_cells,
                        regime=TUNED_REGIMES[setting], tuning=f"{setting}_{block}",
                        note="the winner of its equal-budget search (configs/tuning/)"))
    if data == "mnist":
        for block, note in (("midl_relu", "Section 4.3's phi = ReLU after the mix"),
                            ("midl_masked", "Appendix A's masked gradient estimator")):
            rows.append(Row(f"{data} / memorize / {block}", setting, block, None,
                            cells=only_40, regime="memorize", note=note))
    return tuple(rows)


def _lowdata_rows() -> tuple[Row, ...]:
    rows = []
    for data in ("cifar10", "mnist"):
        for model, regimes in (("mlp", ("standard", "converge")), ("cnn", ("converge",))):
            for regime in regimes:
                for block, paper_model in (("dropout", "mlp_dropout"), ("midl", "midl")):
                    match = ({"dataset": data, "model": paper_model} if model == "mlp"
                             else None)  # the paper's Table 2 is of the MLP
                    rows.append(Row(f"{data} {model} / {regime} / {block}",
                                    f"lowdata_{data}_{model}", block, match, regime=regime))
    return tuple(rows)


REGIME_TABLES: dict[str, TableSpec] = {
    "regimes_noise": TableSpec(
        "regimes_noise", "Regimes: label-noise robustness where a network can memorize",
        "table3_corruption_and_label_noise",
        rows=(*_regime_rows("mnist", "mnist_mlp", None),
              *_regime_rows("cifar10", "cifar10_cnn", {"dropout": "mlp_dropout",
                                                        "midl": "midl"})),
        columns=(Column("noise20", "20% noise acc, best", "%", "noise20", ACC, noise=0.2),
                 Column("noise20_last", "20% noise acc, final", "%", "noise20", ACC_LAST,
                        noise=0.2),
                 Column("noise40", "40% noise acc, best", "%", "noise40", ACC, noise=0.4),
                 Column("noise40_last", "40% noise acc, final", "%", "noise40", ACC_LAST,
                        noise=0.4),
                 Column("memorized20", "Memorized at 20%", "%", None, MEMORIZED, noise=0.2),
                 Column("memorized40", "Memorized at 40%", "%", None, MEMORIZED, noise=0.4),
                 Column("fall20", "Fall at 20%", "pts", None, FALL, noise=0.2),
                 Column("fall40", "Fall at 40%", "pts", None, FALL, noise=0.4),
                 Column("ece20_last", "ECE at 20%, final", "%", None, ECE_LAST, noise=0.2),
                 Column("ece40_last", "ECE at 40%, final", "%", None, ECE_LAST, noise=0.4)),
        notes=(_REGIME_NOTE,
               "Paper numbers: Table 3's (CIFAR-10 only; the paper has no MNIST label-noise "
               "table and does not say which checkpoint or regime it used).",
               "dropout_wide: Linear(d, 2d) -> ReLU -> Dropout -> Linear(2d, d), MID-L's "
               "parameter count (262,912 vs 263,296 at d = 256).",
               "Memorized: runs recorded before the memorization metric existed (the "
               "standard-regime CIFAR-10 runs of Table 3) have none.")),
    "regimes_lowdata": TableSpec(
        "regimes_lowdata", "Regimes: low data (20 images per class) trained to convergence",
        "table2_overfitting_stress",
        rows=_lowdata_rows(),
        columns=(Column("acc", "Accuracy, best", "%", "accuracy", ACC),
                 Column("acc_last", "Accuracy, final", "%", "accuracy", ACC_LAST),
                 Column("anr", "ANR (nonzero)", "%", "anr", ANR)),
        notes=(_REGIME_NOTE,
               "Paper numbers: Table 2's, on the MLP rows only (the paper's words: MLP).")),
}
"""The regimes report's tables (``make regimes``): the claims tested in the regimes a careful
reader would propose, beside the standard one."""

TABLES: dict[str, TableSpec] = {
    "table2": TableSpec(
        "table2", "Table 2: overfitting stress (low data), test accuracy and ANR",
        "table2_overfitting_stress",
        rows=(
            Row("cifar10 (20/class) / mlp_dropout", "lowdata_cifar10_mlp", "dropout",
                {"dataset": "cifar10", "model": "mlp_dropout"}),
            Row("cifar10 (20/class) / midl", "lowdata_cifar10_mlp", "midl",
                {"dataset": "cifar10", "model": "midl"}),
            Row("mnist (20/class) / mlp_dropout", "lowdata_mnist_mlp", "dropout",
                {"dataset": "mnist", "model": "mlp_dropout"}),
            Row("mnist (20/class) / midl", "lowdata_mnist_mlp", "midl",
                {"dataset": "mnist", "model": "midl"}),
            Row("adult (1,000) / mlp_dropout", "lowdata_adult_mlp", "dropout", None,
                note="Section 5.4 trains on 1,000 Adult records but Table 2 has no Adult row"),
            Row("adult (1,000) / midl", "lowdata_adult_mlp", "midl", None,
                note="Section 5.4 trains on 1,000 Adult records but Table 2 has no Adult row"),
        ),
        columns=(_ACC, *_ANR_COLUMNS),
        notes=(ANR_NOTE,)),
    "table3": TableSpec(
        "table3", "Table 3: robustness on CIFAR-10 (label noise, CIFAR-10-C)",
        "table3_corruption_and_label_noise",
        rows=_pairs("cifar10_cnn", {"dropout": "mlp_dropout", "midl": "midl"},
                    labels={"dropout": "mlp_dropout (CNN + MLP + Dropout)"}),
        columns=_ROBUST_COLUMNS,
        notes=("The paper's 'MLP + Dropout' is our CNN + MLP backbone with the Dropout block "
               "(an MLP alone cannot reach the paper's 85% on CIFAR-10).",
               "60% noise: named in Section 5.4, absent from Table 3.", NOISE_NOTE)),
    "table4": TableSpec(
        "table4", "Table 4: ablation on CIFAR-10 (top-k 50%)", "table4_ablation_cifar10",
        rows=(*(Row(b, "cifar10_cnn", b, {"variant": b}) for b in _ABLATION_BLOCKS),
              MASKED_ROW),
        columns=(_ACC, *_ANR_COLUMNS),
        notes=(ANR_NOTE,)),
    "table5": TableSpec(
        "table5", "Table 5: efficiency on CIFAR-10 at batch 64",
        "table5_efficiency_cifar10_batch64",
        rows=tuple(Row(m, "cifar10_cnn", b, {"model": m}) for b, m in
                   (("dropout", "mlp_dropout"), ("concrete_dropout", "concrete_dropout"),
                    ("switch", "switch"), ("midl", "midl"))),
        columns=(*_FLOPS_COLUMNS,
                 Column("latency_cpu", "CPU latency b=64 (ms)", "ms", "latency_cpu_ms",
                        latency(64), digits=2),
                 Column("latency_gpu", "GPU latency b=64 (ms)", "ms", "latency_gpu_ms",
                        latency(64, "gpu"), na=GPU_NA, digits=2),
                 Column("memory", "Peak memory b=64 (MB)", "MB", "memory_mb", memory(64))),
        notes=("FLOPs per sample; the paper's count for MID-L (below Dropout's) is only "
               "reachable by a count that skips masked work, hence both of ours.",
               CPU_MEM_NOTE)),
    "table6": TableSpec(
        "table6", "Table 6: sliced mutual information on CIFAR-10", "table6_smi_cifar10",
        rows=tuple(Row(b, "cifar10_cnn", b, {"method": b})
                   for b in ("random_topk", "dropout", "midl")),
        columns=(*_SMI_COLUMNS,
                 Column("act_freq", "Activation frequency", "%", "activation_freq", ACT_FREQ)),
        notes=("SMI of the last-layer embedding (block output) with the labels, k-NN MI "
               "(k = 3) along random directions (midl.metrics.smi).", _SMI_NOTE)),
    "table7": TableSpec(
        "table7", "Table 7: calibration on CIFAR-10", "table7_calibration_cifar10",
        rows=_CNN_MLP_PAIR,
        columns=(Column("ece", "ECE (15 bins)", "%", "ece", ECE),
                 Column("brier", "Brier score (sum over classes)", "", None, BRIER, digits=3),
                 Column("brier_mean", "Brier score (mean over classes)", "", "brier",
                        BRIER_MEAN, digits=4)),
        notes=("Brier score: `brier` is the mean over samples of sum_c (p_c - y_c)^2 (range "
               "0-2), `brier_mean` the same divided by the number of classes C. A model of "
               "accuracy a has sum >= 0.5 (1 - a): the paper's 0.072-0.084 at about 83% "
               "accuracy is below that bound (0.085) but not below the mean's (0.0085), so the "
               "paper's numbers are compared with `brier_mean`.",)),
    "table8": TableSpec(
        "table8", "Table 8: benchmark over seven datasets", "table8_benchmark",
        rows=_table8_rows(),
        columns=(_ACC, _F1, *_ANR_COLUMNS, *_FLOPS_COLUMNS,
                 Column("latency_gpu", "GPU latency b=1 (ms)", "ms", "latency_ms",
                        latency(1, "gpu"), na=GPU_NA, digits=2),
                 Column("latency_cpu", "CPU latency b=1 (ms)", "ms", None, latency(1),
                        digits=2),
                 Column("memory", "Peak memory b=1 (MB)", "MB", "memory_mb", memory(1)),
                 Column("robust", "Robust acc (20% noise)", "%", "robust_accuracy", ACC,
                        noise=0.2),
                 Column("robust_last", "Robust acc (20% noise), last epoch", "%",
                        "robust_accuracy", ACC_LAST, noise=0.2)),
        notes=("Latency: the paper's Table 8 latency equals Table 10's GPU latency at batch 1, "
               "so it is compared with a GPU measurement only; our CPU latency has no paper "
               "counterpart in this table.", CPU_MEM_NOTE, ANR_NOTE,
               "F1: macro over classes, except Adult: F1 of the positive class >50K.",
               noise_note("The robust column tests", "column"))),
    "table9": TableSpec(
        "table9", "Table 9: extended ablation on CIFAR-10", "table9_extended_ablation_cifar10",
        rows=(*(Row(b, "cifar10_cnn", b, {"variant": b}) for b in _ABLATION_BLOCKS),
              MASKED_ROW),
        columns=(_ACC, *_ANR_COLUMNS,
                 Column("smi", "SMI (nats)", "nats", "smi", SMI, digits=3),
                 *_SMI_COLUMNS[1:]),
        notes=("The paper prints Table 9's SMI without units (0.18-0.46) while Table 6 gives "
               "0.02-0.05 nats for the same model and data; ours is in nats.", _SMI_NOTE,
               ANR_NOTE)),
    "table10": TableSpec(
        "table10", "Table 10: wall-clock latency and memory on CIFAR-10 at batch 1",
        "table10_wallclock_cifar10_batch1",
        rows=_CNN_MLP_PAIR,
        columns=(Column("latency_gpu", "GPU latency b=1 (ms)", "ms", "latency_gpu_ms",
                        latency(1, "gpu"), na=GPU_NA, digits=2),
                 Column("latency_cpu", "CPU latency b=1 (ms)", "ms", "latency_cpu_ms",
                        latency(1), digits=2),
                 Column("memory", "Peak memory b=1 (MB)", "MB", "peak_memory_mb", memory(1))),
        notes=("The paper's CPU is an Intel i9 and its GPU an RTX 3090; ours is the machine "
               "in the header.", CPU_MEM_NOTE)),
    "table11": TableSpec(
        "table11", "Table 11: robustness on CIFAR-10 (appendix)", "table11_robustness_cifar10",
        rows=_CNN_MLP_PAIR,
        columns=_ROBUST_COLUMNS,
        notes=("Same runs as Table 3; the paper's Tables 3 and 11 print different numbers for "
               "the same experiment.", NOISE_NOTE)),
    "baselines": TableSpec(
        "baselines", "Extra: every baseline of Section 5.3 on MNIST and CIFAR-10",
        "table8_benchmark",
        rows=tuple(Row(f"{data} / {b}", setting, b,
                       {"dataset": data, "model": {"dropout": base, "midl": "midl"}[b]}
                       if b in ("dropout", "midl") else None)
                   for data, setting, base in (("mnist", "mnist_mlp", "mlp_dropout"),
                                               ("cifar10", "cifar10_cnn", "cnn_mlp"))
                   for b in ("dropout", "concrete_dropout", "dynamic_relu", "switch", "loramoe",
                             "midl", "f1_only", "f2_only", "fixed_alpha", "random_topk",
                             "gumbel")),
        columns=(_ACC, _F1, *_ANR_COLUMNS, *_FLOPS_COLUMNS),
        notes=("Paper numbers: Table 8's, for the two models it reports; the paper lists "
               "Concrete Dropout, Dynamic ReLU, Switch and LoRAMoE (Section 5.3) but reports "
               "accuracy for none of them.",)),
    "transformer": TableSpec(
        "transformer", "Extra: MID-L in a Transformer's feed-forward slot (IMDB)", None,
        rows=tuple(Row(b, "imdb_transformer", b, None)
                   for b in ("ffn", "midl_ffn", "switch", "loramoe")),
        columns=(Column("acc", "Accuracy", "%", None, ACC),
                 Column("f1", "F1", "%", None, F1),
                 Column("ece", "ECE (15 bins)", "%", None, ECE),
                 Column("anr", "ANR (nonzero)", "%", None, ANR),
                 Column("flops", "FLOPs dense (M)", "M", None, FLOPS, digits=2),
                 Column("flops_cond", "FLOPs conditional (M)", "M", None, FLOPS_COND,
                        digits=2),
                 Column("latency_cpu", "CPU latency b=1 (ms)", "ms", None, latency(1),
                        digits=2)),
        notes=("The paper's open question (Limitations and Future Work (i): 'extending MID-L "
               "to Transformer architectures'); it has no numbers here. A 2-layer pre-LN "
               "Transformer (d = 128, 4 heads, 256 tokens; configs/model/transformer.yaml) "
               "with the block in every layer's feed-forward slot: ffn = Linear(d, 4d) -> GELU "
               "-> Linear(4d, d) with dropout; midl_ffn = MID-L whose F2 is that FFN; switch "
               "and loramoe in the slot they were designed for.", CPU_MEM_NOTE)),
}
"""Every table the report renders from runs (Table 12 and the figures are special cases in
:mod:`midl.report`)."""
TABLES.update(REGIME_TABLES)

# analyses: eval name -> midl.evaluate analyses
ANALYSES = {"efficiency": ["flops", "latency", "memory"], "smi": ["smi"], "tsne": ["tsne"]}

FIGURES = {
    # figure -> [(panel label, setting, eval name, file name written by midl.evaluate)]
    "figure3": [("MNIST", "mnist_mlp", "smi", "figure3_mi_vs_frequency_smi.png"),
                ("CIFAR-10", "cifar10_cnn", "smi", "figure3_mi_vs_frequency_smi.png")],
    "figure4": [("MNIST", "mnist_mlp", "tsne", "figure4_tsne_tsne.png"),
                ("CIFAR-10", "cifar10_cnn", "tsne", "figure4_tsne_tsne.png"),
                ("SVHN", "svhn_cnn", "tsne", "figure4_tsne_tsne.png")],
}


def table_names() -> list[str]:
    """Every name ``python -m midl.report`` accepts."""
    return sorted([*TABLES, "table12", "figures"], key=lambda n: (len(n), n))
