"""Evaluate a trained checkpoint: test metrics plus the slower analyses, as a library.

The entry point is ``python -m midl.evaluate`` (:mod:`midl.evaluate`, ``configs/evaluate.yaml``);
the analyses inside a training job call :func:`evaluate` too (:mod:`midl.analyses`).

The run's model and data are rebuilt from its resolved config (``<run_dir>/metrics.json``'s
``config``, else ``<run_dir>/.hydra/config.yaml``) with :func:`midl.factory.build`, and the
checkpoint's ``state_dict`` is loaded (``torch.load(..., weights_only=True)``). The test set is
evaluated with Lightning's test loop (accuracy, F1, both ANRs, ECE, Brier, FLOPs, exactly as a
training run's test stage), then each requested analysis runs:

- ``flops``: dense and conditional FLOPs per sample, whole model and per block
  (:mod:`midl.metrics.flops`), plus both ANRs and per-neuron activation frequency per block;
- ``latency``: forward-pass latency at each batch size (:mod:`midl.metrics.latency`);
- ``memory``: peak inference memory at each batch size (:mod:`midl.metrics.memory`);
- ``smi``: SMI between the last-layer embedding and the labels, the same restricted to the
  neurons the gate selected (unselected ones set to 0; gated blocks only), and per-neuron MI;
  writes Figure 3 (:mod:`midl.metrics.smi`);
- ``calibration``: ECE, Brier score and the reliability-diagram bins
  (:mod:`midl.metrics.calibration`);
- ``tsne``: Figure 4, t-SNE of last-layer embeddings (:mod:`midl.figures`).

Results are added to the run's ``metrics.json`` under ``analysis.<eval_name>`` (read, update,
atomic write, under a file lock; everything else in the file is kept) and figures are written
next to it as ``figure3_mi_vs_frequency_<eval_name>.png`` and ``figure4_tsne_<eval_name>.png``.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from midl.backbones import Backbone, blocks_of
from midl.config import register_resolvers
from midl.factory import build
from midl.figures import class_names, plot_smi_vs_frequency, plot_tsne, run_title, spearman
from midl.metrics.anr import GateStatistics
from midl.metrics.calibration import (
    brier_score,
    expected_calibration_error,
    reliability_bins,
)
from midl.metrics.flops import FLOP_CONVENTION, conditional_flops, count_flops
from midl.metrics.latency import measure_latency
from midl.metrics.memory import peak_memory
from midl.metrics.smi import per_neuron_mutual_information, sliced_mutual_information
from midl.module import ClassificationModule
from midl.runs.io import atomic_write_json
from midl.runs.provenance import git_commit, hardware, typed_command, versions
from midl.runs.records import save_run_record

log = logging.getLogger(__name__)
register_resolvers()

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
ANALYSES = ("flops", "latency", "memory", "smi", "calibration", "tsne")


def run_dir_of(ckpt_path: str | Path) -> Path:
    """The run folder of a checkpoint: the parent of ``checkpoints/``, else the file's folder."""
    parent = Path(ckpt_path).resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def load_run_config(run_dir: Path) -> DictConfig:
    """The run's config: ``metrics.json``'s resolved ``config``, else ``.hydra/config.yaml``.

    Raises:
        FileNotFoundError: if the run folder has neither.
    """
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        config = json.loads(metrics.read_text()).get("config")
        if config:
            return OmegaConf.create(config)
    hydra_config = run_dir / ".hydra" / "config.yaml"
    if hydra_config.exists():
        cfg = OmegaConf.load(hydra_config)
        with open_dict(cfg):
            cfg.paths.output_dir = str(run_dir)  # was ${hydra:runtime.output_dir}
        return cfg
    raise FileNotFoundError(f"no config for the run in {run_dir}: expected metrics.json with a "
                            "'config' entry or .hydra/config.yaml")


