"""GraphQL over HTTP in tests, beyond ``conftest.Api``: requests it does not make (a body
encoded here, a multipart upload), and reading answers: error codes, payload errors, and whether
an answer names something it must not (a "leak")."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from conftest import Api


async def post_json(api: Api, query: str, variables: dict[str, Any], *, token: str,
                    headers: dict[str, str] | None = None) -> httpx.Response:
    """POST /graphql with the body encoded by ``json.dumps``: its ASCII escapes carry what
    ``Api.post`` cannot send, lone surrogates among them."""
    body = json.dumps({"query": query, "variables": variables})
    return await api.http.post("/graphql", content=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})})


async def upload(api: Api, doc: str, variables: dict[str, Any], file_variable: str, content: bytes,
                 *, token: str, filename: str = "upload.csv") -> httpx.Response:
    """``doc`` as a GraphQL multipart request: ``content`` (a CSV file) is the variable
    ``file_variable``."""
    return await api.http.post("/graphql", headers={"Authorization": f"Bearer {token}"}, data={
        "operations": json.dumps({"query": doc, "variables": {**variables, file_variable: None}}),
        "map": json.dumps({"0": [f"variables.{file_variable}"]}),
    }, files={"0": (filename, content, "text/csv")})


async def warm(api: Api, token: str, *, brand: str | None = None, within: float = 5) -> dict[str, Any]:
    """Ask ``{ viewer { role } }`` until ``api`` answers ``token`` (and ``brand``) from its
    authentication cache, i.e. with no SQL statement at all; its ``data``. The requests that
    follow with that credential then count only their operation's statements in
    ``extensions.sqlStatements``, which covers the whole request, authentication included."""
    deadline = time.monotonic() + within
    while True:
        r = await api.post("{ viewer { role } }", token=token, brand=brand)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["extensions"]["sqlStatements"] == 0:
            assert not body.get("errors"), body
            return body["data"]
        assert time.monotonic() < deadline, f"{api.base_url} never answered from its cache: {body}"
        await asyncio.sleep(0.02)


def check(ok: bool, d: Any) -> None:
    """``assert ok, d``, for the lambdas of row tables."""
    assert ok, d


def codes(body: dict[str, Any]) -> list[str | None]:
    """A query's GraphQL errors as their ``extensions.code``."""
    return [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]


def errs(body: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """A query's GraphQL errors as (code, field)."""
    return [((e.get("extensions") or {}).get("code"), (e.get("extensions") or {}).get("field"))
            for e in body.get("errors") or []]


def perrs(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    """A mutation payload's errors as (field, code)."""
    return [(e["field"], e["code"]) for e in payload["errors"]]


def payload_codes(payload: dict[str, Any]) -> list[str]:
    """A mutation payload's errors as their codes."""
    return [e["code"] for e in payload["errors"]]


def found(text: str, markers: list[str], sent: Any = None) -> list[str]:
    """The markers in ``text``, leaving out what the caller sent itself."""
    mine = json.dumps(sent) if sent is not None else ""
    return [m for m in markers if m in text and m not in mine]


def leaks(body: Any, markers: list[str], sent: Any = None) -> list[str]:
    """The markers in ``body`` (any JSON value), leaving out what the caller sent itself."""
    return found(json.dumps(body), markers, sent)


def form_leaks(body: Any, markers: list[tuple[str, ...]],
               variables: dict[str, Any] | None = None) -> list[str]:
    """The things named in ``body``, each given as the forms it may take (raw uuid, global id,
    name…), except those the caller itself put in the request (an error may echo the id it was
    given)."""
    given, said = json.dumps(variables or {}), json.dumps(body)
    return [f for forms in markers if not any(x in given for x in forms) for f in forms if f in said]
