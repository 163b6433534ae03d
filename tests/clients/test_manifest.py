"""Reading manifests, without the server: both formats, every hash computed again, and each bad
entry named."""

from __future__ import annotations

import hashlib

import pytest

from domain.clients.manifest import document_id, read_manifest
from domain.errors import ValidationFailed


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def refused(manifest: object) -> list[tuple[str | None, str]]:
    with pytest.raises(ValidationFailed) as info:
        read_manifest(manifest)
    return [(e.field, e.code.value) for e in info.value.errors]


def test_both_formats_give_the_same_entries() -> None:
    doc = "query Hello { viewer { role } } # héllo, ünïcode"  # non-ASCII: hashed as UTF-8
    plain = read_manifest({sha(doc): doc})
    apollo = read_manifest({"format": "apollo-persisted-query-manifest", "version": 1,
                            "operations": [{"id": sha(doc), "body": doc, "name": "Hello", "type": "query"}]})
    assert [(e.id, e.body, e.name, e.operation_type) for e in plain] == [(sha(doc), doc, "Hello", "query")]
    assert [(e.id, e.body, e.name, e.operation_type) for e in apollo] == [(sha(doc), doc, "Hello", "query")]
    assert read_manifest({f"sha256:{sha(doc)}": doc})[0].id == sha(doc)


def test_every_wrong_entry_is_named() -> None:
    good, other = "{ viewer { role } }", "{ brands { id } }"
    assert refused({sha(good): good, sha(other): good, "xyz": good}) == [
        (f"manifest.{sha(other)}", "HASH_MISMATCH"), ("manifest.xyz", "INVALID")]
    assert sorted(refused({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": sha(good), "body": good}, {"id": sha(good + " "), "body": good}, "nope",
        {"id": sha("{ x"), "body": "{ x"}]})) == [
        ("manifest.operations[1]", "HASH_MISMATCH"), ("manifest.operations[2]", "INVALID"),
        ("manifest.operations[3]", "INVALID")]


@pytest.mark.parametrize(("manifest", "field"), [
    ([], "manifest"),
    ({}, "manifest"),
    ({"format": "something-else", "version": 1, "operations": []}, "manifest.format"),
    ({"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}, "manifest.version"),
    ({"format": "apollo-persisted-query-manifest", "version": 1, "operations": {}}, "manifest.operations"),
])
def test_a_malformed_manifest_is_refused(manifest: object, field: str) -> None:
    assert [f for f, _ in refused(manifest)] == [field]


def test_document_ids() -> None:
    h = sha("x")
    assert document_id(f"sha256:{h}") == h and document_id(h) == h
    assert document_id(f"sha256:{h.upper()}") is None and document_id("md5:abc") is None


def test_an_entry_of_the_wrong_shape_or_too_deep_is_named_not_a_crash() -> None:
    good = "{ viewer { role } }"
    deep = "{ a " * 3000 + "}" * 3000  # past the parser's recursion and the token limit
    assert refused({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": sha(good), "body": good, "type": []}, {"id": sha(deep), "body": deep}]}) == [
        ("manifest.operations[0]", "INVALID"), ("manifest.operations[1]", "INVALID")]
