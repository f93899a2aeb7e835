"""Every reference the docs make into the code resolves: the docstrings' Sphinx roles
(``:func:`midl.x.y```) name an importable module and attribute, and the file paths the READMEs
and docstrings cite (``midl/x.py``, ``configs/...yaml``, ``scripts/...py``) exist, and so do
the modules of the ``python -m midl...`` commands they print. A module
moved without its references would otherwise send a reader to nothing."""

from __future__ import annotations

import importlib
import importlib.util
import re

from conftest import REPO

ROLE = re.compile(r":(?:mod|func|class|data|meth|attr|exc):`~?(midl\.[A-Za-z_][\w.]*)`")
MARKDOWN_NAME = re.compile(r"`(midl\.[A-Za-z_][\w.]*)")  # `midl.x.y` in the READMEs
COMMAND = re.compile(r"python -m (midl(?:\.\w+)*)")
PATH = re.compile(r"(?<![\w./-])((?:midl|configs|scripts)/[\w/.-]*\.(?:py|yaml))\b")
SOURCES = sorted([*(REPO / "midl").rglob("*.py"), *(REPO / "scripts").rglob("*.py"),
                  REPO / "README.md", REPO / "results" / "README.md", REPO / "Makefile",
                  *(REPO / "configs").rglob("*.yaml")])
EXAMPLES = {"midl/x/y.py",  # a path standing for any module (midl.runs.provenance)
            "configs/experiment/tableN.yaml"}  # for any table (README)


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a module, or an attribute chain of the longest importable
    module prefix."""
    parts = dotted.rstrip(".").split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def runnable(module: str) -> bool:
    """Whether ``python -m module`` finds the module (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def references(pattern: re.Pattern[str], suffix: str = "") -> list[tuple[str, str]]:
    """(source file, match) of ``pattern`` in every source file ending in ``suffix``."""
    return sorted({(str(path.relative_to(REPO)), match) for path in SOURCES
                   if path.name.endswith(suffix) for match in pattern.findall(path.read_text())})


def test_the_resolver_tells_a_moved_module_from_a_real_one():
    assert resolves("midl.runs.provenance.config_hash")
    assert resolves("midl.blocks.MIDLayer")
    assert not resolves("midl.provenance.config_hash")  # moved to midl.runs
    assert not resolves("midl.blocks.NoSuchLayer")
    assert runnable("midl.train") and not runnable("midl.provenance")


def test_docstring_roles_resolve():
    refs = references(ROLE) + references(MARKDOWN_NAME, ".md")
    assert len(refs) > 100  # the patterns still find the references
    missing = [f"{source}: {dotted}" for source, dotted in refs if not resolves(dotted)]
    assert not missing, "references to nothing:\n" + "\n".join(missing)


def test_commands_name_runnable_modules():
    refs = references(COMMAND)
    assert len(refs) > 50  # the pattern still finds the commands
    missing = [f"{source}: python -m {module}" for source, module in refs
               if not runnable(module) and module != "midl.x.y"]  # midl.x.y: an example
    assert not missing, "commands whose module does not exist:\n" + "\n".join(missing)


def test_cited_files_exist():
    refs = references(PATH)
    assert len(refs) > 50  # the pattern still finds the citations
    missing = [f"{source}: {path}" for source, path in refs
               if not (REPO / path).exists() and path not in EXAMPLES]
    assert not missing, "files cited but absent:\n" + "\n".join(missing)
