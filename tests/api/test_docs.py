"""Every GraphQL example in the README and docs is valid against the schema."""

from __future__ import annotations

import re

import pytest
from graphql import parse, validate

from conftest import ROOT
from graph.schema import build_schema

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


def readme_paragraph(start: str) -> str:
    text = (ROOT / "README.md").read_text()
    at = text.index(start)
    return " ".join(text[at:text.index("\n\n", at)].split())


@pytest.mark.parametrize("start", ["**A request.**", "**A job.**"])
def test_readme_paths_go_through_the_outbox(start: str) -> None:
    """Events and job messages are outbox rows written in the transaction and relayed after the
    commit: the README's request and job paths say so, and do not describe sending after commit."""
    paragraph = readme_paragraph(start)
    assert "outbox row" in paragraph and "outbox relay" in paragraph, paragraph
    assert "enqueues a Dramatiq message" not in paragraph and "event is published" not in paragraph, paragraph
