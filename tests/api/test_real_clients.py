"""Real clients against the running API: Apollo Client (its HttpLink, BatchHttpLink and
persisted-queries link, with and without GET for hashed queries), graphql-ws's client, and
graphql-http's audit of the GraphQL-over-HTTP spec. Each is a Node script in ``tests/real_clients/``
(pinned in its package-lock.json) that exits 0 when every check in it held.

``npm ci`` runs once, and again only when ``package-lock.json`` changes. Without ``node`` (20 or
newer) and ``npm`` on PATH the tests are skipped with that reason; CI has them, and its skip check
does not allow the reason (README, "Tests")."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, TenantFixture

CLIENTS = ROOT / "tests" / "real_clients"
NODE, NPM = shutil.which("node"), shutil.which("npm")


def _node_major() -> int:
    out = subprocess.run([NODE or "node", "--version"], capture_output=True, text=True, check=True).stdout
    return int(out.strip().lstrip("v").split(".")[0])


@pytest.fixture(scope="module")
def clients() -> None:
    """The clients' packages installed (``npm ci``), once per lock file."""
    if not NODE or not NPM or _node_major() < 20:
        reason = "needs node 20 or newer and npm on PATH (the real-client tests run Apollo Client and graphql-ws)"
        print(reason)
        pytest.skip(reason)
    installed = CLIENTS / "node_modules" / ".package-lock.json"  # npm ci writes it last
    lock = CLIENTS / "package-lock.json"
    # two test sessions at once (CI runs two) install one after the other, the second not at all
    with (CLIENTS / ".install.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
            done = subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=CLIENTS, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"


async def run(script: str, *args: str, api_url: str, token: str) -> str:
    """``node <script> <args>`` against the API; its output. Fails the test unless it exits 0."""
    proc = await asyncio.create_subprocess_exec(
        NODE or "node", script, *args, cwd=CLIENTS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "BRANDGRAPH_URL": f"{api_url}/graphql", "BRANDGRAPH_TOKEN": token})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} did not finish within 120 s") from None
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"{script} {' '.join(args)} failed:\n{text}"
    return text


async def test_apollo_http_link(clients: None, api_url: str, tenant: TenantFixture) -> None:
    assert "ok: HttpLink" in await run("http-link.mjs", api_url=api_url, token=tenant.owner_token)


async def test_apollo_batch_http_link(clients: None, api_url: str, tenant: TenantFixture) -> None:
    assert "ok: BatchHttpLink" in await run("batch-link.mjs", api_url=api_url, token=tenant.owner_token)


@pytest.mark.parametrize("args", [(), ("--get",)], ids=["POST", "GET for hashed queries"])
async def test_apollo_persisted_queries_link(clients: None, api_url: str, tenant: TenantFixture,
                                             args: tuple[str, ...]) -> None:
    assert "ok: persisted queries" in await run("persisted-queries.mjs", *args, api_url=api_url,
                                                token=tenant.owner_token)


async def test_graphql_ws_subscription(clients: None, api_url: str, tenant: TenantFixture) -> None:
    assert "ok: graphql-ws subscription" in await run("subscription.mjs", api_url=api_url, token=tenant.owner_token)


async def test_graphql_over_http_audit(clients: None, api_url: str, tenant: TenantFixture) -> None:
    out = await run("audit.mjs", api_url=api_url, token=tenant.owner_token)
    assert "ok: graphql-http server audit" in out, out
