"""The figures say what they show: readable titles, class names, the Spearman correlation,
legends beside the points, MID-L next to Dropout, stand-in data named; tables get pictures."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import midl.figures as figures
import midl.reporting.plots as plots
from midl import report
from midl.reporting.runs import Run, RunKey
from midl.reporting.tables import Column, Row, TableSpec

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved through save_png, as (path, titles, texts, legend labels, legend
    left edge minus the right edge of the axes it belongs to, in pixels)."""
    seen = []
    real = figures.save_png

    def capture(fig, path, dpi=150):
        fig.canvas.draw()
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        legends = [(ax, ax.get_legend()) for ax in fig.axes if ax.get_legend() is not None]
        labels = [t.get_text() for _, lg in legends for t in lg.get_texts()]
        gaps = [lg.get_window_extent().x0 - ax.get_window_extent().x1 for ax, lg in legends]
        suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
        seen.append(SimpleNamespace(path=Path(path), titles=titles, texts=texts, labels=labels,
                                    gaps=gaps, suptitle=suptitle))
        return real(fig, path, dpi)

    monkeypatch.setattr(figures, "save_png", capture)
    monkeypatch.setattr(plots, "save_png", capture)
    return seen


MNIST_MIDL = {"data": {"_target_": "midl.data.MNISTDataModule", "data_dir": "/nowhere"},
              "model": {"_target_": "midl.backbones.MLP"},
              "block": {"_target_": "midl.blocks.MIDLayer"}}


def test_run_titles_name_dataset_backbone_block_and_stand_ins(tmp_path):
    assert figures.run_title(MNIST_MIDL) == "MNIST, MLP + MID-L"
    # a record names its folder relative to a root that exists nowhere: its data summary says
    # it was the stand-in (midl.data.SVHNDataModule.summary), whatever the folders here hold
    (tmp_path / "svhn").mkdir()
    (tmp_path / "svhn" / "FIXTURE.json").write_text("{}")
    svhn = {"data": {"_target_": "midl.data.SVHNDataModule",
                     "data_dir": "<paths.cache_dir>/svhn-fixture"},
            "model": {"_target_": "midl.backbones.CNN"}, "block": {"_target_": "x.Y"}}
    assert figures.run_title(svhn, "SVHN", "dropout") == "SVHN, CNN + MLP + Dropout"
    assert figures.run_title(svhn, "SVHN", "dropout", {"stand_in": {"not_svhn": True}}) == (
        "SVHN stand-in (MNIST digits in the SVHN format, not SVHN), CNN + MLP + Dropout")
    here = {**svhn, "data": {**svhn["data"], "data_dir": str(tmp_path)}}
    assert figures.run_title(here, "SVHN", "dropout") == "SVHN, CNN + MLP + Dropout"
    assert figures.class_names("CIFAR-10")[:3] == ("airplane", "automobile", "bird")
    assert figures.class_names("CIFAR-10", n_classes=100) is None
    assert figures.class_names("CIFAR-100") is None


def test_figure3_shows_its_spearman_correlation(tmp_path, drawn):
    mi = [0.1, 0.2, 0.3, 0.4]
    frequency = [0.4, 0.3, 0.35, 0.1]
    path = figures.plot_smi_vs_frequency(mi, frequency, tmp_path / "f3.png", title="MNIST")
    assert path.read_bytes()[:8] == PNG
    rho = figures.spearman(mi, frequency)
    assert rho == pytest.approx(-0.8)   # ranks (1,2,3,4) vs (4,2,3,1)
    assert drawn[0].titles == ["MNIST\nSpearman ρ(MI, frequency) = -0.800, 4 neurons"]
    figures.plot_smi_vs_frequency(mi, [1.0] * 4, tmp_path / "dense.png")
    assert drawn[1].titles[0].endswith("Spearman ρ = n/a (constant frequency), 4 neurons")
    with pytest.raises(ValueError, match="one MI and one frequency per neuron"):
        figures.plot_smi_vs_frequency(mi, [0.5], tmp_path / "bad.png")


def test_figure4_class_names_legend_beside_points_and_saved_points(tmp_path, drawn):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 6)
    embeddings = rng.normal(size=(60, 8)) + labels[:, None]
    path = figures.plot_tsne(embeddings, labels, tmp_path / "f4.png", n_samples=None,
                             title="CIFAR-10, CNN + MLP + MID-L",
                             class_names=figures.class_names("CIFAR-10"))
    assert path.read_bytes()[:8] == PNG
    shown = drawn[0]
    assert shown.titles == ["CIFAR-10, CNN + MLP + MID-L (n=60)"]
    assert shown.labels == list(figures.CLASS_NAMES["CIFAR-10"])
    assert shown.gaps and all(gap >= 0 for gap in shown.gaps)   # legend right of the points
    saved = np.load(figures.points_path(path))
    assert saved["points"].shape == (60, 2) and list(saved["labels"]) == list(labels)
    figures.plot_tsne_panels([("MID-L", saved["points"], saved["labels"]),
                              ("Dropout", saved["points"], saved["labels"])],
                             tmp_path / "pair.png", "Figure 4")
    assert drawn[1].titles == ["MID-L (n=60)", "Dropout (n=60)"]
    assert drawn[1].suptitle == "Figure 4" and drawn[1].labels[:2] == ["0", "1"]
    assert all(gap >= 0 for gap in drawn[1].gaps)
    long = "SVHN stand-in (MNIST digits in the SVHN format, not SVHN), CNN + MLP + Dropout"
    figures.plot_tsne_panels([(long, saved["points"], saved["labels"])] * 2,
                             tmp_path / "long.png")
    lines = drawn[2].titles[0].split("\n")
    assert " ".join(lines) == f"{long} (n=60)" and len(lines) == 2
    assert max(map(len, lines)) <= figures.PANEL_TITLE_WIDTH


