"""The runtime's modules import each other in one direction: no circle, lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stepwire

PACKAGE_ROOT = Path(stepwire.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every stepwire module a module imports at run time, in any function too."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            found.add(base)
            # `from pkg import name` may import the submodule pkg.name.
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text("utf-8"))
        targets = set()
        for imported in _imports(tree, name, path.name == "__init__.py"):
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            parts = imported.split(".")
            for depth in range(2, len(parts) + 1):
                candidate = ".".join(parts[:depth])
                if candidate in files and candidate != name:
                    targets.add(candidate)
        # A module's own package is initialised before it: not an edge of its own.
        graph[name] = {t for t in targets if not name.startswith(t + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "stepwire.step_launcher" in graph["stepwire.orchestrators.base_orchestrator"]
    assert "stepwire.pipeline_ir" in graph["stepwire.step_launcher"]


def test_no_import_circle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_detector_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("stepwire.step_launcher", "stepwire.orchestrators.base_orchestrator"),
        ("stepwire.step_launcher", "stepwire.entrypoints.step_entrypoint_configuration"),
        ("stepwire.entrypoints.references", "stepwire.stack"),
        ("stepwire.pipeline_ir", "stepwire.step_launcher"),
        ("stepwire.stack_config", "stepwire.stack"),
        ("stepwire.codec_runtime", "stepwire.entrypoints.codec"),
    ],
)
def test_layers_point_down(lower: str, upper: str) -> None:
    """A lower layer never reaches an upper one, directly or through others."""
    graph = _graph()
    seen, todo = set(), [lower]
    while todo:
        node = todo.pop()
        for target in graph.get(node, ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert upper not in seen
