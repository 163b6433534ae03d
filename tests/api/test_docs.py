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


def _actors() -> dict[str, str]:
    from domain.actors import load_actors
    from domain.platform.broker import broker

    load_actors()
    return {name: actor.queue_name for name, actor in broker.actors.items()}


def _paragraph(text: str, start: str) -> str:
    at = text.index(start)
    return text[at:text.find("\n\n", at)]


def test_every_actor_and_queue_is_documented() -> None:
    """The actor table of docs/architecture.md names every actor the worker runs, and both
    queue lists (README "Past one machine", architecture "Workers") name every queue."""
    actors = _actors()
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    table = _paragraph(architecture, "| Actor | Queue |")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w.]+)` \| `(\w+)` \|", table, re.M)}
    assert rows == actors, (rows, actors)
    for text, start in ((ROOT / "README.md").read_text(), "Queues are"), (architecture, "The queues are"):
        sentence = _paragraph(text, start).split(";")[0]
        listed = set(re.findall(r"`(\w+)`\s+\(", sentence))
        assert listed == set(actors.values()), (start, listed)


DOC_FILES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "bench" / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]
TOP = "domain|graph|brandgraph|tests|bench|migrations|alembic|docs"
PATH = re.compile(rf"(?<![\w/.])((?:src/)?(?:{TOP})/[\w/.-]*\w)")


def _missing(path: str) -> bool:
    """A path the docs name: a file or folder (from the root or src/), or ``module.name`` for
    a name a module defines (``domain/audit/service.record``)."""
    for base in (ROOT, ROOT / "src"):
        if (base / path).exists():
            return False
        module, _, name = path.rpartition(".")
        file = base / f"{module}.py"
        if name and file.exists() and re.search(rf"^\s*(?:async def|def|class) {name}\b|^{name}\b",
                                                file.read_text(), re.M):
            return False
    return True


def test_every_path_the_docs_name_exists() -> None:
    missing = [f"{doc.relative_to(ROOT)}:{n}: {m.group(1)}"
               for doc in DOC_FILES for n, line in enumerate(doc.read_text().splitlines(), 1)
               for m in PATH.finditer(line)
               if "NNNN" not in m.group(1) and line[m.end():m.end() + 1] not in ("<", "*", "{")
               and _missing(m.group(1).rstrip("."))]
    assert not missing, "\n".join(missing)