def _run(root: Path, setting: str, block: str, dataset: str, config: dict,
         analysis: dict | None = None) -> Run:
    path = root / f"{setting}-{block}"
    path.mkdir(parents=True)
    record = {"test": {"test/acc": 0.9}, "data": {"name": dataset}, "config": config,
              "analysis": analysis or {}}
    (path / "metrics.json").write_text(json.dumps(record))
    return Run(path, RunKey(setting, block, 0.0, 0, "smoke"), "complete", record)


def test_report_figures_redraws_with_titles_and_puts_dropout_beside_midl(tmp_path, drawn):
    runs = []
    rng = np.random.default_rng(1)
    smi = {"smi": {"smi": {"per_neuron_mi": [0.1, 0.3, 0.2],   # analysis.smi as evaluate
                           "activation_frequency": [0.2, 0.6, 0.4],   # writes it
                           "mi_frequency_spearman": 1.0, "embedding": {"smi": 0.5}}}}
    midl = _run(tmp_path, "mnist_mlp", "midl", "MNIST", MNIST_MIDL, smi)
    (midl.path / "figure3_mi_vs_frequency_smi.png").write_bytes(PNG)   # drawn by evaluate
    dropout = _run(tmp_path, "mnist_mlp", "dropout", "MNIST",
                   {**MNIST_MIDL, "block": {"_target_": "midl.blocks.DropoutBlock"}})
    for run in (midl, dropout):
        png = run.path / "figure4_tsne_tsne.png"
        png.write_bytes(PNG)
        np.savez(figures.points_path(png), points=rng.normal(size=(20, 2)),
                 labels=np.arange(20) % 10)
        runs.append(run)
    written = report.report_figures(runs, "smoke", tmp_path / "results", force=False)
    folder = tmp_path / "results" / "smoke"
    assert {p.name for p in written} == {"figure3_mnist.png", "figure4_mnist.png",
                                         "figures.md"}
    f3, f4 = drawn
    assert f3.titles == ["Figure 3: MI vs activation frequency\nMNIST, MLP + MID-L, seed 0\n"
                         "Spearman ρ(MI, frequency) = 1.000, 3 neurons"]
    assert f4.titles == ["MNIST, MLP + MID-L (n=20)", "MNIST, MLP + Dropout (n=20)"]
    assert f4.suptitle.startswith("Figure 4: t-SNE")
    md = (folder / "figures.md").read_text()
    assert "![figure3 MNIST](figure3_mnist.png)" in md    # relative links
    assert "CIFAR-10: MISSING" in md
    assert report.shown(report.ROOT / "outputs" / "run") == "outputs/run"   # no /work/...
    with pytest.raises(report.ReportError, match="pass --force"):
        report.report_figures(runs, "smoke", tmp_path / "results", force=False)


def test_figures_header_describes_the_runs_drawn_not_every_run(tmp_path, drawn):
    """A low-data run of the same dataset (another split, another setting) is not drawn, so
    neither its wall time nor its split size reaches the figures' header."""
    midl = _run(tmp_path, "mnist_mlp", "midl", "MNIST", MNIST_MIDL)
    other = _run(tmp_path, "lowdata_mnist_mlp", "midl", "MNIST", MNIST_MIDL)
    for run, train, wall in ((midl, 55000, 30.0), (other, 200, 5000.0)):
        run.record.update(wall_time_s=wall, data={"name": "MNIST", "sizes": {
            "train": train, "val": 5000, "test": 10000}})
    other.record["data"]["subset"] = {"train_per_class": 20}  # as a low-data run records it
    report.report_figures([midl, other], "smoke", tmp_path / "results", force=False)
    header = (tmp_path / "results" / "smoke" / "figures.md").read_text()
    assert "wall time of the counted runs: 30 s" in header
    assert "MNIST 55000/5000/10000" in header and "200/5000" not in header
    # a table whose runs span both splits (Table 12) names both
    notes = report._data_notes([midl, other])
    assert notes == ["split sizes per dataset (train/val/test): "
                     "MNIST 55000/5000/10000 and 200/5000/10000"]


def test_table_picture_has_one_panel_per_column_and_the_papers_numbers(tmp_path, drawn):
    columns = (Column("acc", "Accuracy", "%", "accuracy", None),
               Column("gpu", "GPU latency", "ms", None, None))
    rows = (Row("MLP + Dropout", "mnist_mlp", "dropout", None),
            Row("MLP + MID-L", "mnist_mlp", "midl", None))
    spec = TableSpec("tableX", "Table X: a test", None, rows, columns)
    cell = lambda mean, std, n, paper, na=None: SimpleNamespace(  # noqa: E731
        mean=mean, std=std, n=n, paper=paper, na=na)
    cells = {("MLP + Dropout", "acc"): cell(90.0, 1.0, 5, 95.0),
             ("MLP + MID-L", "acc"): cell(91.0, 0.5, 3, 97.0),
             ("MLP + Dropout", "gpu"): cell(None, None, 0, None, "n/a (no GPU)"),
             ("MLP + MID-L", "gpu"): cell(None, None, 0, None, "n/a (no GPU)")}
    path = plots.plot_table(SimpleNamespace(spec=spec, cells=cells), tmp_path / "t.png")
    assert path.read_bytes()[:8] == PNG
    assert drawn[0].titles == ["Accuracy (%)"]      # a column with nothing to show is left out
    assert drawn[0].suptitle == "Table X: a test"
    assert drawn[0].texts == ["n=5", "n=3"]
