"""What happens around a run, outside training itself (``configs/extras/``).

- :func:`start_run`: called by ``midl.train`` once the config is composed; with
  ``extras.print_config: true`` (the default) it prints the composed config as a tree.
- :func:`quiet_console`: called by ``midl.train`` once Lightning is loaded; silences the
  console noise that says nothing about the run (:data:`SILENCED_WARNINGS`, Lightning's tip
  banner, a second copy of each Lightning log line, a repeated checksum warning).
- :func:`objective`: the number ``midl.train`` returns to a Hydra sweeper (Optuna), named by
  the config's ``optimized_metric`` (``configs/hparams_search/``); :func:`best_validation`
  records the best validation score it can be.

Nothing here imports torch: the tree is printed before anything heavy is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from midl.runs.secrets import redact_secrets

# groups printed first, in this order (the rest follow as composed)
TREE_ORDER = ("data", "model", "block", "trainer", "callbacks", "logger", "paths", "extras")


def config_tree(cfg: DictConfig, order: Sequence[str] = TREE_ORDER, resolve: bool = True) -> Any:
    """The composed config as a ``rich.tree.Tree``: one branch per top-level key, each holding
    its YAML (interpolations resolved where they can be; kept as written where not), with
    the values of secret-looking environment variables masked
    (:func:`midl.runs.secrets.redact_secrets`)."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", style="bold", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order and k != "hydra"]
    for key in keys:
        node = cfg[key]
        if OmegaConf.is_config(node):
            try:
                text = OmegaConf.to_yaml(node, resolve=resolve)
            except Exception:  # an interpolation that only resolves inside a Hydra app
                text = OmegaConf.to_yaml(node, resolve=False)
        else:
            text = str(node)
        text = redact_secrets(text)  # no secret from the environment is printed
        tree.add(str(key), style="bold").add(Syntax(text.rstrip(), "yaml", word_wrap=True,
                                                    background_color="default"))
    return tree


def print_config_tree(cfg: DictConfig, order: Sequence[str] = TREE_ORDER) -> None:
    """Print :func:`config_tree` of ``cfg`` to the console (rich)."""
    from rich import print as rich_print

    rich_print(config_tree(cfg, order))


def start_run(cfg: DictConfig) -> None:
    """Run the extras ``cfg.extras`` asks for (only in the first process of a multi-GPU run).

    ``extras.print_config``: print the composed config as a tree. A config without an
    ``extras`` node does nothing.
    """
    extras = cfg.get("extras") or {}
    if os.environ.get("LOCAL_RANK", "0") != "0":  # DDP worker processes: rank 0 prints
        return
    if extras.get("print_config", False):
        print_config_tree(cfg)


# Warnings silenced in a run (regular expressions matched against the start of the message).
SILENCED_WARNINGS: tuple[str, ...] = (
    # short epochs are intended (debug, smoke, low-data); the epoch-level curves are logged
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # run folders are named from the overrides, so a resumed or redone run finds its
    # checkpoints/ again: that is the design (stale checkpoints are refused by their stamp)
    r"Checkpoint directory .* exists and is not empty",
    # a mid-epoch resume is exact: the data module keeps its position in the checkpoint and
    # its sampler skips the batches already trained (midl.data.base; test_reliability)
    r"You're resuming from a checkpoint that ended before the epoch ended",
    # Lightning's own call of torch's deprecated pytree API, once per run (not ours to fix)
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
# Lightning log lines dropped (start of the message): its advertisement for litlogger
SILENCED_LOG_LINES: tuple[str, ...] = ("💡 Tip:",)
# Lightning's accelerator lines, printed by every Trainer: a training run prints them once (its
# record keeps the hardware); analyses build a Trainer per model and drop them
DEVICE_LOG_LINES: tuple[str, ...] = ("GPU available:", "TPU available:", "HPU available:")
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero",
                      "lightning.fabric.utilities.rank_zero")


class _DropLines(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def quiet_console() -> None:
    """Silence what a run's console need not show (idempotent; call after Lightning is
    imported, as ``midl.train`` does):

    - the warnings of :data:`SILENCED_WARNINGS` (``warnings.filterwarnings``);
    - :class:`midl.data.formats.ChecksumWarning` once per process and message (a data module
      set up again in the same run, e.g. by an analysis, does not repeat it);
    - Lightning's log lines of :data:`SILENCED_LOG_LINES` (a ``logging.Filter`` on its
      rank-zero loggers);
    - Lightning's own console handler, when the root logger has handlers (Hydra's): then
      each Lightning message is printed once, by Hydra's handlers (and kept in the job's
      ``.log`` file), instead of twice.
    """
    from midl.data.formats import ChecksumWarning

    for pattern in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("once", category=ChecksumWarning)
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLines) for f in logger.filters):
            logger.addFilter(_DropLines(SILENCED_LOG_LINES))
    if logging.getLogger().hasHandlers():
        package = logging.getLogger("lightning")
        for handler in list(package.handlers):
            if type(handler) is logging.StreamHandler:
                package.removeHandler(handler)


@contextlib.contextmanager
def dropped_log_lines(prefixes: Sequence[str] = DEVICE_LOG_LINES) -> Iterator[None]:
    """Within the block, Lightning's rank-zero log lines starting with one of ``prefixes``
    (default :data:`DEVICE_LOG_LINES`) are dropped; the filter is removed afterwards."""
    drop = _DropLines(prefixes)
    loggers = [logging.getLogger(name) for name in _RANK_ZERO_LOGGERS]
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(drop)


def best_validation(trainer: Any) -> dict[str, float]:
    """``{monitor: best score}`` of the trainer's checkpoint callback (``val/acc`` of the best
    checkpoint, the one tested by default); empty without a checkpoint callback or score."""
    checkpoint = getattr(trainer, "checkpoint_callback", None)
    if checkpoint is None or checkpoint.best_model_score is None or not checkpoint.monitor:
        return {}
    return {str(checkpoint.monitor): float(checkpoint.best_model_score)}


def test_metrics(trainer: Any) -> dict[str, float]:
    """The ``test/...`` metrics of the trainer's last ``test`` call, as floats."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def objective(record: Mapping[str, Any], metric: str | None) -> float | None:
    """The value of ``metric`` (e.g. ``val/acc``, ``test/acc``) in a run's ``metrics.json``
    record, for a Hydra sweeper to optimise. ``metric=None`` (no search configured) returns
    ``test/acc``, or None if the record has none.

    Looked up among the record's top-level keys, then under ``best_val`` (written from
    :func:`best_validation`) and ``test``.

    Raises:
        KeyError: if ``metric`` is given and the record holds no such metric (the message
            lists the ones it holds).
    """
    places = [record, *(record.get(part) or {} for part in ("best_val", "test"))]
    for place in places:
        if isinstance(place.get(metric or "test/acc"), (int, float)):
            return float(place[metric or "test/acc"])
    if metric is None:
        return None
    held = sorted({k for place in places for k, v in place.items()
                   if "/" in str(k) and isinstance(v, (int, float))})
    raise KeyError(f"optimized_metric={metric!r} is not in the run's record: choose from {held}")
