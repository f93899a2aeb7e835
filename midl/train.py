"""Train and test one model, configured by Hydra (``configs/train.yaml``).

Usage (after ``make install``; works from any working directory)::

    python -m midl.train                                   # MID-L on the embedded digits data
    python -m midl.train +experiment=cifar10_ablation      # the main job (Table 4's MID-L)
    python -m midl.train +experiment=mnist_mlp block=dropout trainer.max_epochs=1
    python -m midl.train -m +experiment=mnist_mlp seed=0,1,2,3,4   # a seed sweep
    python -m midl.train -m hydra/launcher=local_parallel ...   # sweep jobs in parallel (joblib)

Each run writes into its output directory (``outputs/<task_name>/runs/<overrides>/`` or, in a
sweep, ``outputs/<task_name>/multirun/<overrides>/``; ``configs/hydra/default.yaml``; the two
find each other's finished result): ``.hydra/`` (the composed config),
``csv/metrics.csv`` (the logged curves), ``checkpoints/`` and, after testing, ``metrics.json``
(first the test metrics, ``"test": {"test/acc": ...}``, as printed at the end of the run, and
with ``test_ckpt=best`` those of the final weights, ``"test_last"``;
then the resolved config, seed, commit, hardware, wall time), written atomically. A run
whose ``metrics.json`` already exists is not redone unless ``force=true``; a debug run
(``debug=...``) writes ``metrics.json`` but no run record, and no report counts it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

# Nothing imported at module level loads torch or Lightning: `--help` and a config error
# answer once Hydra has composed the config; the training stack is imported inside train().
from midl.config import register_resolvers, validate
from midl.extras import best_validation, objective, quiet_console, start_run
from midl.runs.folder import (
    RunRefusedError,
    StaleResultError,
    adopt_twin,
    finished_record,
    run_lock,
    stale_message,
)
from midl.runs.io import atomic_write_json, atomic_write_text, readable_json
from midl.runs.provenance import (
    config_differences,
    config_hash,
    git_commit,
    hardware,
    result_config,
    versions,
)
from midl.runs.records import debug_choice, live_job, read_record, record_path, save_run_record
from midl.runs.secrets import redact_secrets

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from midl.data.base import InMemoryDataModule
    from midl.module import ClassificationModule

log = logging.getLogger(__name__)
register_resolvers()


def build(cfg: DictConfig) -> tuple[pl.LightningDataModule, ClassificationModule]:
    """Instantiate the data module and the Lightning module a config describes.

    The data module is set up first because the backbone's input shape, class count and
    (for text) vocabulary size come from the data.
    """
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return datamodule, build_module(cfg, datamodule)


def build_module(cfg: DictConfig, datamodule: InMemoryDataModule) -> ClassificationModule:
    """The Lightning module of ``cfg`` (model with its block, optimizer) for a set-up data
    module; with ``compile: true`` the network is compiled in place (``nn.Module.compile``,
    so checkpoints keep their parameter names)."""
    from midl.module import ClassificationModule

    shape_kwargs: dict[str, Any] = {"input_shape": datamodule.input_shape,
                                    "num_classes": datamodule.num_classes}
    if datamodule.vocab_size is not None:
        shape_kwargs["vocab_size"] = datamodule.vocab_size
    net = instantiate(cfg.model, block=instantiate(cfg.block), **shape_kwargs)
    if cfg.get("compile", False):
        net.compile()
    return ClassificationModule(net, num_classes=datamodule.num_classes,
                                optimizer=instantiate(cfg.optimizer),
                                positive_class=datamodule.positive_class)


def cheap_cuda_checks() -> bool:
    """Undo ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` (set by ``import lightning``) on a machine
    without a usable GPU; returns whether it did.

    With it, every ``torch.cuda.is_available()`` loads the NVML library again, and
    ``torch.optim`` asks once per ``optimizer.step()``: on the 2-core CPU machine that is
    0.5 ms of a 6.5 ms MNIST-MLP training step (8%). The NVML check exists to avoid
    initialising CUDA before forking, which matters only where CUDA is usable; so the variable
    is cleared only after a check has found no GPU.
    """
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1" or torch.cuda.is_available():
        return False
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "0"
    return True


def set_num_threads(num_threads: int | None) -> None:
    """Set torch's intra-op thread count for this process (``num_threads`` in the config).

    Set inside the job, not only through ``OMP_NUM_THREADS``: a Hydra joblib worker is a
    process that may have imported torch before the environment was set. ``None`` keeps
    torch's default (one thread per core).
    """
    if num_threads is None:
        return
    import torch

    torch.set_num_threads(int(num_threads))


def existing_result(output_dir: Path, cfg: DictConfig) -> dict[str, Any] | None:
    """The finished record of this run if it may be reused instead of training, else None.

    Reused only if ``force`` is false and ``output_dir/metrics.json`` holds a record whose
    result-relevant settings (:func:`midl.runs.provenance.config_hash` of its resolved ``config``)
    equal ``cfg``'s. A corrupt or empty ``metrics.json`` is set aside and the run redone
    (:func:`midl.runs.folder.finished_record`). Without a finished ``metrics.json``, the run's
    committed record (:func:`midl.runs.records.record_path`, e.g. ``results/runs/<scale>/...``) is
    reused by the same rule; an incomplete record (:func:`midl.runs.records.read_record`) counts
    as none. A reused ``metrics.json`` whose record is missing gets one. Before the committed
    record, the finished run of the same overrides in the other folder mode is looked at (a
    single run ``<task>/runs/<name>`` for a sweep job ``<task>/multirun/<name>`` and the
    reverse): with the same settings, its result is copied here and reused
    (:func:`midl.runs.folder.adopt_twin`); with other settings it is left alone.

    Raises:
        StaleResultError: the record was made with other settings; the message names the
            differing keys and how to proceed. ``.hydra/config.yaml`` (rewritten by Hydra
            for this invocation) is restored from the record, so the folder stays consistent.
    """
    record, where = finished_record(output_dir), f"The finished run in {output_dir}"
    current = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("force", False):
        return None
    if record is None and (adopted := adopt_twin(output_dir, config_hash(current))):
        return finish_run(cfg, output_dir, adopted, only_if_missing=True)
    committed = record_path(current, output_dir)
    if record is None and committed is not None and debug_choice({}, live_job()) is None:
        record, where = read_record(committed), f"The committed run record {committed}"
    if record is None:
        return None
    recorded = record.get("config")
    if not isinstance(recorded, dict) or config_hash(recorded) != config_hash(current):
        differences = config_differences(recorded if isinstance(recorded, dict) else {},
                                         current)
        hydra_config = output_dir / ".hydra" / "config.yaml"
        if hydra_config.exists() and isinstance(recorded, dict):
            atomic_write_text(hydra_config, OmegaConf.to_yaml(OmegaConf.create(recorded)))
        raise StaleResultError(stale_message(where, differences))
    log.info("%s: this run is complete with the same settings (config hash %s), skipping it "
             "(force=true reruns it)", where, config_hash(current))
    if where.startswith("The finished run"):  # its analyses (if cut short) and record
        record = finish_run(cfg, output_dir, record, only_if_missing=True)
    return record


def finish_run(cfg: DictConfig, output_dir: Path, record: dict[str, Any],
               only_if_missing: bool = False) -> dict[str, Any]:
    """After ``metrics.json``: run the analyses ``cfg.analyses`` asks for (a partial callable
    taking the run folder, e.g. :func:`midl.reporting.analyses.in_job`; their results join
    ``metrics.json``), then write the run's record (:func:`midl.runs.records.save_run_record`;
    runs of a scale only), so the record is complete when it is written. Returns the
    final ``metrics.json`` record. With ``only_if_missing`` and no analysis run now, an
    existing record of the same settings is kept as it is."""
    ran = instantiate(cfg.analyses)(output_dir) if cfg.get("analyses") else []
    if ran:
        record = json.loads((output_dir / "metrics.json").read_text())
    save_run_record(output_dir, record, live_job(), only_if_missing=only_if_missing and not ran)
    return record


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test and write ``metrics.json`` for one run; return the written record.

    The run folder is locked for the whole run (:func:`midl.runs.folder.run_lock`): a second
    process with the same overrides refuses at once. If the folder holds a finished record
    of the same settings and ``cfg.force`` is false, the run is skipped and that record
    returned (:func:`existing_result`; a sweep continues where it stopped). If it holds
    checkpoints of an interrupted run and ``cfg.resume`` is true, training resumes from the
    newest one that loads and was written with the same settings
    (:func:`midl.runs.checkpoints.resume_checkpoint`); ``force=true`` starts afresh.

    Raises:
        midl.runs.folder.RunRefusedError: the folder is locked by another process, or its
            result or checkpoint was made with other settings.
    """
    output_dir = Path(cfg.paths.output_dir)
    with run_lock(output_dir):
        return _train(cfg, output_dir)


def _train(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    result_path = output_dir / "metrics.json"
    if (record := existing_result(output_dir, cfg)) is not None:
        return record
    validate(cfg)  # a bad value fails before torch and Lightning are loaded

    import lightning.pytorch as pl

    from midl.callbacks import NoiseMemorization, TrainingClock
    from midl.loggers import AppendingCSVLogger
    from midl.runs.checkpoints import AtomicCheckpointIO, ConfigStamp, resume_checkpoint

    quiet_console()
    cheap_cuda_checks()
    resolved = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
    run_hash, run_settings = config_hash(resolved), result_config(resolved)
    # before anything is built: a checkpoint of other settings refuses the run at once
    resume_path, resume_step = (resume_checkpoint(output_dir / "checkpoints", run_hash,
                                                  run_settings)
                                if cfg.resume and not cfg.force else (None, 0))
    resume_from = str(resume_path) if resume_path is not None else None
    set_num_threads(cfg.get("num_threads"))
    clock = TrainingClock()  # this process's time, plus that of earlier ones when resumed
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    memorization = next((c for c in callbacks if isinstance(c, NoiseMemorization)), None)
    callbacks.append(ConfigStamp(run_hash, run_settings))  # checkpoints name their settings
    callbacks.append(clock)
    loggers = [instantiate(lg) for lg in (cfg.get("logger") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                      plugins=[AtomicCheckpointIO()])

    for logger in loggers:  # curves continue from the checkpoint (or start afresh)
        if isinstance(logger, AppendingCSVLogger):
            logger.keep_rows_before(resume_step)
    if resume_from:
        log.info("resuming from %s (step %d)", resume_from, resume_step)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        checkpoint = trainer.checkpoint_callback
        ckpt_path, last_metrics = None, None
        if cfg.test_ckpt == "best" and checkpoint is not None and checkpoint.best_model_path:
            ckpt_path = checkpoint.best_model_path
            # The final weights too, first (the module holds them after fit): under label
            # noise the best clean-validation checkpoint and the last epoch differ, and the
            # paper does not say which one it tests (Tables 3 and 11 show both).
            trainer.test(module, datamodule=datamodule)
            last_metrics = _test_metrics(trainer)
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    finally:
        if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
            import wandb

            wandb.finish()

    test_metrics = _test_metrics(trainer)
    # Test sets made of several parts (CIFAR-10-C: 15 corruptions) also report each part.
    per_part = (datamodule.evaluate(module.net, device=module.device)
                if callable(getattr(datamodule, "evaluate", None)) else None)
    debug = debug_choice({}, live_job())  # debug=fdr|limit|...: never a record (midl.runs.records)
    record = redact_secrets({  # the test metrics first, as the console shows them (main)
        "test": test_metrics,
        "best_val": best_validation(trainer),  # e.g. {"val/acc": ...} of the best checkpoint
        **({"test_parts": per_part} if per_part is not None else {}),
        # the final weights' test metrics when ``test`` is of the best checkpoint
        **({"test_last": last_metrics} if last_metrics is not None else {}),
        "task_name": cfg.task_name,
        "seed": cfg.seed,
        **({"debug": debug} if debug else {}),
        # label noise: the final weights' training accuracy on flipped / kept labels
        **({"memorization": memorization.result}
           if memorization is not None and memorization.result is not None else {}),
        "tested_checkpoint": ckpt_path or "final weights",
        "epochs_trained": trainer.current_epoch,
        "resumed_from": resume_from,
        "data": datamodule.summary(),
        "wall_time_s": round(clock.elapsed(), 3),  # every process's, when resumed
        "wall_time_process_s": round(time.perf_counter() - clock.start, 3),  # this one's
        "finished_at": _now(),          # UTC; a run skipped later keeps it
        "command": " ".join(sys.argv),
        "commit": git_commit(),
        "hardware": hardware(),
        "versions": versions(),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "config_hash": run_hash,        # midl.runs.provenance.config_hash of the settings below
        "result_config": run_settings,  # the settings that change a result
    })  # no secret from the environment reaches the record (midl/runs/secrets.py)
    atomic_write_json(result_path, record, one_line_lists=True)
    record = finish_run(cfg, output_dir, record)  # analyses, then results/runs/<scale>/...
    log.info("wrote %s", result_path)
    return record


def _test_metrics(trainer: pl.Trainer) -> dict[str, float]:
    """The ``test/...`` metrics of the trainer's last ``test`` call, as floats."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def _now() -> str:
    """The current UTC time, ISO 8601 to the microsecond (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


RUN_LOG_ENV = "MIDL_RUN_LOG"
"""Environment variable naming a JSON-lines file to which every run appends its outcome."""


def note_outcome(output_dir: Path, outcome: str, seconds: float) -> None:
    """Append ``{"run", "outcome", "seconds"}`` as one line to the file ``$MIDL_RUN_LOG``
    names (nothing when it is unset). ``outcome``: ``trained``, ``skipped`` (a finished
    result of the same settings was reused), ``failed`` (``error.txt``), ``refused`` (locked
    folder or other settings) or ``preempted``. One short ``O_APPEND`` write per run, so the
    parallel jobs of a sweep can share the file; ``make tables`` sums it up at the end
    (:mod:`midl.reporting.session`)."""
    path = os.environ.get(RUN_LOG_ENV)
    if not path:
        return
    line = json.dumps({"run": str(output_dir), "outcome": outcome, "seconds": round(seconds, 1)})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def record_failure(output_dir: Path, error: BaseException) -> Path:
    """Write ``error.txt`` (the traceback) into a failed run's folder, atomically."""
    text = "".join(traceback.format_exception(error))
    return atomic_write_text(output_dir / "error.txt", text)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``optimized_metric`` (default ``test/acc``) for sweepers.

    A run that fails leaves ``error.txt`` with its traceback in its folder and re-raises; in a
    sweep, Hydra's launcher still runs the other jobs and exits non-zero at the end. A run
    pre-empted by SIGTERM saves ``last.ckpt`` (see ``midl.callbacks.PreemptionCheckpoint``) and
    exits with status 143. A later successful rerun removes the stale ``error.txt``.
    """
    output_dir = Path(cfg.paths.output_dir)
    started, clock = _now(), time.perf_counter()
    start_run(cfg)  # extras: print the config tree (extras.print_config)
    try:
        record = train(cfg)
    except SystemExit as error:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(error, SIGTERMException):
            raise
        # pre-empted (SIGTERM, Ctrl-C): last.ckpt saved
        log.error("run pre-empted; traceback in %s", record_failure(output_dir, error))
        note_outcome(output_dir, "preempted", time.perf_counter() - clock)
        sys.exit(128 + signal.SIGTERM)  # the shell's code for "terminated by SIGTERM"
    except RunRefusedError as error:  # the folder is left as it was (no error.txt)
        log.error("%s", error)
        note_outcome(output_dir, "refused", time.perf_counter() - clock)
        raise
    except Exception as error:
        log.error("run failed; traceback in %s", record_failure(output_dir, error))
        note_outcome(output_dir, "failed", time.perf_counter() - clock)
        raise
    (output_dir / "error.txt").unlink(missing_ok=True)
    note_outcome(output_dir, "trained" if record.get("finished_at", "") >= started else "skipped",
                 time.perf_counter() - clock)
    # the test metrics as they open metrics.json: {"test": {"test/acc": ...}, "best_val": ...}
    print(readable_json({"output_dir": cfg.paths.output_dir, "test": record["test"],
                         "best_val": record.get("best_val", {})}))
    return objective(record, cfg.get("optimized_metric"))  # test/acc unless a search says


if __name__ == "__main__":
    main()
