"""Reading a trusted-document manifest: ``{"<sha256 hex>": "<document>", …}`` or Apollo's
persisted query manifest (``{"format": "apollo-persisted-query-manifest", "version": 1,
"operations": [{"id", "body", "name", "type"}, …]}``). Each entry's id must be the SHA-256 of
the document's exact UTF-8 text; the server computes it again and refuses any entry whose id
does not match, naming it, and then the whole manifest."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, OperationDefinitionNode, parse

from domain.config import get_settings
from domain.errors import ErrorCode, Validator

APOLLO_FORMAT = "apollo-persisted-query-manifest"
MAX_DOCUMENTS = 5_000  # entries in one manifest
MAX_DOCUMENT_CHARS = 100_000  # characters of one document
HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TYPES = {"query", "mutation", "subscription"}


@dataclass(frozen=True)
class Entry:
    id: str  # SHA-256 hex of the text
    body: str
    name: str | None
    operation_type: str | None
    field: str  # where the entry is in the manifest, for errors


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def document_id(raw: str) -> str | None:
    """The hex digest in ``sha256:<hex>`` (or a bare hex digest); None when it is neither."""
    value = raw[len("sha256:"):] if raw.startswith("sha256:") else raw
    return value if HEX64.match(value) else None


def _raw_entries(v: Validator, manifest: Any) -> list[tuple[str, Any, Any, Any, Any]]:
    """(field, id, body, name, type) of every entry, before any check of their values."""
    if not isinstance(manifest, dict):
        v.add("manifest", "a manifest is a JSON object")
        return []
    if "format" in manifest:
        if manifest.get("format") != APOLLO_FORMAT:
            v.add("manifest.format", f"format must be {APOLLO_FORMAT!r}")
            return []
        if manifest.get("version") != 1:
            v.add("manifest.version", "only version 1 of Apollo's manifest format is read")
            return []
        operations = manifest.get("operations")
        if not isinstance(operations, list):
            v.add("manifest.operations", "operations must be a list")
            return []
        out = []
        for i, op in enumerate(operations):
            field = f"manifest.operations[{i}]"
            if not isinstance(op, dict):
                v.add(field, f"{field} must be an object with id, body, name and type")
                continue
            out.append((field, op.get("id"), op.get("body"), op.get("name"), op.get("type")))
        return out
    return [(f"manifest.{key}", key, body, None, None) for key, body in manifest.items()]


def read_manifest(manifest: Any, check: Callable[[Any], str | None] | None = None) -> list[Entry]:
    """The manifest's entries, each checked; raises ``ValidationFailed`` naming every bad entry.
    ``check(document)`` (a parsed document) says why the API would refuse it, if it would."""
    v = Validator()
    raw = _raw_entries(v, manifest)
    if len(raw) > MAX_DOCUMENTS:
        v.add("manifest", f"a manifest holds at most {MAX_DOCUMENTS} documents", ErrorCode.LIMIT_EXCEEDED)
        raw = []
    elif not raw and not v.errors:
        v.add("manifest", "the manifest lists no document", ErrorCode.REQUIRED)
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    for field, raw_id, body, name, kind in raw:
        if not isinstance(raw_id, str) or document_id(raw_id.strip()) is None:
            v.add(field, f"{field}: the id must be a SHA-256 digest in lower-case hex (optionally 'sha256:')")
            continue
        if not isinstance(body, str) or not body.strip():
            v.add(field, f"{field}: the document text is missing", ErrorCode.REQUIRED)
            continue
        if "\x00" in body or len(body) > MAX_DOCUMENT_CHARS:
            v.add(field, f"{field}: a document has no NUL character and at most {MAX_DOCUMENT_CHARS} characters")
            continue
        try:
            body.encode("utf-8")
        except UnicodeEncodeError:
            v.add(field, f"{field}: the document is not valid UTF-8 text")
            continue
        doc_id = document_id(raw_id.strip())
        actual = sha256_hex(body)
        if actual != doc_id:
            label = f" ({name})" if isinstance(name, str) and name else ""
            v.add(field, f"{field}{label}: the SHA-256 of the document's text is {actual}, not {doc_id}",
                  ErrorCode.HASH_MISMATCH)
            continue
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            v.add(field, f"{field}: name must be text of at most 200 characters")
            continue
        if kind is not None and (not isinstance(kind, str) or kind not in _TYPES):
            v.add(field, f"{field}: type must be one of query, mutation, subscription")
            continue
        try:  # the request's own token limit: a document past it could never run
            document = parse(body, max_tokens=get_settings().max_query_tokens)
        except GraphQLError as e:
            v.add(field, f"{field}: the document does not parse: {e.message}")
            continue
        except RecursionError:
            v.add(field, f"{field}: the document is nested too deeply")
            continue
        reason = check(document) if check is not None else None
        if reason is not None:
            v.add(field, f"{field}: the document does not validate against the schema: {reason}")
            continue
        if kind is None:
            ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            kind = ops[0].operation.value if len(ops) == 1 else None
            if name is None and len(ops) == 1 and ops[0].name is not None:
                name = ops[0].name.value
        if doc_id in seen:
            continue  # the same text listed twice
        seen[doc_id] = field
        entries.append(Entry(doc_id, body, name, kind, field))
    v.check()
    return entries