def load_checkpoint(cfg: DictConfig, ckpt_path: str | Path, data_overrides: Any = None,
                    data_dir: str | None = None, data_config: str | None = None,
                    model_overrides: Any = None
                    ) -> tuple[pl.LightningDataModule, ClassificationModule]:
    """Rebuild a run's data module and model from ``cfg`` and load ``ckpt_path``'s weights.

    Args:
        cfg: the run's config (:func:`load_run_config`).
        ckpt_path: a Lightning checkpoint of that run.
        data_overrides: a mapping merged into ``cfg.data`` (e.g. another test set).
        data_dir: replaces ``cfg.data.data_dir`` and ``cfg.paths.data_dir`` if given.
        data_config: name of a ``configs/data/`` entry (e.g. ``cifar10c``) that replaces the
            run's data config before ``data_overrides`` are merged; its ``${paths.*}`` refer
            to the run's paths, and keys it shares with the run's data config keep the run's
            values (data root, validation slice, training subset: the normalisation
            statistics are those of training).
        model_overrides: a mapping merged into ``cfg.model`` that leaves the weights' shapes
            alone (e.g. ``{"channels_last": True}``: the same network in another layout).

    Raises:
        FileNotFoundError: if the checkpoint or the data config does not exist.
        RuntimeError: if its weights do not fit the rebuilt model.
    """
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(cfg):
        if data_config:
            path = CONFIG_DIR / "data" / f"{data_config}.yaml"
            if not path.is_file():
                raise FileNotFoundError(f"no data config {path}")
            new = data_group_config(data_config)
            run_data = OmegaConf.to_container(cfg.data, resolve=False)
            shared = {k: v for k, v in run_data.items() if k in new and k != "_target_"}
            cfg.data = OmegaConf.merge(new, shared)
        if data_dir:
            cfg.paths.data_dir = str(data_dir)
            cfg.data.data_dir = str(data_dir)
        if data_overrides:
            cfg.data = OmegaConf.merge(cfg.data, data_overrides)
        if model_overrides:
            cfg.model = OmegaConf.merge(cfg.model, model_overrides)
    datamodule, module = build(cfg)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["state_dict"])
    module.eval()
    return datamodule, module


def data_group_config(name: str) -> DictConfig:
    """``configs/data/<name>.yaml`` as Hydra composes it (its defaults list included: the
    shared keys of ``configs/data/conditions/``), unresolved interpolations kept.

    Composed through the running Hydra app when there is one (``midl.evaluate``,
    ``midl.train``), else through a Hydra instance of its own for ``configs/``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    def data(overrides: list[str]) -> DictConfig:
        cfg = compose("train", overrides=overrides)
        return OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=False))

    if GlobalHydra.instance().is_initialized():
        return data([f"data={name}"])
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return data([f"data={name}"])


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _test_metrics(module: ClassificationModule, datamodule: pl.LightningDataModule,
                  device: torch.device) -> dict[str, float]:
    """The training run's test stage on this checkpoint (Lightning test loop)."""
    trainer = pl.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


@torch.inference_mode()
def collect(module: ClassificationModule, datamodule: pl.LightningDataModule,
            device: torch.device, tau: float = 0.5) -> dict[str, Any]:
    """One eval-mode pass over the test set, keeping what the analyses need.

    Returns:
        ``{"logits": (N, C), "labels": (N,), "embeddings": (N, d) or None,
        "last_mask": (N, d) bool or None (the last-layer block's top-k mask),
        "gates": {block name: GateStatistics}, "inputs": the first <= 64 model inputs}``,
        tensors on the CPU.
    """
    net = module.net.to(device).eval()
    names = {id(m): n for n, m in net.named_modules()}
    blocks = blocks_of(net)
    gates = {names[id(b)]: GateStatistics(tau) for b in blocks}
    last_block = net.block if isinstance(net, Backbone) else None
    transform = getattr(datamodule, "transform", None)
    logits, labels, embeddings, masks, inputs = [], [], [], [], []
    n_inputs = 0
    for x, y in datamodule.test_dataloader():
        x = x.to(device)
        if callable(transform):
            x = transform(x, train=False)
        if last_block is not None:
            embedding = net.embed(x)
            out = net.head(embedding)
            embeddings.append(embedding.float().cpu())
            mask = getattr(last_block, "last_mask", None)
            if mask is not None and mask.shape == embedding.shape:
                masks.append(mask.cpu())
        else:
            out = net(x)
        for block in blocks:
            gates[names[id(block)]].update(block)
        logits.append(out.float().cpu())
        labels.append(y.cpu())
        if n_inputs < 64:
            inputs.append(x[: 64 - n_inputs].cpu())
            n_inputs += len(inputs[-1])
    n = sum(len(y) for y in labels)
    return {"logits": torch.cat(logits), "labels": torch.cat(labels),
            "embeddings": torch.cat(embeddings) if embeddings else None,
            "last_mask": torch.cat(masks) if len(masks) == len(labels) and masks else None,
            "gates": gates, "inputs": torch.cat(inputs), "n": n}


