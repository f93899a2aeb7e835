"""The regimes of issue "claims where MID-L's mechanism can act": the `regime` config group,
the memorized-fraction metric, the parameter-matched Dropout block, MID-L's phi option and
the memorize pilot rule."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from conftest import CONFIG_DIR, REPO, compose_train, require_real
from midl.blocks import DropoutBlock, MIDLayer, WideDropoutBlock
from midl.metrics.memorization import memorization

SETTINGS = sorted(p.stem for p in (CONFIG_DIR / "experiment" / "setting").glob("*.yaml"))


def _hash(overrides, tmp_path):
    from midl.runs.provenance import config_hash

    return config_hash(compose_train(overrides, tmp_path / "run"))


@pytest.mark.parametrize("setting", SETTINGS)
def test_memorize_regime_composes_for_every_setting(setting, tmp_path):
    base = [f"+experiment/setting={setting}", "+scale=cpu", "data.label_noise=0.4", "seed=3"]
    standard = compose_train(base, tmp_path / "a")
    memorize = compose_train([*base, "regime=memorize"], tmp_path / "b")
    assert memorize.regime.name == "memorize" and standard.regime.name == "standard"
    assert memorize.data.augment is False
    assert memorize.data.noise_seed == 3 and standard.data.noise_seed == 0
    assert "early_stopping" not in memorize.callbacks
    assert memorize.test_ckpt == "best"   # best checkpoint and, first, the final weights
    assert _hash([*base, "regime=memorize"], tmp_path) != _hash(base, tmp_path)


def test_memorize_epochs_and_precision_reach_their_settings(tmp_path):
    mnist = compose_train(["+experiment/setting=mnist_mlp", "+scale=cpu", "regime=memorize"],
                          tmp_path / "a")
    cifar = compose_train(["+experiment/setting=cifar10_cnn", "+scale=cpu", "regime=memorize"],
                          tmp_path / "b")
    assert mnist.trainer.max_epochs == mnist.regime.epochs.mnist_mlp
    assert cifar.trainer.max_epochs == cifar.regime.epochs.cifar10_cnn
    assert cifar.trainer.precision == "bf16-mixed"
    standard = compose_train(["+experiment/setting=cifar10_cnn", "+scale=cpu"], tmp_path / "c")
    assert standard.trainer.max_epochs == standard.scale.epochs.cifar10_cnn
    assert standard.trainer.precision == "32-true"


def test_converge_regime_trains_the_lowdata_settings_longer_on_a_small_validation_slice(
        tmp_path):
    cfg = compose_train(["+experiment/setting=lowdata_cifar10_cnn", "+scale=cpu",
                         "regime=converge"], tmp_path / "a")
    assert cfg.trainer.max_epochs == 300 and cfg.data.val_size == 200
    assert cfg.data.train_per_class * 10 == cfg.data.val_size


@pytest.mark.parametrize("record", [
    "grid_mnist_mlp/+experiment_setting=mnist_mlp,+scale=cpu,block=dropout,"
    "data.label_noise=0.2,seed=0.json",
    "grid_mnist_mlp/+experiment_setting=mnist_mlp,+scale=cpu,block=midl,"
    "data.label_noise=0.0,seed=3.json",
    "grid_lowdata/+experiment_setting=lowdata_cifar10_mlp,+scale=cpu,block=midl,"
    "data.label_noise=0.0,seed=1.json",
    "grid_cifar10_cnn/+experiment_setting=cifar10_cnn,+scale=cpu,block=midl,"
    "data.label_noise=0.4,seed=2.json",
])
def test_standard_regime_keeps_the_hash_of_committed_records(record, tmp_path):
    path = REPO / "results" / "runs" / "cpu" / record
    if not path.exists():
        pytest.skip(f"committed record {path.name} not in this checkout")
    stored = json.loads(path.read_text())
    overrides = [o for o in stored["job"]["overrides"] if not o.startswith("hydra")]
    assert not any(o.startswith("regime") for o in overrides)
    assert _hash(overrides, tmp_path) == stored["config_hash"]
    assert _hash([*overrides, "regime=standard"], tmp_path) == stored["config_hash"]


def test_memorization_on_hand_made_predictions():
    clean = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    flipped = torch.tensor([True, True, False, False, True, False, False, False])
    noisy = torch.where(flipped, (clean + 1) % 4, clean)
    fits_noise = memorization(noisy, noisy, clean)
    assert fits_noise["memorized"] == 1.0 and fits_noise["flipped_clean_acc"] == 0.0
    assert fits_noise["unflipped_acc"] == 1.0
    assert (fits_noise["flipped"], fits_noise["unflipped"]) == (3, 5)
    fits_clean = memorization(clean, noisy, clean)
    assert fits_clean["memorized"] == 0.0 and fits_clean["flipped_clean_acc"] == 1.0
    # one of the three flipped samples fitted, one kept sample wrong
    mixed = clean.clone()
    mixed[0], mixed[2] = noisy[0], 3
    out = memorization(mixed, noisy, clean)
    assert out["memorized"] == pytest.approx(1 / 3) and out["unflipped_acc"] == 0.8


def test_memorization_rejects_inconsistent_inputs():
    labels = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="one length"):
        memorization(labels, labels, labels[:2])


@pytest.mark.parametrize("dim", [256, 512])
def test_wide_dropout_block_matches_midl_parameters_within_one_percent(dim):
    def count(module):
        return sum(p.numel() for p in module.parameters())

    wide, midl = count(WideDropoutBlock(dim)), count(MIDLayer(dim))
    assert abs(wide - midl) / midl < 0.01
    assert count(DropoutBlock(dim)) < 0.3 * midl   # the paper's baseline is about a quarter
    x = torch.randn(5, 7, dim)
    assert WideDropoutBlock(dim).eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="width=0"):
        WideDropoutBlock(dim, width=0)


def test_midl_activation_applies_phi_after_the_mix():
    torch.manual_seed(0)
    plain, relu = MIDLayer(16, top_k=0.5), MIDLayer(16, top_k=0.5, activation="relu")
    relu.load_state_dict(plain.state_dict())
    x = torch.randn(8, 16)
    plain.eval(), relu.eval()
    assert torch.equal(relu(x), torch.relu(plain(x)))
    assert (plain(x) < 0).any()          # without phi the mix keeps negative values
    with pytest.raises(ValueError, match="activation='tanh'"):
        MIDLayer(16, activation="tanh")


def test_midl_activation_at_its_default_keeps_old_hashes_and_relu_changes_them(tmp_path):
    base = ["+experiment/setting=mnist_mlp", "+scale=cpu", "block=midl"]
    plain = compose_train(base, tmp_path / "a")
    from midl.runs.provenance import config_hash

    without_key = OmegaConf.to_container(plain, resolve=True)
    del without_key["block"]["activation"]
    assert config_hash(plain) == config_hash(without_key)
    assert _hash(["+experiment/setting=mnist_mlp", "+scale=cpu", "block=midl_relu"],
                 tmp_path) != config_hash(plain)


def _pilot_script():
    spec = importlib.util.spec_from_file_location("pilot_epochs",
                                                  REPO / "scripts" / "pilot_epochs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memorize_pilot_rule_takes_the_first_epoch_either_criterion_fires():
    rule = _pilot_script().memorization_epoch
    val = [0.90, 0.95, 0.93, 0.88, 0.84, 0.80]
    assert rule(val, []) == 5                       # 95 -> 84: 11 points below the peak
    assert rule(val, [0.1, 0.5, 0.91]) == 3         # memorized passed 90% first
    assert rule(val[:4], [0.1, 0.2, 0.3, 0.4]) is None


def test_pilot_rule_names_its_best_epoch_in_both_numberings(tmp_path, capsys):
    script = _pilot_script()
    curve = [0.80, 0.85, 0.88, 0.87, 0.87, 0.87]
    # the best (0.88) is the third epoch's; neither of the next two gains 0.5 points on it
    assert script.stopping_epoch(curve, window=2, min_gain=0.5) == 5
    (tmp_path / "csv").mkdir()
    rows = "".join(f"{epoch},{acc}\n" for epoch, acc in enumerate(curve))
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,val/acc\n" + rows)
    assert script.main([str(tmp_path), "--window", "2"]) == 0
    assert "best 0.880 at epoch 3 (counted from 1; the CSV log's epoch 2); epochs chosen: 5" \
        in capsys.readouterr().out


def test_sweep_configs_of_the_regimes_compose():
    GlobalHydra.instance().clear()
    names = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("regimes_*.yaml"))
    assert {"regimes_memorize", "regimes_converge", "regimes_matched",
            "regimes_variants", "regimes_standard"} <= set(names)
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        for name in names:
            cfg = compose("train", overrides=[f"+experiment={name}", "+scale=cpu"],
                          return_hydra_config=True)
            params = cfg.hydra.sweeper.params
            # a tuning choice (configs/tuning/) names its setting itself
            assert ("+experiment/setting" in params or "tuning" in params) \
                and "seed" in params, name


def test_noisy_memorize_run_records_its_memorized_fraction(compose_cfg):
    root = require_real("MNIST/raw")
    from midl.train import train

    cfg = compose_cfg([f"paths.data_dir={root}", "+experiment/setting=mnist_mlp", "+scale=smoke",
                       "regime=memorize", "data.label_noise=0.4", "seed=1", "trainer.max_epochs=2",
                       "callbacks.memorization.every_n_epochs=1"])
    record = train(cfg)
    found = record["memorization"]
    assert found["flipped"] == record["data"]["label_noise"]["flipped"]
    assert record["data"]["label_noise"]["seed"] == 1          # noise_seed follows the seed
    # after two epochs the model fits the kept labels far better than the flipped ones
    assert found["unflipped_acc"] > 0.5 > found["memorized"]
    assert found["memorized"] + found["flipped_clean_acc"] <= 1.0


def test_noisy_val_flips_validation_labels_with_a_draw_of_their_own():
    from midl.data import DigitsDataModule

    def setup(**kwargs):
        dm = DigitsDataModule(label_noise=0.4, noise_seed=3, **kwargs)
        dm.setup("fit")
        return dm

    clean_val, noisy_val = setup(), setup(noisy_val=True)
    assert torch.equal(clean_val.train_set.y, noisy_val.train_set.y)   # training draw unchanged
    assert torch.equal(clean_val.test_set.y, noisy_val.test_set.y)     # test labels stay clean
    changed = noisy_val.val_set.y != clean_val.val_set.y
    assert torch.equal(changed, noisy_val.val_noise_mask)
    assert 0.25 < changed.float().mean() < 0.55                        # about 40% of 144
    assert noisy_val.summary()["label_noise"]["val_flipped"] == int(changed.sum())
    assert "val_flipped" not in clean_val.summary()["label_noise"]
    with pytest.raises(ValueError, match="noisy_val"):
        DigitsDataModule(noisy_val="yes")


def test_regimes_page_arranges_the_audited_claims(tmp_path):
    from midl.claims import load_claims
    from midl.reporting import regimes

    ids = {c.id for c in load_claims()}
    named = {cid for _, families in regimes.LAYOUT.values() for f in families
             for cid in f.claims.values()}
    assert named <= ids                      # every cell is a claim of results/claims.yaml
    claims = {cid: {"id": cid, "estimate": "", "low": "", "high": "", "verdict": "no data"}
              for cid in named}
    claims["t3_noise40@memorize_final_mnist"] = {
        "id": "x", "estimate": "-4.5", "low": "-6.0", "high": "-3.0", "verdict": "opposite"}
    memo = {("mnist", "memorize", "dropout", "memorized40"): "31% (n=5)",
            ("mnist", "memorize", "midl_masked", "memorized40"): "67% (n=5)",
            ("cifar10", "memorize", "midl", "fall40"): "11.6 (n=5)"}
    md, table, points = regimes.build(claims, memo)
    # the winners line sits under the label-noise table that has the tuned columns
    winners = md.index("Tuned winners (configs/tuning/")
    assert md.index("## Label-noise") < winners < md.index("## Low data")
    assert "none chosen yet" in md
    row = next(line for line in md.splitlines() if line.startswith("| 40% noise | MNIST"))
    assert "-4.50 [-6.00, -3.00] opposite" in row.split("|")[6]       # memorize final column
    assert "| Dropout | MID-L | Dropout, MID-L's size | MID-L, phi = ReLU | MID-L, masked " \
        "estimator |" in md
    assert "| MNIST (MLP) | 40% | memorize | 31% (n=5) | – | – | – | 67% (n=5) |" in md
    fall = md[md.index("## Fall"):]
    assert "| CIFAR-10 (CNN) | 40% | memorize | – | 11.6 (n=5) | – | – | – |" in fall
    assert "| MNIST (MLP) | 40% | memorize | – | – | – | – | – |" in fall  # not memorized's
    assert "tuned" not in fall.split("`–`")[0]             # no fall on noisy validation labels
    assert len(points) == len(named) and table.count("\n") == len(named) + 1
    folder = tmp_path / "cpu"
    folder.mkdir()
    (folder / "regimes_noise.csv").write_text(
        "# - Scale: `cpu`\nrow,column,ours_mean,n\n"
        "mnist / memorize / dropout,memorized40,31.4,5\n"
        "mnist / memorize / midl_masked,memorized40,66.86,5\n"
        "cifar10 / memorize / midl,fall40,11.62,5\n"
        "cifar10 / memorize / midl,noise40,69.4,5\n"
        "cifar10 / standard / midl,fall20,,0\n")
    assert regimes.memorization(folder / "regimes_noise.csv") == memo
    tuning = tmp_path / "tuning"
    tuning.mkdir()
    for name, text in (("none", "tuning: none\n"), ("search_mnist_mlp", "data: {}\n"),
                       ("mnist_mlp_midl", "block: {top_k: 0.5}\noptimizer: {lr: 0.0003}\n"),
                       ("mnist_mlp_dropout", "block: {p: 0.1}\noptimizer: {lr: 0.001}\n")):
        (tuning / f"{name}.yaml").write_text(text)
    winners = regimes.tuned_winners(tuning)
    assert winners == ["`mnist_mlp_dropout`: p 0.1, lr 0.001",
                       "`mnist_mlp_midl`: top_k 0.5, lr 0.0003"]
    assert "selection seed): `mnist_mlp_dropout`: p 0.1, lr 0.001; `mnist_mlp_midl`" in \
        regimes.build(claims, memo, winners=winners)[0]
    with pytest.raises(regimes.RegimesError, match="claims.csv not found"):
        regimes.write("cpu", tmp_path)
    (folder / "claims.csv").write_text("# - Scale: `cpu`\nid,estimate,low,high,verdict\n"
                                       "t2_mnist,1,0,2,held\n")
    with pytest.raises(regimes.RegimesError, match="lacks the claims"):
        regimes.write("cpu", tmp_path)


def test_the_regimes_page_lists_every_search_candidate_with_its_test_accuracy_after_the_fact():
    from midl import tuning
    from midl.reporting import regimes
    from midl.reporting.runs import Run, RunKey

    def run(block, value, lr, score, scale="cpu", test=0.9, last=None):
        key = RunKey("mnist_mlp", block, 0.4, 100, scale, "memorize", "search_mnist_mlp")
        record = {"config": {"block": {tuning.KNOBS[block]: value}, "optimizer": {"lr": lr}},
                  "best_val": {"val/acc": score}, "test": {"test/acc": test}}
        if last is not None:
            record["test_last"] = {"test/acc": last}
        return Run(Path(f"/r/{block}{value}{lr}{scale}.json"), key, "complete", record)

    grid = tuning.search_grid("dropout")
    runs = [run("dropout", p, lr, 0.6 if (p, lr) == (0.3, 1e-3) else 0.5, test=0.95, last=0.8)
            for p, lr in sorted(grid.configurations())]
    runs[0] = run("dropout", *sorted(grid.configurations())[0], 0.5, test=0.97, last=0.75)
    runs.append(run("dropout", 0.1, 3e-4, 0.99, scale="quick"))       # another scale: left out
    runs += [run("midl", 0.5, 3e-4, 0.6)]                               # unfinished search
    lines = regimes.search_table(runs, "cpu")
    assert lines[0].startswith("## Equal-budget search: every candidate (selection seed 100, "
                               "40% label noise")
    rows = [line for line in lines if line.startswith("| `")]
    assert len(rows) == 7 and [r.count("(chosen)") for r in rows] == [0, 0, 0, 1, 0, 0, 0]
    assert rows[0] == "| `mnist_mlp` (memorize) | Dropout | p 0.1, lr 0.0003 | 50.00 | 97.00 " \
        "| 75.00 |"
    assert rows[3].startswith("| `mnist_mlp` (memorize) | Dropout | p 0.3, lr 0.001 (chosen) "
                              "| 60.00 | 95.00 | 80.00 |")
    assert rows[6] == "| `mnist_mlp` (memorize) | MID-L | top_k 0.5, lr 0.0003 | 60.00 | 90.00 " \
        "| – |"
    assert regimes.search_table(runs, "paper") == []
    md = regimes.build({}, {}, search=lines)[0]
    assert md.endswith("| – |\n") and md.index("## Fall") < md.index("## Equal-budget search")
