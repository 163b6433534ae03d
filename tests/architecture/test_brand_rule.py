"""The brand rule has one home: ``src/domain/tenancy/scoping.py``.

Which brands a principal may see and touch is decided there and nowhere else. Every module under
src/domain and src/graph is parsed; outside the home, none may read a principal's brand grants
(``brand_ids``, ``all_brands``), call a brand check on the principal itself (``may_use_brand``),
or define a function of the rule's own names (a second copy of it). Each offence is named as
file:line.
"""

from __future__ import annotations

import ast

import pytest

from conftest import ROOT

SRC = ROOT / "src"
HOME = SRC / "domain" / "tenancy" / "scoping.py"
SCANNED = [p for top in ("domain", "graph") for p in sorted((SRC / top).rglob("*.py"))]

GRANTS = {"brand_ids", "all_brands"}
RULE_NAMES = {"may_use_brand", "require_brand", "check_brand", "brand_filter", "in_brands",
              "grants_clause", "visible_clause", "customer_visible_clause", "load_brand_owned",
              "_brand_scope"}


def _principal_like(node: ast.expr, in_principal_class: bool) -> bool:
    """``principal``, ``p``, ``info.context.principal``, ``self.principal``,
    ``limited_principal``...; ``self`` within the class that defines Principal."""
    if isinstance(node, ast.Name):
        name = node.id
        if name == "self":
            return in_principal_class
    elif isinstance(node, ast.Attribute):
        name = node.attr
    else:
        return False
    return name == "p" or "principal" in name.lower()


class _Offences(ast.NodeVisitor):
    def __init__(self, where: str) -> None:
        self.where = where
        self.found: list[str] = []
        self.classes: list[str] = []

    def _add(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.where}:{node.lineno}: {what}")  # type: ignore[attr-defined]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node.name)
        self.generic_visit(node)
        self.classes.pop()

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in RULE_NAMES:
            self._add(node, f"defines {node.name}(), a second copy of the brand rule")
        self.generic_visit(node)

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Attribute(self, node: ast.Attribute) -> None:
        home = isinstance(node.value, ast.Name) and node.value.id == "scoping"
        if node.attr == "may_use_brand" and not home:
            self._add(node, "checks a brand itself (.may_use_brand): ask domain.tenancy.scoping")
        elif node.attr in GRANTS and _principal_like(node.value, "Principal" in self.classes):
            self._add(node, f"reads the principal's grants (.{node.attr}): "
                            "ask domain.tenancy.scoping")
        self.generic_visit(node)


def offences(source: str, where: str) -> list[str]:
    visitor = _Offences(where)
    visitor.visit(ast.parse(source, filename=where))
    return visitor.found


def test_the_home_exists_and_states_the_rule() -> None:
    text = HOME.read_text()
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert "brand rule" in doc and "NOT_FOUND" in doc and "null" in doc, doc
    assert len(SCANNED) > 50, SCANNED


@pytest.mark.parametrize("source", [
    "def f(principal):\n    return principal.brand_ids is None\n",
    "def f(info, b):\n    return info.context.principal.may_use_brand(b)\n",
    "def f(p, stmt, c):\n    return stmt.where(c.in_(p.brand_ids))\n",
    "def _brand_scope(principal):\n    return []\n",
    "class Principal:\n    def may(self, b):\n        return b in self.brand_ids\n",
])
def test_the_check_sees_an_offence(source: str) -> None:
    assert offences(source, "example.py"), source


def test_no_module_but_the_home_decides_brands() -> None:
    found = []
    for path in SCANNED:
        if path == HOME:
            continue
        found += offences(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, ("the brand rule lives in src/domain/tenancy/scoping.py only:\n"
                       + "\n".join(found))