def _batch(inputs: Tensor, size: int) -> Tensor:
    """``size`` inputs, cycling through ``inputs`` if it holds fewer."""
    repeats = -(-size // len(inputs))
    return inputs.repeat(repeats, *([1] * (inputs.dim() - 1)))[:size]


def _subsample(n: int, size: int | None, seed: int) -> np.ndarray:
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def analyse_flops(module: ClassificationModule, data: dict[str, Any]) -> dict[str, Any]:
    """Dense and conditional FLOPs per sample, and both ANRs per block."""
    net = module.net.eval()
    device = next(net.parameters()).device
    report = count_flops(net, data["inputs"][:1].to(device))
    stats = {name: g.compute() for name, g in data["gates"].items()
             if g.has_gate or g.fallback_updates}
    conditional = conditional_flops(net, report, {n: float(s["anr"]) for n, s in stats.items()})
    return {
        "convention": FLOP_CONVENTION,
        "dense": report.total,
        "conditional": conditional["total"],
        "blocks": {name: {"dense": report.blocks[name],
                          "conditional": conditional["blocks"][name],
                          "anr": stats.get(name, {}).get("anr"),
                          "anr_tau": stats.get(name, {}).get("anr_tau"),
                          "rows_per_sample": report.rows_per_sample.get(name)}
                   for name in report.blocks},
        "modules": report.modules,
    }


def analyse_latency(module: ClassificationModule, data: dict[str, Any], device: torch.device,
                    cfg: DictConfig) -> dict[str, Any]:
    """Latency at each configured batch size (ms per forward pass of the batch)."""
    return {f"batch_{b}": measure_latency(module.net, _batch(data["inputs"], b).to(device),
                                          warmup=cfg.warmup, repeats=cfg.repeats,
                                          num_threads=cfg.num_threads)
            for b in cfg.batch_sizes}


def analyse_memory(module: ClassificationModule, data: dict[str, Any], device: torch.device,
                   cfg: DictConfig) -> dict[str, Any]:
    """Peak inference memory at each configured batch size (MB)."""
    return {f"batch_{b}": peak_memory(module.net, _batch(data["inputs"], b).to(device),
                                      repeats=cfg.repeats)
            for b in cfg.batch_sizes}


def analyse_smi(data: dict[str, Any], cfg: DictConfig, figure_path: Path,
                title: str) -> dict[str, Any]:
    """SMI of the last-layer embedding (and of its selected neurons), per-neuron MI, Figure 3."""
    if data["embeddings"] is None:
        raise ValueError("smi needs a backbone with embed(x) (midl.backbones.Backbone)")
    index = _subsample(data["n"], cfg.max_samples, cfg.seed)
    x = data["embeddings"][index].numpy()
    y = data["labels"][index].numpy()
    kwargs = {"n_neighbors": cfg.n_neighbors, "seed": cfg.seed, "n_jobs": cfg.n_jobs}
    result: dict[str, Any] = {
        "units": "nats", "layer": "block output (last-layer embedding)",
        "n_test": data["n"], "subsample": len(index),
        # each with its permuted-label bias floor and the estimate above it (midl.metrics.smi)
        "embedding": sliced_mutual_information(x, y, n_directions=cfg.n_directions,
                                               n_permutations=cfg.n_permutations, **kwargs),
        "selected": None,
    }
    if data["last_mask"] is not None:
        selected = x * data["last_mask"][index].numpy()
        result["selected"] = sliced_mutual_information(selected, y,
                                                       n_directions=cfg.n_directions,
                                                       n_permutations=cfg.n_permutations,
                                                       **kwargs)
    mi = per_neuron_mutual_information(x, y, **kwargs)
    gate = data["gates"].get("block")
    frequency = None
    if gate is not None and gate.has_gate:
        frequency = gate.compute()["frequency"]
    if frequency is None:  # dense block: every neuron is active for every input
        frequency = [1.0] * x.shape[1]
    result["per_neuron_mi"] = [float(v) for v in mi]
    result["activation_frequency"] = [float(v) for v in frequency]
    result["mi_frequency_spearman"] = spearman(mi, frequency)
    result["figure3"] = plot_smi_vs_frequency(mi, frequency, figure_path, title=title).name
    return result


def analyse_calibration(data: dict[str, Any], cfg: DictConfig) -> dict[str, Any]:
    """ECE (torchmetrics, L1), Brier score and reliability bins of the test predictions."""
    probs = data["logits"].softmax(-1)
    labels = data["labels"]
    return {"ece": float(expected_calibration_error(probs, labels, cfg.n_bins)),
            "brier": float(brier_score(probs, labels)), "n_bins": cfg.n_bins, "norm": "l1",
            "bins": reliability_bins(probs, labels, cfg.n_bins)}


def analyse_tsne(data: dict[str, Any], cfg: DictConfig, figure_path: Path,
                 title: str, names: Any = None) -> dict[str, Any]:
    """Figure 4: t-SNE of a seeded subsample of the last-layer embeddings."""
    if data["embeddings"] is None:
        raise ValueError("tsne needs a backbone with embed(x) (midl.backbones.Backbone)")
    index = _subsample(data["n"], cfg.n_samples, cfg.seed)
    plot_tsne(data["embeddings"][index].numpy(), data["labels"][index].numpy(), figure_path,
              n_samples=None, seed=cfg.seed, perplexity=cfg.perplexity, title=title,
              class_names=names)
    return {"figure4": figure_path.name, "n_samples": len(index), "seed": cfg.seed,
            "perplexity": cfg.perplexity}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (so two evaluations never lose each other's
    results in ``metrics.json``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_analysis(run_dir: Path, eval_name: str, result: dict[str, Any]) -> Path:
    """Add ``result`` under ``analysis.<eval_name>`` of ``run_dir/metrics.json`` atomically,
    keeping everything else in the file (created if missing), and update the run's record,
    if it has one, with it (:func:`midl.runs.records.save_run_record`). Returns the file's
    path."""
    path = run_dir / "metrics.json"
    with _locked(run_dir / ".metrics.json.lock"):
        record = json.loads(path.read_text()) if path.exists() else {}
        record.setdefault("analysis", {})[eval_name] = result
        atomic_write_json(path, record, one_line_lists=True)
        save_run_record(run_dir, record, only_if_exists=True)
    return path


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Run the evaluation ``cfg`` (``configs/evaluate.yaml``) describes; return its result.

    Raises:
        ValueError: for an unknown analysis name.
        FileNotFoundError: if the checkpoint or the run's config is missing.
    """
    requested = list(cfg.analysis or [])
    unknown = sorted(set(requested) - set(ANALYSES))
    if unknown:
        raise ValueError(f"unknown analysis {unknown}: choose from {list(ANALYSES)}")
    ckpt_path = Path(cfg.ckpt_path).resolve()
    run_dir = run_dir_of(ckpt_path)
    run_cfg = load_run_config(run_dir)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = load_checkpoint(run_cfg, ckpt_path, cfg.get("data"), cfg.get("data_dir"),
                                         cfg.get("eval_data"), cfg.get("model"))
    module.anr_tau = cfg.anr_tau
    device = _device(cfg.device)

    result: dict[str, Any] = {
        "checkpoint": str(ckpt_path),
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "analyses": requested,
        "data": datamodule.summary() if hasattr(datamodule, "summary") else None,
        "metrics": _test_metrics(module, datamodule, device),
    }
    # Test sets made of several parts (CIFAR-10-C: one per corruption) also report each part.
    if callable(getattr(datamodule, "evaluate", None)):
        result["test_parts"] = datamodule.evaluate(module.net, device=device)
    data = collect(module, datamodule, device, tau=cfg.anr_tau) if requested else None
    model_name = run_title(run_cfg, (result.get("data") or {}).get("name"),  # MNIST, MLP + MID-L
                           data=result.get("data"))
    suffix = cfg.eval_name
    for name in requested:
        log.info("analysis: %s", name)
        if name == "flops":
            result["flops"] = analyse_flops(module, data)
        elif name == "latency":
            result["latency"] = analyse_latency(module, data, device, cfg.latency)
        elif name == "memory":
            result["memory"] = analyse_memory(module, data, device, cfg.memory)
        elif name == "smi":
            result["smi"] = analyse_smi(data, cfg.smi,
                                        run_dir / f"figure3_mi_vs_frequency_{suffix}.png",
                                        f"MI vs activation frequency\n{model_name}")
        elif name == "calibration":
            result["calibration"] = analyse_calibration(data, cfg.calibration)
        elif name == "tsne":
            result["tsne"] = analyse_tsne(data, cfg.tsne, run_dir / f"figure4_tsne_{suffix}.png",
                                          f"t-SNE, {model_name}",
                                          class_names((result.get("data") or {}).get("name")))
    result.update({"command": typed_command(), "commit": git_commit(),
                   "hardware": hardware(), "versions": versions(),
                   "config": OmegaConf.to_container(cfg, resolve=True)})
    path = save_analysis(run_dir, cfg.eval_name, result)
    log.info("wrote analysis.%s to %s", cfg.eval_name, path)
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of an evaluation result (printed by the command line)."""
    out: dict[str, Any] = dict(result.get("metrics", {}))
    if "flops" in result:
        out["flops_dense"] = result["flops"]["dense"]
        out["flops_conditional"] = result["flops"]["conditional"]
    for kind, key in (("latency", "median_ms"), ("memory", "peak_mb")):
        for batch, values in result.get(kind, {}).items():
            out[f"{kind}_{batch}_{key}"] = values[key]
            if kind == "memory":
                out[f"memory_{batch}_delta_mb"] = values["delta_mb"]
    if "smi" in result:
        out["smi_embedding_nats"] = result["smi"]["embedding"]["smi"]
        out["smi_embedding_floor_nats"] = result["smi"]["embedding"].get("floor")
        if result["smi"]["selected"] is not None:
            out["smi_selected_nats"] = result["smi"]["selected"]["smi"]
        out["figure3"] = result["smi"]["figure3"]
    if "calibration" in result:
        out["ece"] = result["calibration"]["ece"]
        out["brier"] = result["calibration"]["brier"]
    if "tsne" in result:
        out["figure4"] = result["tsne"]["figure4"]
    return out

