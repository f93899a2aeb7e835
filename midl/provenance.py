"""What produced a result: code commit, hardware and library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def git_commit(repo: str | Path | None = None) -> dict[str, str | bool | None]:
    """The commit of the midl source tree (``hash``) and whether it had uncommitted changes
    (``dirty``); ``None`` values when it is not a git checkout. Changes under ``results/``
    (what the reports themselves write) do not count: regenerating the tables one after the
    other would otherwise mark every table after the first as dirty."""
    repo = Path(repo) if repo is not None else Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                 text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"hash": commit, "dirty": None if status is None else bool(status)}


def hardware() -> dict[str, object]:
    """The machine a result was measured on: CPU, cores, torch threads and any GPU."""
    info: dict[str, object] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a result."""
    import lightning
    import torchmetrics

    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__, "torchmetrics": torchmetrics.__version__}
