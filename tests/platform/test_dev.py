"""`brandgraph dev` end to end, in its own data folder: the address it serves on becomes the public
URL (webhook addresses, tracking links), and it restarts an embedded Redis or PostgreSQL that dies
while the API, worker and scheduler carry on without a restart of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import ROOT, free_port

PROVIDER = """mutation($input: SetDeliveryProviderInput!) { setDeliveryProvider(input: $input) {
  deliveryProvider { provider webhookUrl } errors { message } } }"""
FIRSTS = """query { campaigns(first: 5) { edges { node { id status } } } customers(first: 1) { edges { node { id } } } }"""
PREVIEW = "query($c: ID!, $u: ID!) { previewCampaign(campaignId: $c, customerId: $u) { html text } }"
JOB = "mutation { rebuildProfiles { job { id } errors { code } } }"
JOB_STATUS = "query($id: ID!) { job(id: $id) { status } }"


def _wait(predicate, within: float, what: str, proc: subprocess.Popen, log: Path):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + within
    while True:
        found = predicate()
        if found:
            return found
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"waiting for {what}; dev output:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)


def _headers(output: str) -> dict[str, str]:
    start = output.index("Paste into GraphiQL's Headers pane:") + len("Paste into GraphiQL's Headers pane:")
    end = output.index("\n\n", start)
    return json.loads(output[start:end])


def _redis_pid(folder: Path) -> int:
    """The pid of the embedded Redis keeping its data in ``folder``, from its own log (a child of
    the dev process this test started)."""
    ready = [line for line in (folder / "redis.log").read_text().splitlines() if "ready to accept connections" in line.lower()]
    return int(ready[-1].split(":", 1)[0])


def test_dev_derives_public_url_from_its_port_and_restarts_dead_services(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "DATABASE_APP_URL", "REDIS_URL", "PUBLIC_URL", "BRANDGRAPH_ENV",
                        "BRANDGRAPH_SECRET_KEY", "TEST_SERVER_URL", "GRAPHQL_SQL_STATS", "CORS_ORIGINS",
                        "CORS_ORIGIN_REGEX")}
    env["BRANDGRAPH_DATA_DIR"] = str(tmp_path / "data")
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "brandgraph", "dev", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: "Running: API, worker, scheduler." in log.read_text(errors="replace"), 420, "dev to start",
              proc, log)
        headers = _headers(log.read_text(errors="replace"))
        http = httpx.Client(base_url=base, headers=headers, timeout=20)

        def gql(query: str, variables: dict | None = None) -> dict:
            r = http.post("/graphql", json={"query": query, "variables": variables or {}})
            assert r.status_code == 200 and not r.json().get("errors"), r.text
            return r.json()["data"]

        # the public URL is the address dev serves on, not http://localhost:8000
        body = gql(PROVIDER, {"input": {"brandId": headers["X-Brand-Id"], "channel": "EMAIL", "provider": "BREVO",
                                        "credentials": {"apiKey": "dev-test"}}})["setDeliveryProvider"]
        assert body["errors"] == [], body
        assert body["deliveryProvider"]["webhookUrl"].startswith(f"http://127.0.0.1:{port}/webhooks/brevo/"), body
        firsts = gql(FIRSTS)
        campaign = firsts["campaigns"]["edges"][0]["node"]["id"]
        customer = firsts["customers"]["edges"][0]["node"]["id"]
        preview = gql(PREVIEW, {"c": campaign, "u": customer})["previewCampaign"]
        content = (preview["html"] or "") + (preview["text"] or "")
        assert f"http://127.0.0.1:{port}/" in content, content[:2000]
        assert "localhost:8000" not in content

        # a local SPA (Vite's port) may call it from the browser: its CORS preflight passes, with
        # no credential (a preflight never carries one); a page of another site's does not
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type,x-brand-id"}
        r = httpx.options(f"{base}/graphql", headers={"Origin": "http://localhost:5173", **preflight})
        assert r.status_code == 200, r.text
        assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "authorization" in r.headers["access-control-allow-headers"].lower()
        r = httpx.options(f"{base}/graphql", headers={"Origin": "https://evil.example", **preflight})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers, r.headers

        # Redis dies: dev starts it again, and the processes reconnect on their own
        os.kill(_redis_pid(Path(env["BRANDGRAPH_DATA_DIR"]).resolve() / "redis"), signal.SIGKILL)
        _wait(lambda: "embedded redis had stopped; restarted it" in log.read_text(errors="replace"), 30,
              "Redis to be restarted", proc, log)
        _wait(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, 30, "ready again", proc, log)
        job = gql(JOB)["rebuildProfiles"]["job"]["id"]
        _wait(lambda: gql(JOB_STATUS, {"id": job})["job"]["status"] == "SUCCEEDED", 60,
              "a job to run after the Redis restart", proc, log)

        # PostgreSQL dies (immediate shutdown, as in a crash): the same
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(Path(env["BRANDGRAPH_DATA_DIR"]).resolve() / "postgres")
        assert info is not None and info.is_running()
        os.kill(info.pid, signal.SIGQUIT)
        _wait(lambda: "embedded postgres had stopped; restarted it" in log.read_text(errors="replace"), 60,
              "PostgreSQL to be restarted", proc, log)
        _wait(lambda: http.post("/graphql", json={"query": "{ viewer { role } }"}).status_code == 200, 30,
              "the API to answer again", proc, log)
        job = gql(JOB)["rebuildProfiles"]["job"]["id"]
        _wait(lambda: gql(JOB_STATUS, {"id": job})["job"]["status"] == "SUCCEEDED", 60,
              "a job to run after the PostgreSQL restart", proc, log)
        assert proc.poll() is None  # nothing was restarted but the services
        assert "a process exited" not in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
