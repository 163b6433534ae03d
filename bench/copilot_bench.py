"""The copilot's streaming overhead: from the provider writing its first token to the first
frame carrying it at a websocket client.

    .venv/bin/python bench/copilot_bench.py              # 15 runs (~30 s)
    .venv/bin/python bench/copilot_bench.py --runs 30

A loopback OpenAI (tests/fakes/ai.py, on a thread of this process) streams a short answer, a
token every ``--token-delay`` seconds (the first after that delay too, so the subscription is in
place). ``brandgraph serve`` and a Dramatiq worker run as processes, pointed at it. Each run:
``rewriteText`` (streaming), ``copilotRun`` subscribed over graphql-transport-ws at once, and the
time from the fake writing the first token (``time.monotonic()`` in the fake's handler) to the
arrival of the first frame with a ``delta`` at the client (``time.monotonic()`` in the client's
reader; the same process, the same clock). The path measured: the fake's SSE chunk → the
``openai`` SDK in the worker → XADD on the Redis event stream → the API's event hub (XREAD) → the
subscription → the websocket → the client. Median, p90 and max in milliseconds.

Environment as the other benches (``bench/_env.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _env  # noqa: E402  (puts src/ on the path)

ROOT = _env.ROOT
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

REWRITE = """mutation($input: RewriteTextInput!) { rewriteText(input: $input) { run { id status } errors { code message } } }"""
FOLLOW = "subscription($id: ID!) { copilotRun(id: $id) { status delta text } }"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], env: dict[str, str], ready: str, log: Path) -> subprocess.Popen:
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{args[:3]} did not start:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return proc


async def main(a: argparse.Namespace, where: str) -> None:
    from domain.ai import service as ai
    from domain.tenancy.auth import mint_token
    from domain.tenancy.tenants import set_feature
    from fakes.ai import FakeOpenAI
    from support.ws import Client, bearer

    fake = FakeOpenAI().start()
    owner, brand_id = await _env.setup_tenant("Copilot bench")
    from domain.tenancy.tenants import get_tenant

    slug = (await get_tenant(owner)).slug
    await set_feature(slug, "copilot", True)
    await ai.set_connection(owner, "openai", credentials={"api_key": fake.api_key})
    token = mint_token(owner.tenant_id, owner.id, owner.label)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OPENAI_API_URL": fake.url, "PUBLIC_URL": base,
           "LOG_LEVEL": "INFO"}
    logs = _env.DATA_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    api = _start(["-m", "brandgraph", "serve", "--port", str(port)], env, "Uvicorn running", logs / "copilot-api.log")
    worker = _start(["-m", "dramatiq", "domain.worker", "--processes", "1", "--threads", "2"], env,
                    "Worker process is ready", logs / "copilot-worker.log")
    overheads: list[float] = []
    try:
        from graph.core.ids import encode

        brand_gid = str(encode("Brand", brand_id))
        async with httpx.AsyncClient(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            for i in range(a.runs + 1):  # the first warms up
                fake.reset()
                fake.reply = "Layer up and head out"
                fake.token_delay = a.token_delay
                client = await Client.open(base, bearer(token))
                r = await http.post("/graphql", json={"query": REWRITE, "variables": {"input": {
                    "brandId": brand_gid, "text": "new jackets are in", "mode": "FIX"}}})
                run = r.json()["data"]["rewriteText"]["run"]
                op = await client.subscribe(FOLLOW, {"id": run["id"]})
                first = None
                deadline = time.monotonic() + 30
                while not client.ended(op) and time.monotonic() < deadline:
                    await client.receive(0.01)
                    if first is None:
                        for m, at in zip(client.messages, client.arrived, strict=True):
                            if m.get("id") == op and m["type"] == "next" and m["payload"]["data"]["copilotRun"]["delta"]:
                                first = at
                                break
                await client.close()
                if first is None or fake.first_token_mono is None:
                    raise RuntimeError(f"run {i}: no streamed frame ({client.of(op)[-1:]})")
                if i:
                    overheads.append((first - fake.first_token_mono) * 1000)
    finally:
        for proc in (worker, api):
            proc.terminate()
            proc.wait(15)
        fake.stop()
    overheads.sort()
    p90 = overheads[min(len(overheads) - 1, int(round(0.9 * (len(overheads) - 1))))]
    print(f"{where}; {a.runs} runs")
    print(f"first token at the provider -> first frame at the websocket client: median {statistics.median(overheads):.1f} ms, "
          f"p90 {p90:.1f} ms, max {overheads[-1]:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--token-delay", type=float, default=0.25)
    args = parser.parse_args()
    try:
        asyncio.run(main(args, _env.bootstrap()))
    finally:
        _env.shutdown()
