"""Train and test one model, configured by Hydra (``configs/train.yaml``).

Usage (after ``make install``; works from any working directory)::

    python -m midl.train                                   # MID-L on the embedded digits data
    python -m midl.train +experiment=cifar10_ablation      # the main job (Table 4's MID-L)
    python -m midl.train +experiment=mnist_mlp block=dropout trainer.max_epochs=1
    python -m midl.train -m +experiment=mnist_mlp seed=0,1,2,3,4   # a seed sweep

Each run writes into its output directory (``outputs/<task_name>/runs/<overrides>/`` or, in a
sweep, ``outputs/<task_name>/multirun/<overrides>/``; ``configs/hydra/default.yaml``; the two
find each other's finished result): ``.hydra/`` (the composed config), ``csv/metrics.csv``
(the logged curves), ``checkpoints/`` and, after testing, ``metrics.json`` (first the test
metrics, ``"test": {"test/acc": ...}``, as printed at the end of the run, and with
``test_ckpt=best`` those of the final weights, ``"test_last"``; then the resolved config,
seed, commit, hardware, wall time; :mod:`midl.runs.outcome`), written atomically. A run whose
``metrics.json`` already exists is not redone unless ``force=true``; a debug run
(``debug=...``) writes ``metrics.json`` but no run record, and no report counts it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

# No module-level import loads torch or Lightning: `--help` and config errors answer at once.
from midl.config import register_resolvers, validate
from midl.extras import best_validation, objective, quiet_console, start_run, test_metrics
from midl.factory import build, cheap_cuda_checks, set_num_threads
from midl.runs.folder import run_lock
from midl.runs.io import atomic_write_json, readable_json
from midl.runs.outcome import RunOutcome, existing_result, finish_run, now, run_record
from midl.runs.provenance import config_hash, git_commit, result_config
from midl.runs.secrets import redact_secrets

log = logging.getLogger(__name__)
register_resolvers()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, test and write ``metrics.json`` for one run; return the written record.

    The run folder is locked for the whole run (:func:`midl.runs.folder.run_lock`): a second
    process with the same overrides refuses at once. If the folder holds a finished record
    of the same settings and ``cfg.force`` is false, the run is skipped and that record
    returned (:func:`midl.runs.outcome.existing_result`; a sweep continues where it stopped).
    If it holds checkpoints of an interrupted run and ``cfg.resume`` is true, training resumes
    from the newest one that loads and was written with the same settings
    (:func:`midl.runs.checkpoints.resume_checkpoint`); ``force=true`` starts afresh.

    Raises:
        midl.runs.folder.RunRefusedError: the folder is locked by another process, or its
            result or checkpoint was made with other settings.
    """
    output_dir = Path(cfg.paths.output_dir)
    with run_lock(output_dir):
        if (record := existing_result(output_dir, cfg)) is not None:
            return record
        validate(cfg)  # a bad value fails before torch and Lightning are loaded
        return _fit_and_test(cfg, output_dir)


def _fit_and_test(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    import lightning.pytorch as pl

    from midl.callbacks import NoiseMemorization, TrainingClock
    from midl.loggers import AppendingCSVLogger, finish_wandb
    from midl.runs.checkpoints import AtomicCheckpointIO, ConfigStamp, resume_checkpoint

    quiet_console()
    cheap_cuda_checks()
    resolved = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
    run_hash, run_settings = config_hash(resolved), result_config(resolved)
    # before anything is built: a checkpoint of other settings refuses the run at once
    resume_path, resume_step = (resume_checkpoint(output_dir / "checkpoints", run_hash,
                                                  run_settings) if cfg.resume and not cfg.force
                                else (None, 0))
    resume_from = str(resume_path) if resume_path is not None else None
    set_num_threads(cfg.get("num_threads"))
    # this process's time and stamp, plus those of earlier ones when resumed
    clock = TrainingClock({"commit": git_commit(), "started_at": now()})
    pl.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    memorization = next((c for c in callbacks if isinstance(c, NoiseMemorization)), None)
    callbacks += [ConfigStamp(run_hash, run_settings), clock]  # checkpoints name settings
    loggers = [instantiate(lg) for lg in (cfg.get("logger") or {}).values()]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers,
                                      plugins=[AtomicCheckpointIO()])
    for logger in (lg for lg in loggers if isinstance(lg, AppendingCSVLogger)):
        logger.keep_rows_before(resume_step)  # curves continue from the checkpoint, or afresh
    if resume_from:
        log.info("resuming from %s (step %d)", resume_from, resume_step)
    results: dict[str, Any] = {}
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
        checkpoint, ckpt_path = trainer.checkpoint_callback, None
        if cfg.test_ckpt == "best" and checkpoint is not None and checkpoint.best_model_path:
            ckpt_path = checkpoint.best_model_path
            # The final weights too, first: under label noise the best clean-validation
            # checkpoint and the last epoch differ; which one the paper tests is not said.
            trainer.test(module, datamodule=datamodule)
            results["test_last"] = test_metrics(trainer)
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    finally:
        finish_wandb(loggers)
    results = {"test": test_metrics(trainer), "best_val": best_validation(trainer), **results}
    # Test sets made of several parts (CIFAR-10-C: 15 corruptions) also report each part.
    if callable(getattr(datamodule, "evaluate", None)):
        results["test_parts"] = datamodule.evaluate(module.net, device=module.device)
    if memorization is not None and memorization.result is not None:
        results["memorization"] = memorization.result
    results.update(tested_checkpoint=ckpt_path or "final weights",
                   epochs_trained=trainer.current_epoch, resumed_from=resume_from,
                   data=datamodule.summary())
    record = run_record(cfg, results, run_hash=run_hash, run_settings=run_settings,
                        wall_time_s=clock.elapsed(), process_start=clock.start,
                        processes=clock.processes())
    atomic_write_json(output_dir / "metrics.json", record, one_line_lists=True)
    record = finish_run(cfg, output_dir, record)  # analyses, then results/runs/<scale>/...
    log.info("wrote %s", output_dir / "metrics.json")
    return record


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``optimized_metric`` (default ``test/acc``) for sweepers.

    A run that fails leaves ``error.txt`` with its traceback in its folder and re-raises; in a
    sweep, Hydra's launcher still runs the other jobs and exits non-zero at the end. A run
    pre-empted by SIGTERM saves ``last.ckpt`` (see ``midl.callbacks.PreemptionCheckpoint``) and
    exits with status 143. A later successful rerun removes the stale ``error.txt``.
    """
    start_run(cfg)  # extras: print the config tree (extras.print_config)
    with RunOutcome(Path(cfg.paths.output_dir)) as outcome:  # error.txt, exit 143, run log
        record = train(cfg)
        outcome.done(record)
    # the test metrics as they open metrics.json: {"test": {"test/acc": ...}, "best_val": ...}
    print(readable_json({"output_dir": cfg.paths.output_dir, "test": record["test"],
                         "best_val": record.get("best_val", {})}))
    return objective(record, cfg.get("optimized_metric"))  # test/acc unless a search says


if __name__ == "__main__":
    main()
