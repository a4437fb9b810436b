"""The floor plan: imports run one way, and no module imports itself through others.

Floors, lowest first: `audit` and `common` ← `classes` ← `generation` and `ent` ← `worker`
← `exports` and `privacy` ← `learning` ← `appreciation_site` (settings, URLs). A module
imports only from its own floor's package or from floors below; packages on one floor do not
import each other.
Every import counts, those inside functions too. Beside test_web_never_imports_torch.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOORS: list[set[str]] = [
    {"audit", "common"},
    {"classes"},
    {"generation", "ent"},
    {"worker"},
    {"exports", "privacy"},
    {"learning"},
    {"appreciation_site"},
]
FLOOR_OF = {package: level for level, floor in enumerate(FLOORS) for package in floor}


def _modules() -> dict[str, Path]:
    modules = {}
    for package in FLOOR_OF:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (a `from x import y` counts x.y when it is a module)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_imports_run_down_the_floors():
    wrong = []
    for module, targets in _graph().items():
        here = module.split(".")[0]
        for target in targets:
            there = target.split(".")[0]
            if there != here and FLOOR_OF[there] >= FLOOR_OF[here]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports up or across the floors:\n" + "\n".join(sorted(wrong))


def test_no_import_circle():
    graph = _graph()
    # A package's __init__ that hands on its modules' names is its face, not a room: skip the
    # edges into a package from its own modules (they import siblings, not the face).
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if module.startswith(target + "."):
                continue  # a module's own package face
            if state.get(target) == 1:
                circles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not circles, "import circles:\n" + "\n".join(circles)
