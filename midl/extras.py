"""What happens around a run, outside training itself (``configs/extras/``).

- :func:`start_run`: called by ``midl.train`` once the config is composed; with
  ``extras.print_config: true`` (the default) it prints the composed config as a tree.
- :func:`objective`: the number ``midl.train`` returns to a Hydra sweeper (Optuna), named by
  the config's ``optimized_metric`` (``configs/hparams_search/``); :func:`best_validation`
  records the best validation score it can be.

Nothing here imports torch: the tree is printed before anything heavy is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from midl.secrets import redact_secrets

# groups printed first, in this order (the rest follow as composed)
TREE_ORDER = ("data", "model", "block", "trainer", "callbacks", "logger", "paths", "extras")


def config_tree(cfg: DictConfig, order: Sequence[str] = TREE_ORDER, resolve: bool = True) -> Any:
    """The composed config as a ``rich.tree.Tree``: one branch per top-level key, each holding
    its YAML (interpolations resolved where they can be; kept as written where not), with
    the values of secret-looking environment variables masked
    (:func:`midl.secrets.redact_secrets`)."""
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


def best_validation(trainer: Any) -> dict[str, float]:
    """``{monitor: best score}`` of the trainer's checkpoint callback (``val/acc`` of the best
    checkpoint, the one tested by default); empty without a checkpoint callback or score."""
    checkpoint = getattr(trainer, "checkpoint_callback", None)
    if checkpoint is None or checkpoint.best_model_score is None or not checkpoint.monitor:
        return {}
    return {str(checkpoint.monitor): float(checkpoint.best_model_score)}


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
