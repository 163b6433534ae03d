"""The shape of the imports between the modules of ``src/domain``, read from the source (no import runs).

* No import cycle among the modules' top-level imports (those under ``if TYPE_CHECKING:`` excepted):
  types and enums both sides need live in a ``models.py``, events several modules announce in one
  small module.
* ``domain`` never imports ``graph``, anywhere (functions and ``TYPE_CHECKING`` blocks included).
* An import inside a function or method says why with a comment on its line or the line above
  (start-up cost, an optional dependency); any other import is at the top of the module. The
  same holds in ``src/graph``.
"""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
DOMAIN = SRC / "domain"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    path: Path
    line: int  # first line of the statement
    end_line: int
    target: str  # the imported module (``from a.b import c``: a.b.c when that is a module, else a.b)
    in_function: bool
    type_checking: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line}"


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(DOMAIN.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def _imports() -> list[Import]:
    out: list[Import] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))

        def visit(node: ast.AST, in_function: bool, type_checking: bool, module=module, path=path) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    visit(child, True, type_checking)
                elif isinstance(child, ast.If) and _is_type_checking(child):
                    for inner in child.body:
                        visit(ast.Module(body=[inner], type_ignores=[]), in_function, True)
                    for inner in child.orelse:
                        visit(ast.Module(body=[inner], type_ignores=[]), in_function, type_checking)
                elif isinstance(child, (ast.Import, ast.ImportFrom)):
                    for target in dict.fromkeys(_targets(child, module, path)):
                        out.append(Import(module, path, child.lineno, child.end_lineno or child.lineno, target,
                                          in_function, type_checking))
                else:
                    visit(child, in_function, type_checking)

        visit(tree, False, False)
    return out


IMPORTS = _imports()


def _cycles(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                connect(w)
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
            if len(component) > 1 or v in edges.get(v, {}):
                components.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    cycles = []
    for component in components:
        members, start = set(component), component[0]
        came_from: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in came_from:  # breadth first, back to the start
            following = []
            for v in frontier:
                for w in sorted(edges.get(v, {})):
                    if w in members and w not in came_from:
                        came_from[w] = v
                        following.append(w)
            frontier = following
        path = [start]
        while True:
            path.append(came_from[path[-1]])
            if path[-1] == start:
                break
        cycles.append(path[::-1])
    return cycles


def test_the_domain_modules_import_one_another_without_a_cycle() -> None:
    edges: dict[str, dict[str, Import]] = {}
    for imp in IMPORTS:
        if not imp.in_function and not imp.type_checking and imp.target in MODULES and imp.target != imp.module:
            edges.setdefault(imp.module, {}).setdefault(imp.target, imp)
    report = []
    for cycle in _cycles(edges):
        steps = [f"    {a} -> {b}  ({edges[a][b].where})" for a, b in zip(cycle, cycle[1:], strict=False)]
        report.append(" -> ".join(cycle) + "\n" + "\n".join(steps))
    assert not report, ("import cycles in src/domain (move what both sides need to a models.py or a small "
                        "module of its own):\n" + "\n".join(report))


def test_the_domain_never_imports_graph() -> None:
    offending = [f"{imp.where}: {imp.module} imports {imp.target}" for imp in IMPORTS
                 if imp.target == "graph" or imp.target.startswith("graph.")]
    assert not offending, "domain imports graph (graph imports domain, never the reverse):\n" + "\n".join(offending)


def _comments(path: Path) -> tuple[set[int], set[int]]:
    """The lines that have a comment, and those that are only a comment."""
    text = path.read_text()
    lines = text.splitlines()
    having = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(text).readline)
              if tok.type == tokenize.COMMENT}
    return having, {n for n in having if lines[n - 1].lstrip().startswith("#")}


def test_an_import_inside_a_function_says_why() -> None:
    comments: dict[Path, tuple[set[int], set[int]]] = {}
    offending = []
    for imp in IMPORTS:
        if not imp.in_function:
            continue
        having, only = comments.setdefault(imp.path, _comments(imp.path))
        # a comment on the statement's own line(s), or a comment line just above it
        if not (having & set(range(imp.line, imp.end_line + 1)) or imp.line - 1 in only):
            offending.append(f"{imp.where}: {imp.module} imports {imp.target} inside a function")
    for path in sorted((SRC / "graph").rglob("*.py")):  # the GraphQL adapter keeps the same rule
        having, only = _comments(path)
        for fn in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not (
                        having & set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
                        or node.lineno - 1 in only):
                    offending.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: an import inside a function")
    offending = list(dict.fromkeys(offending))
    assert not offending, ("imports inside functions without a comment saying why (start-up cost, an optional "
                           "dependency); move them to the top of the module:\n" + "\n".join(offending))


def test_the_graph_is_read() -> None:
    """The checks above look at real imports: the worker's entry module and the database module
    are found, with imports of their own."""
    assert {"domain.worker", "domain.platform.db", "domain.platform.outbox"} <= set(MODULES)
    importing = {imp.module for imp in IMPORTS}
    assert {"domain.worker", "domain.platform.db"} <= importing
    assert any(imp.module == "domain.platform.db" and imp.target == "domain.platform.outbox" for imp in IMPORTS)
