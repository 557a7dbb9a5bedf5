"""The layering the README draws, checked on the source: imports only go down, no file imports
itself back through others, and the installed package has one import namespace."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folder in the repository -> import name (pyproject's [tool.setuptools.package-dir]).
FOLDERS = {
    "dinostream": "dinostream",
    "ingest": "dinostream.ingest",
    "embedding": "dinostream.embedding",
    "analytics": "dinostream.analytics",
    "sinks": "dinostream.sinks",
    "dashboard": "dinostream.dashboard",
}
# What each layer may import besides itself. The assembly (the top of dinostream/) may import all.
ALLOWED = {
    "core": set(),
    "ingest": {"core"},
    "embedding": {"core", "ingest"},
    "analytics": {"core"},
    "sinks": {"core"},
    "dashboard": {"core", "ingest", "embedding", "analytics", "sinks"},
    "assembly": {"core", "ingest", "embedding", "analytics", "sinks", "dashboard"},
}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = rel[:-1] if rel[-1] == "__init__" else rel
            mods[".".join((package, *parts))] = path
    return mods


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED and parts[1] != "assembly" else "assembly"


def _imports(module: str, path: Path) -> set[str]:
    """Modules of ours that `module` imports anywhere (top level or inside functions), except
    under `if TYPE_CHECKING:`, which never runs."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [base, *(f"{base}.{a.name}" for a in child.names)]
            found.update(n for n in names if n in MODULES and n not in (module, "dinostream"))
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_the_graph_sees_our_imports() -> None:
    # A check that finds nothing proves nothing: the parser must see the known edges.
    assert "dinostream.core.records" in GRAPH["dinostream.embedding.stage"]
    assert "dinostream.service" in GRAPH["dinostream.cli"]


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_only_go_down(layer: str) -> None:
    wrong = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if _layer(m) == layer
        for t in targets
        if _layer(t) != layer and _layer(t) not in ALLOWED[layer]
    )
    assert not wrong, f"{layer} imports layers it must not: {wrong}"


def test_no_import_cycles_between_files() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            strongconnect(v)
    assert not cycles, f"files that import each other: {cycles}"


def test_one_import_namespace(tmp_path: Path) -> None:
    """Outside the repository (so the folders are not on the path), the stages import only as
    dinostream.*: nothing generic such as `analytics` is installed."""

    def imports(name: str) -> bool:
        run = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True)
        return run.returncode == 0

    assert imports("dinostream.analytics") and imports("dinostream.ingest.source")
    for generic in ("analytics", "ingest", "sinks", "dashboard", "embedding", "generators"):
        assert not imports(generic), f"`import {generic}` works: it landed in site-packages"


def test_the_roles_import_torch_only_with_the_model(tmp_path: Path) -> None:
    """The service (every role) imports without torch and transformers: the index, gateway and
    worker pods never load a model (the gateway's image queries load it on first use), and torch
    alone is ~300 MB and seconds of start. The model's own modules do import it."""
    code = (
        "import sys, dinostream.service, dinostream.cli, dinostream.asset_analysis, dinostream.embedding.model_dims\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'}))\n"
        "import dinostream.embedding.stage\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[:2] == ["[]", "['torch', 'transformers']"], run.stdout
