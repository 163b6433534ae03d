"""Every GraphQL example in the README and docs is valid against the schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import parse, validate

from graph.schema import build_schema

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```graphql\n(.*?)```", re.S)
SCHEMA = build_schema()._schema  # built once: relay fields cannot be built into two schemas
EXAMPLES = [(f"{p.name}#{i}", text) for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
            for i, text in enumerate(BLOCK.findall(p.read_text()))]


@pytest.mark.parametrize(("where", "document"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_is_valid_against_the_schema(where: str, document: str) -> None:
    errors = validate(SCHEMA, parse(document))
    assert not errors, f"{where}: {[e.message for e in errors]}"


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 6
