"""The ``brandgraph`` command, run as a real subprocess against the test database and Redis."""

from __future__ import annotations

import asyncio
import difflib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, Api

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _run(args: tuple[str, ...], env: dict[str, str] | None, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brandgraph", *args],
        env=dict(os.environ) if env is None else env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def cli(*args: str, env: dict[str, str] | None = None, limit: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``brandgraph ARGS`` (the environment points at the test database and Redis)."""
    return await asyncio.to_thread(_run, args, env, limit)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def failed_cleanly(result: subprocess.CompletedProcess[str], *mentions: str) -> None:
    """Non-zero exit, a readable message on stderr naming ``mentions``, no traceback."""
    assert result.returncode != 0, f"expected a failure\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip(), "expected a message on stderr"
    for word in mentions:
        assert word in result.stderr, f"{word!r} not in stderr:\n{result.stderr}"


def new_slug() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def cli_tenant() -> str:
    slug = new_slug()
    ok(await cli("create-tenant", "--slug", slug, "--name", f"CLI {slug}"))
    return slug


async def cli_token(slug: str, email: str, role: str) -> str:
    out = ok(await cli("token", "--tenant", slug, "--email", email, "--role", role)).stdout.strip()
    assert len(out.splitlines()) == 1, f"expected the token alone on stdout, got:\n{out}"
    return out


# --- create-tenant ----------------------------------------------------------------------


async def test_create_tenant_prints_id_and_refuses_duplicate_slug() -> None:
    from domain.tenancy.tenants import tenant_id_for_slug

    slug = new_slug()
    result = ok(await cli("create-tenant", "--slug", slug, "--name", "Acme CLI"))
    out = result.stdout.strip()
    assert UUID_RE.match(out), f"expected a tenant id alone on stdout, got {result.stdout!r}"
    assert await tenant_id_for_slug(slug) == uuid.UUID(out)

    again = await cli("create-tenant", "--slug", slug, "--name", "Acme again")
    failed_cleanly(again, slug)
    assert again.stdout.strip() == ""


# --- create-api-key ---------------------------------------------------------------------


async def test_create_api_key_prints_working_secret(api: Api) -> None:
    slug = await cli_tenant()
    result = ok(await cli("create-api-key", "--tenant", slug, "--role", "marketer"))
    secret = result.stdout.strip().splitlines()[-1].strip()
    assert secret.startswith("bg_"), f"expected the secret on the last line of stdout:\n{result.stdout}"

    data = await api.data("{ viewer { role allBrands tenant { slug } } }", token=secret)
    assert data["viewer"] == {"role": "MARKETER", "allBrands": True, "tenant": {"slug": slug}}


async def test_create_api_key_limited_to_a_brand(api: Api) -> None:
    slug = await cli_tenant()
    owner = await cli_token(slug, f"owner@{slug}.test", "owner")
    for brand in ("north", "south"):
        created = await api.data(
            "mutation($input: CreateBrandInput!) { createBrand(input: $input) { brand { slug } errors { message } } }",
            {"input": {"name": f"Brand {brand}", "slug": brand}},
            token=owner,
        )
        assert created["createBrand"] == {"brand": {"slug": brand}, "errors": []}

    result = ok(await cli("create-api-key", "--tenant", slug, "--role", "analyst", "--brand", "north"))
    secret = result.stdout.strip().splitlines()[-1].strip()
    data = await api.data("{ viewer { role allBrands brands { slug } } }", token=secret)
    assert data["viewer"] == {"role": "ANALYST", "allBrands": False, "brands": [{"slug": "north"}]}


async def test_create_api_key_unknown_tenant_or_brand_fails_clearly() -> None:
    missing = new_slug()
    failed_cleanly(await cli("create-api-key", "--tenant", missing, "--role", "marketer"), missing)

    slug = await cli_tenant()
    failed_cleanly(
        await cli("create-api-key", "--tenant", slug, "--role", "marketer", "--brand", "no-such-brand"),
        "no-such-brand",
    )


# --- token ------------------------------------------------------------------------------


async def test_token_creates_member_and_works(api: Api) -> None:
    slug = await cli_tenant()
    email = f"analyst@{slug}.test"
    first = await cli_token(slug, email, "analyst")
    assert first.count(".") == 2, f"not a JWT: {first!r}"
    data = await api.data("{ viewer { role tenant { slug } } }", token=first)
    assert data["viewer"] == {"role": "ANALYST", "tenant": {"slug": slug}}

    second = await cli_token(slug, email, "analyst")  # the member exists now
    data = await api.data("{ viewer { role } }", token=second)
    assert data["viewer"]["role"] == "ANALYST"


async def test_token_unknown_tenant_fails_clearly() -> None:
    missing = new_slug()
    failed_cleanly(await cli("token", "--tenant", missing, "--email", "x@example.test", "--role", "analyst"), missing)


# --- export-schema ----------------------------------------------------------------------


async def test_schema_graphql_is_current() -> None:
    exported = ok(await cli("export-schema", "-o", "-")).stdout
    checked_in = (Path(ROOT) / "schema.graphql").read_text()
    if exported != checked_in:
        diff = list(difflib.unified_diff(checked_in.splitlines(), exported.splitlines(),
                                         "schema.graphql (checked in)", "exported from the code", lineterm=""))
        shown = "\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else "")
        pytest.fail(
            "schema.graphql is out of date with the code: run `brandgraph export-schema` "
            f"and commit the result.\n{shown}",
            pytrace=False,
        )


# --- production configuration -----------------------------------------------------------


@pytest.mark.parametrize(("command", "needs"), [
    ("serve", ("DATABASE_URL", "REDIS_URL", "BRANDGRAPH_SECRET_KEY")),
    ("worker", ("DATABASE_URL", "REDIS_URL")),
    ("migrate", ("DATABASE_URL",)),  # migrations need the database only
])
async def test_production_refuses_to_start_without_services(command: str, needs: tuple, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DATABASE_APP_URL", "REDIS_URL", "BRANDGRAPH_SECRET_KEY")}
    env.update({"BRANDGRAPH_ENV": "production", "BRANDGRAPH_DATA_DIR": str(tmp_path / "data")})
    try:  # a generous deadline: one that waited on a connection would never exit by itself
        result = await cli(command, env=env, limit=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`brandgraph {command}` in production without DATABASE_URL/REDIS_URL did not exit")
    failed_cleanly(result, *needs)
    if command == "migrate":
        assert "REDIS_URL" not in result.stderr
    # it refused before starting anything: no embedded PostgreSQL or Redis, nothing in the data dir
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
    assert not (tmp_path / "data").exists(), "embedded services were started in production"


# --- migrate ----------------------------------------------------------------------------


async def test_migrate_is_idempotent() -> None:
    for _ in range(2):
        result = ok(await cli("migrate"))
        assert "migrations applied" in result.stdout
