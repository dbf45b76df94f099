# The package's import graph, read with `ast` (imports inside functions included).

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "engine"
# Layers that must not be reached from below: the core never imports the service or
# the commands; the governance tools and the policy tests never import the commands.
FORBIDDEN = {
    "core": ("engine.service", "engine.commands"),
    "engine.governance": ("engine.service", "engine.commands"),
    "engine.testing": ("engine.service", "engine.commands"),
    "engine.portal": ("engine.service", "engine.commands"),  # the service mounts it and hands it the trail
    "engine.service": ("engine.commands",),
}


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _type_only(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` blocks never run: a name they import is for annotations only."""
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The package's modules imported anywhere in `tree` but under `if TYPE_CHECKING:`."""
    found = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_only(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from engine import ast` imports the submodule, not all of engine/__init__.py
            submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(node.module)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[name] = imports_of(tree, modules) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle once, as the path that closes it (depth-first, three colours)."""
    state: dict[str, str] = {}
    path: list[str] = []
    found = []

    def visit(node: str) -> None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def layer(module: str) -> str:
    if module == "engine.__main__":  # `python -m engine`: the command line
        return "engine.commands"
    for name in ("engine.governance", "engine.testing", "engine.service", "engine.commands"):
        if module == name or module.startswith(name + "."):
            return name
    return "core"


def test_no_module_imports_another_in_a_cycle():
    assert cycles(import_graph()) == []


def test_no_layer_reaches_a_layer_above_it():
    wrong = sorted((source, target) for source, targets in import_graph().items() for target in targets
                   if target.startswith(FORBIDDEN.get(layer(source), ())))
    assert wrong == []


@pytest.mark.parametrize(("source", "cycle"), [
    ("import engine.b\n", True),
    ("def late():\n    from engine import b\n", True),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from engine.b import B\n", False),
], ids=["top-level", "inside-a-function", "type-only"])
def test_the_walk_counts_every_import_that_runs(source, cycle):
    modules = {"engine": Path(), "engine.a": Path(), "engine.b": Path()}
    graph = {"engine": set(), "engine.a": imports_of(ast.parse(source), modules), "engine.b": {"engine.a"}}
    assert bool(cycles(graph)) is cycle


def test_the_command_line_is_built_without_the_web_service():
    """Every `engine` command builds the whole command line first: importing the web
    service (FastAPI, uvicorn, the audit trail) for it would slow `engine check`, `engine
    diff` and the rest by most of a second each."""
    import subprocess
    import sys

    code = ("import sys\nfrom engine.commands.main import _parser\n_parser()\n"
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'engine.service.app', 'engine.service.audit') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=PACKAGE.parent)
    assert done.stdout.strip() == "[]"
