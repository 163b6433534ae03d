"""The same document, sent again, is validated once: its validation is cached (1024 documents),
with the query-depth, alias and token limits still applied to every document."""

from __future__ import annotations

import uuid

import strawberry

from domain.config import load_settings
from graph.extensions import extensions, validation_cache_info


@strawberry.type
class Node:
    @strawberry.field
    def child(self) -> Node:
        return Node()

    @strawberry.field
    def name(self) -> str:
        return "n"


@strawberry.type
class Query:
    @strawberry.field
    def root(self) -> Node:
        return Node()


settings = load_settings({})
schema = strawberry.Schema(query=Query, extensions=extensions(settings))


async def test_a_repeated_document_hits_the_validation_cache() -> None:
    query = f"query Q{uuid.uuid4().hex} {{ root {{ name }} }}"  # a document no test validated before
    first = validation_cache_info()
    assert (await schema.execute(query)).errors is None
    second = validation_cache_info()
    assert (second.misses, second.hits) == (first.misses + 1, first.hits)
    for _ in range(3):
        assert (await schema.execute(query)).errors is None
    third = validation_cache_info()
    assert (third.misses, third.hits) == (second.misses, second.hits + 3)
    assert third.maxsize == 1024


async def test_the_limits_still_apply_to_cached_documents() -> None:
    deep = "{ root { " + "child { " * settings.max_query_depth + "name" + " }" * settings.max_query_depth + " } }"
    aliases = "{ " + " ".join(f"a{i}: root {{ name }}" for i in range(settings.max_aliases + 1)) + " }"
    tokens = "{ root { " + "name " * settings.max_query_tokens + "} }"
    for query, needle in ((deep, "exceeds maximum operation depth"), (aliases, "aliases"),
                          (tokens, f"more than {settings.max_query_tokens} tokens")):
        for _ in range(2):  # refused the first time and again from the cache
            result = await schema.execute(query)
            assert result.errors and needle in result.errors[0].message, result.errors
