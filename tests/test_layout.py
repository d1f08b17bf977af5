"""The package's layout: modules in layers that import downwards only, no import cycle,
every module importable on its own, no figure-name special case outside the registry,
and no module over ~600 lines without a stated reason."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lthbook"

#: The layers of lthbook/__init__.py's docstring: a module may import from its own layer
#: (if that makes no cycle) and the layers below.
LAYERS: dict[str, int] = {
    **dict.fromkeys(["__init__", "_validation", "scales", "cache", "stats", "style", "cells", "executors"], 0),
    **dict.fromkeys(["teacher", "risk", "agd", "tensor_init", "geometry", "pruning", "convergence", "networks",
                     "training", "imp", "mnist", "paper_code", "batched"], 1),
    **dict.fromkeys(["presets", "synthetic_experiments", "imp_experiments", "claims", "laws", "problem_plots",
                     "geometry_plots", "convergence_plots", "synthetic_plots", "imp_plots"], 2),
    "registry": 3,
    "runner": 4,
    **dict.fromkeys(["timing", "investigations", "__main__", "exercises", "assignments", "otter_assign"], 5),
}


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def _imports(module: str) -> set[str]:
    """The lthbook modules that ``module`` imports (at any depth of its code: lazy imports count)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lthbook"):
            parts = node.module.split(".")
            found.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
    return found - {"__init__"} if module != "__init__" else found


def test_every_module_has_a_layer():
    assert set(_modules()) == set(LAYERS), "add new modules to LAYERS (and to lthbook/__init__.py's docstring)"


def test_imports_go_downwards_only():
    bad = [(m, dep) for m in _modules() for dep in _imports(m)
           if dep in LAYERS and LAYERS[dep] > LAYERS[m]]
    assert not bad, f"imports from a higher layer: {bad}"


def test_no_import_cycle():
    graph = {m: {d for d in _imports(m) if d in LAYERS and d != m} for m in _modules()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(path + [node, nxt])}")
            if nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


@pytest.mark.parametrize("module", [m for m in _modules() if m not in ("__init__", "__main__")])
def test_each_module_imports_alone(module):
    done = subprocess.run([sys.executable, "-c", f"import lthbook.{module}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_figure_name_special_case_outside_the_registry():
    """``if name == "fig6"`` and the like belong in lthbook/registry.py's records."""
    pattern = re.compile(r"""(==|!=|\bin)\s*\(?\s*["']fig\d["']""")
    offenders = []
    for module in _modules():
        if module in ("registry",):
            continue
        for number, line in enumerate((PACKAGE / f"{module}.py").read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{module}.py:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_no_module_over_600_lines_without_a_reason():
    long = []
    for module in _modules():
        text = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if len(text.splitlines()) > 650 and "Length:" not in doc:
            long.append(f"{module}.py ({len(text.splitlines())} lines)")
    assert not long, f"split these or state the reason ('Length: ...') in the module docstring: {long}"
