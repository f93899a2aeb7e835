"""The scales a table is made at (``configs/scale/<name>.yaml``): their settings and seeds.

Read by the table report (:mod:`midl.report`), the analyses (:mod:`midl.reporting.analyses`)
and the claims audit (:mod:`midl.claims`), so that none of them imports another's entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SCALE_DIR = Path(__file__).resolve().parent.parent.parent / "configs" / "scale"


# The scale settings that shape a run's analyses without reaching its hashed configuration
# (epochs, sizes and precision reach data.* / trainer.* and so the configuration hash; a
# changed target or another setting's epochs do not change this run's result).
ANALYSIS_KEYS = ("cifar10c_corruptions", "smi_directions", "max_eval_samples", "latency_repeats")


class ScaleError(ValueError):
    """An unknown scale name (the message lists the known ones)."""


def scale_settings(scale: str) -> dict[str, Any]:
    """The ``scale`` node of ``configs/scale/<scale>.yaml``.

    Raises:
        ScaleError: if there is no such scale.
    """
    path = SCALE_DIR / f"{scale}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in SCALE_DIR.glob("*.yaml"))
        raise ScaleError(f"unknown scale {scale!r}: choose from {choices}")
    return yaml.safe_load(path.read_text())["scale"]


def parse_seeds(value: Any) -> list[int]:
    """Seeds from a scale's ``seeds`` entry (``"0,1,2"``, ``0`` or a list)."""
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        return [int(s) for s in value.split(",") if s.strip()]
    return [int(s) for s in value]


def analysis_seeds(settings: dict[str, Any]) -> dict[str, list[int]]:
    """Seeds that get each analysis at a scale (``efficiency_seeds``, ``smi_seeds``)."""
    out = {}
    for name in ("efficiency", "smi"):
        if settings.get(f"{name}_seeds") is not None:
            out[name] = parse_seeds(settings[f"{name}_seeds"])
    return out
