"""Equal-budget tuning (midl/tuning.py, configs/tuning/, regimes_search_* / regimes_tuned): the
same budget for both arms, selection on noisy validation accuracy only, a complete search
required, winners that compose to what they say, and their place in the regimes table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from conftest import CONFIG_DIR, compose_train
from midl import tuning
from midl.reporting.render import build_table, markdown
from midl.reporting.runs import Run, RunKey, run_key, table_overrides
from midl.reporting.tables import TABLES, TUNED_REGIMES


def _run(setting: str, block: str, value: float, lr: float, score: float,
         regime: str = "memorize", seed: int = 100, complete: bool = True) -> Run:
    key = RunKey(setting, block, 0.4, seed, "cpu", regime, f"search_{setting}")
    record = {"config": {"block": {tuning.KNOBS[block]: value}, "optimizer": {"lr": lr}},
              "best_val": {"val/acc": score}}
    return Run(Path(f"/r/{block}{value}{lr}.json"), key,
               "complete" if complete else "incomplete", record)


def _search(setting: str, regime: str, scores: dict[str, dict[tuple[float, float], float]]
            ) -> list[Run]:
    return [_run(setting, block, v, lr, s, regime) for block, grid in scores.items()
            for (v, lr), s in grid.items()]


def _full(block: str, best: tuple[float, float], score: float = 0.9,
          others: float = 0.5) -> dict[tuple[float, float], float]:
    grid = tuning.search_grid(block)
    return {c: (score if c == best else others) for c in grid.configurations()}


def test_both_arms_get_the_same_budget_around_the_papers_values():
    grids = {b: tuning.search_grid(b) for b in tuning.KNOBS}
    assert {len(g.configurations()) for g in grids.values()} == {6}
    assert grids["dropout"].lrs == grids["midl"].lrs == (3e-4, 1e-3)
    for block, grid in grids.items():
        default = yaml.safe_load((CONFIG_DIR / "block" / f"{block}.yaml").read_text())
        assert default[grid.knob] in grid.values  # the paper's value competes
        assert grid.noise == 0.4 and grid.seed == 100
        assert grid.searches == ("search_cifar10_cnn", "search_mnist_mlp")
    with pytest.raises(tuning.TuningError, match="no tuning knob for block 'switch'"):
        tuning.search_grid("switch")


@pytest.mark.parametrize("setting", sorted(TUNED_REGIMES))
def test_a_search_trains_in_its_regime_with_noisy_validation(setting, tmp_path):
    cfg = compose_train([f"tuning=search_{setting}", "+scale=cpu", "block=dropout",
                         "block.p=0.1", "seed=100", "data.label_noise=0.4"], tmp_path)
    assert cfg.regime.name == TUNED_REGIMES[setting]
    assert cfg.data.noisy_val is True and cfg.block.p == 0.1
    assert cfg.task_name == f"grid_{setting}"


def test_tuning_none_changes_no_hash(tmp_path):
    from midl.runs.provenance import config_hash

    base = ["+experiment/setting=mnist_mlp", "+scale=cpu", "seed=1"]
    assert (config_hash(compose_train(base, tmp_path / "a"))
            == config_hash(compose_train([*base, "tuning=none"], tmp_path / "b")))


def test_the_winner_is_the_best_noisy_val_acc_and_ties_take_the_smaller_lr_then_knob():
    grid = tuning.search_grid("midl")
    runs = _search("mnist_mlp", "memorize", {"midl": _full("midl", (0.75, 1e-3))})
    found = tuning.candidates(runs, "cpu", grid)["mnist_mlp"]
    best = tuning.winner(found, grid, "mnist_mlp")
    assert (best.value, best.lr) == (0.75, 1e-3)
    tied = tuning.candidates(_search("mnist_mlp", "memorize", {"midl": {
        c: 0.8 for c in grid.configurations()}}), "cpu", grid)["mnist_mlp"]
    best = tuning.winner(tied, grid, "mnist_mlp")
    assert (best.value, best.lr) == (0.25, 3e-4)


def test_an_incomplete_search_is_refused_naming_what_is_missing():
    grid = tuning.search_grid("dropout")
    runs = _search("cifar10_cnn", "standard", {"dropout": _full("dropout", (0.3, 1e-3))})
    runs[0] = _run("cifar10_cnn", "dropout", runs[0].record["config"]["block"]["p"],
                   runs[0].record["config"]["optimizer"]["lr"], 0.99, "standard",
                   complete=False)  # unfinished: does not count
    runs.append(_run("cifar10_cnn", "dropout", 0.1, 3e-4, 0.99, "standard", seed=0))  # not
    found = tuning.candidates(runs, "cpu", grid)["cifar10_cnn"]               # the search seed
    assert len(found) == 5
    with pytest.raises(tuning.TuningError, match=r"cifar10_cnn / dropout: the search lacks "
                                                 r"p=\S+ lr=\S+ \(5 of 6"):
        tuning.winner(found, grid, "cifar10_cnn")


def test_winner_files_compose_to_the_chosen_configuration(tmp_path):
    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    for name in ("cifar10_cnn_dropout", "cifar10_cnn_midl", "mnist_mlp_dropout",
                 "mnist_mlp_midl"):
        (configs / "tuning" / f"{name}.yaml").unlink(missing_ok=True)
    runs = [*_search("cifar10_cnn", "standard", {"dropout": _full("dropout", (0.1, 3e-4)),
                                                 "midl": _full("midl", (0.25, 1e-3))}),
            *_search("mnist_mlp", "memorize", {"dropout": _full("dropout", (0.5, 1e-3)),
                                               "midl": _full("midl", (0.75, 3e-4))})]
    written = tuning.select(runs, "cpu", configs / "tuning", command="test")
    assert sorted(p.name for p in written) == ["cifar10_cnn_dropout.yaml",
                                               "cifar10_cnn_midl.yaml",
                                               "mnist_mlp_dropout.yaml", "mnist_mlp_midl.yaml"]
    assert set(written.values()) == {"written"}
    assert "p=0.1 lr=0.0003: 90.00  <- chosen" in min(written).read_text()
    sweep = yaml.safe_load((configs / "experiment" / "regimes_tuned.yaml").read_text())
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(configs)):
        for name in sweep["hydra"]["sweeper"]["params"]["tuning"].split(","):
            cfg = compose("train", overrides=[f"tuning={name}", "+scale=cpu", "seed=2",
                                              "data.label_noise=0.4"],
                          return_hydra_config=True)
            choices = cfg.hydra.runtime.choices
            setting, block = name.rsplit("_", 1)
            assert (choices["experiment/setting"], choices.block) == (setting, block)
            assert cfg.regime.name == TUNED_REGIMES[setting] and cfg.data.noisy_val is True
            key = run_key({"tuning": name, "seed": "2", "data.label_noise": "0.4"},
                          dict(choices))
            assert key == RunKey(setting, block, 0.4, 2, "cpu", TUNED_REGIMES[setting], name)
            assert table_overrides(key) == ["+scale=cpu", "data.label_noise=0.4",
                                            f"tuning={name}", "seed=2"]
        mnist_midl = compose("train", overrides=["tuning=mnist_mlp_midl", "+scale=cpu"])
        assert (mnist_midl.block.top_k, mnist_midl.optimizer.lr) == (0.75, 3e-4)
    GlobalHydra.instance().clear()
    # the same runs again: every winner kept as it is (date and scores untouched)
    before = {p: p.read_text() for p in written}
    again = tuning.select(runs, "cpu", configs / "tuning", command="other")
    assert again == dict.fromkeys(written, "kept")
    assert all(p.read_text() == text for p, text in before.items())
    assert len(tuning.select(runs, "cpu", configs / "tuning", force=True)) == 4
    # the searches finish one setting at a time: MNIST's winners first, CIFAR-10's later
    mnist_only = [r for r in runs if r.key.setting == "mnist_mlp"]  # CIFAR-10 not searched
    for name in ("cifar10_cnn_dropout", "cifar10_cnn_midl", "mnist_mlp_dropout",
                 "mnist_mlp_midl"):
        (configs / "tuning" / f"{name}.yaml").unlink()
    first = tuning.select(mnist_only, "cpu", configs / "tuning")
    assert sorted(p.name for p in first) == ["mnist_mlp_dropout.yaml", "mnist_mlp_midl.yaml"]
    later = tuning.select(runs, "cpu", configs / "tuning")
    assert {p.name: what for p, what in later.items()} == {
        "cifar10_cnn_dropout.yaml": "written", "cifar10_cnn_midl.yaml": "written",
        "mnist_mlp_dropout.yaml": "kept", "mnist_mlp_midl.yaml": "kept"}
    # a winner file the runs no longer choose is never kept or replaced silently
    changed = _search("mnist_mlp", "memorize", {"dropout": _full("dropout", (0.1, 3e-4)),
                                                "midl": _full("midl", (0.75, 3e-4))})
    with pytest.raises(tuning.TuningError, match=r"chose p=0.5 lr=0.001 .*now choose p=0.1 "
                                                 r"lr=0.0003.*--force"):
        tuning.select(changed, "cpu", configs / "tuning")
    assert tuning.select(changed, "cpu", configs / "tuning", force=True) == {
        configs / "tuning" / "mnist_mlp_dropout.yaml": "written",
        configs / "tuning" / "mnist_mlp_midl.yaml": "written"}
    with pytest.raises(tuning.TuningError, match="no complete search run at scale smoke"):
        tuning.select(runs, "smoke", configs / "tuning")


def test_the_regimes_table_has_a_tuned_row_per_arm_and_winner():
    sweep = yaml.safe_load((CONFIG_DIR / "experiment" / "regimes_tuned.yaml").read_text())
    names = set(sweep["hydra"]["sweeper"]["params"]["tuning"].split(","))
    rows = [r for r in TABLES["regimes_noise"].rows if r.tuning != "none"]
    assert {r.tuning for r in rows} == names
    for row in rows:
        assert row.tuning == f"{row.setting}_{row.block}"
        assert row.regime == TUNED_REGIMES[row.setting]
    # no fall without clean validation labels: the cell says so rather than "missing"
    text = markdown(build_table(TABLES["regimes_noise"], [], [0], "cpu", {}), [])
    for row in rows:
        line = next(line for line in text.splitlines() if line.startswith(f"| {row.label} |"))
        cells = [cell.strip() for cell in line.split("|")[2:-1]]
        labels = [column.key for column in TABLES["regimes_noise"].columns]
        assert cells[labels.index("fall40")].startswith("n/a (noisy validation labels)")
        assert cells[labels.index("noise40")].startswith("missing (n=0)")
