"""The layout's rules, read from the source (ast: nothing here is imported or run), so that
they stay true as the code grows:

- the import graph of engine/, api/, devstack/ and loadtests/ has no cycle (every import
  that runs counts: at the top, inside a function, a package's ``__init__`` on the way;
  what sits under ``if TYPE_CHECKING:`` does not run, so it does not);
- devstack/ and loadtests/ import at the top of a module, not inside a function (a cycle
  hidden there is still a cycle), but for a heavy optional dependency (matplotlib);
- no module takes another's private name (``from m import _x``, ``m._x``);
- nothing in tests/ imports loadtests/: the tests start Redis, a cluster and the API through
  devstack/, and run the load tests by their command line;
- no file of engine/, api/, devstack/ or loadtests/ is longer than 450 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "api", "devstack", "loadtests")
TOOLING = ("devstack", "loadtests")
MAX_LINES = 450
# Imported inside the one function that draws a chart: ~0.5 s and a dev-only dependency.
HEAVY_OPTIONAL = {"matplotlib", "matplotlib.pyplot"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST, in_function: bool = False
                 ) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """(statement, inside a function) for each import statement that can run."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and is_type_checking(child):
            yield from import_nodes(ast.Module(body=child.orelse, type_ignores=[]), in_function)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function
        inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from import_nodes(child, inner)


def targets(node: ast.Import | ast.ImportFrom, name: str) -> list[str]:
    """The modules an import statement of module ``name`` loads: ``from a import b`` loads a,
    and a.b too when that is a module."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:  # relative: from the package of ``name`` (a package's own for __init__)
        parts = name.split(".") if MODULES[name].name == "__init__.py" else name.split(".")[:-1]
        base = ".".join([*parts[:len(parts) - node.level + 1], *([base] if base else [])])
    return [base, *(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)]


def ours(target: str) -> list[str]:
    """``target`` and its packages, the ones that are modules of ours."""
    parts = target.split(".")
    return [m for i in range(1, len(parts) + 1) if (m := ".".join(parts[:i])) in MODULES]


def parsed(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text(), str(MODULES[name]))


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for name in MODULES:
        for node, _ in import_nodes(parsed(name)):
            for target in targets(node, name):
                edges[name] |= {m for m in ours(target) if m != name}  # a.b.c: a, a.b too
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                group.append(w)
            group.append(v)
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    assert sum(len(e) for e in edges.values()) > 200  # the graph is read, not empty
    assert "api.asgi" in edges["api.app"]
    assert cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", TOOLING)
def test_tooling_imports_at_the_top(package: str) -> None:
    inside = [f"{MODULES[name].relative_to(REPO)}:{node.lineno}"
              for name in MODULES if name.split(".")[0] == package
              for node, in_function in import_nodes(parsed(name))
              if in_function and not set(targets(node, name)) <= HEAVY_OPTIONAL]
    assert inside == []


def private_uses(name: str) -> list[str]:
    tree = parsed(name)
    aliases: dict[str, str] = {}  # local name -> our module it is bound to
    found = []
    for node, _ in import_nodes(tree):
        if isinstance(node, ast.Import):
            for a in node.names:  # import a.b binds a; import a.b as x binds x to a.b
                bound = a.name if a.asname else a.name.split(".")[0]
                if bound in MODULES:
                    aliases[a.asname or bound] = bound
        elif ours(targets(node, name)[0]):
            base = targets(node, name)[0]
            for a in node.names:
                if f"{base}.{a.name}" in MODULES:
                    aliases[a.asname or a.name] = f"{base}.{a.name}"
                elif a.name.startswith("_") and not a.name.startswith("__"):
                    found.append(f"from {base} import {a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            found.append(f"{node.value.id}.{node.attr}")
    return [f"{MODULES[name].relative_to(REPO)}: {use}" for use in found]


def test_no_module_takes_another_ones_private_names() -> None:
    assert [use for name in MODULES for use in private_uses(name)] == []


def test_tests_do_not_import_loadtests() -> None:
    found = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for node, _ in import_nodes(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            found += [f"{path.name}:{node.lineno}" for n in names
                      if n.split(".")[0] == "loadtests"]
    assert found == []


def test_no_file_is_over_450_lines() -> None:
    long = {str(p.relative_to(REPO)): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}
