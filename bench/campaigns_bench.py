"""Campaigns bench: send throughput through Brevo, and live-stats latency over websockets.

    .venv/bin/python bench/campaigns_bench.py                        # 100,000 recipients, 1,000 subscribers
    .venv/bin/python bench/campaigns_bench.py --recipients 10000     # quicker
    .venv/bin/python bench/campaigns_bench.py --only throughput --processes 2 --threads 4
    .venv/bin/python bench/campaigns_bench.py --only throughput --recipients 10000 --frequency-cap 3
    .venv/bin/python bench/campaigns_bench.py --only live --subscribers 1000 --per-connection 1
    .venv/bin/python bench/campaigns_bench.py --only live --subscribers 10000 --api-processes 2
    BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres BENCH_REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/campaigns_bench.py

Setup (``bench/_env.py``: an embedded PostgreSQL and Redis under ``.brandgraph/bench-campaigns``
unless BENCH_DATA_DIR / BENCH_DATABASE_URL / BENCH_REDIS_URL say otherwise; a fresh
``brandgraph_campaigns_bench`` database, migrated): one tenant, one brand with a sender identity,
Brevo as its e-mail provider (``delivery.service.set_provider``), ``send_rate_per_second`` 100,000
(the API's maximum), and ``--recipients`` customers with e-mail consent in one static segment,
set-based with generate_series as the app role; then VACUUM ANALYZE. ``--frequency-cap N`` gives
the brand a cap of N messages a day, which no recipient reaches: launch and every claim take the
capped path.

1. **Throughput.** The Brevo fake (``tests/fakes/providers.py``) runs as its own process on
   loopback, and real Dramatiq workers (``python -m dramatiq domain.worker --processes P --threads
   T``, BREVO_API_URL pointing at the fake) do the work. After a small warm-up campaign (so the
   workers' first-use costs are not counted; ``--warmup 0`` to skip), the campaign is launched
   with ``domain.campaigns.service.launch_campaign`` (what the ``launchCampaign`` mutation calls)
   and the clock runs until ``campaign_stats`` says every recipient is sent (polled every 50 ms)
   and the campaign is ``sent``. Reported: messages/s over launch → all sent, and the phases
   (prepare: audience and recipient rows; sending: first to last send). Checked: the fake
   received exactly ``--recipients`` messages and every recipient row is ``sent``.
2. **Live stats.** ``--api-processes`` APIs (``python -m brandgraph serve``) run as their own
   processes on their own ports; client processes (at most 2,500 subscriptions each) open
   ``--subscribers`` ``campaignStats`` subscriptions over graphql-transport-ws, spread evenly over
   the APIs (``--per-connection`` subscriptions per connection; one each by default: one
   dashboard each).
   Once every subscription has its first frame, ``--changes`` counter changes
   (``domain.campaigns.stats.bump(opens=1)`` in a tenant transaction) are made ``--spacing``
   seconds apart. Per frame: the latency from the commit (a wall-clock timestamp taken in an
   after-commit callback registered before the stats' own publish callback) to its arrival at
   the subscriber (wall clock in the client process, when the websocket frame is read); also
   from ``updatedAt`` (the database's clock_timestamp() at the UPDATE, before the commit).

Targets: throughput >= 2,000 messages/s; live stats with every frame delivered (none coalesced:
the changes come slower than the subscription's rate, so a coalesced frame means the API fell
behind) and p99 <= 50 ms up to 1,000 subscribers (one API process), <= 250 ms beyond (10,000
over two API processes). ``--check`` exits 1 when one is missed. The figures are printed as tables; the last line of stdout is them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
THROUGHPUT_TARGET = 2_000  # messages per second
LATENCY_TARGET_MS = 50.0  # p99, up to 1,000 subscribers (one API process)
LATENCY_TARGET_LARGE_MS = 250.0  # p99, 10,000 subscribers (two API processes)
API_KEY = "bench-brevo-key-0123456789"
SUBSCRIPTION = ("subscription($id: ID!) { campaignStats(campaignId: $id) "
                "{ sent version updatedAt progress { queued } } }")
PROTOCOL = "graphql-transport-ws"
CONTENT = {
    "subject": "{{ customer.first_name }}, the winter collection is here",
    "preheader": "Layer up: new jackets, base layers and boots",
    "html": """<html><body>
<h1>Hi {{ customer.first_name }},</h1>
<p>First frost is here. Our new winter collection is built to last, tested on the ridge line by our
guides. {% if profile.orders %}Thank you for your {{ profile.orders }} orders so far.{% endif %}</p>
<p><a href="https://shop.example.com/collections/winter?utm_source=email">See the collection</a></p>
<table><tr>
<td><a href="https://shop.example.com/products/summit-down-jacket">Summit Down Jacket</a><br>279.00</td>
<td><a href="https://shop.example.com/products/merino-base-layer">Merino Base Layer</a><br>89.00</td>
<td><a href="https://shop.example.com/products/scree-hiking-boots">Scree Hiking Boots</a><br>179.00</td>
</tr></table>
<p>See you on the trail,<br>{{ brand.from_name }}</p>
<p style="font-size:11px">You receive this because you subscribed to {{ brand.name }} news.
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>""",
    "text": "Hi {{ customer.first_name }}, our winter collection is here: https://shop.example.com/collections/winter\n"
            "Unsubscribe: {{ unsubscribe_url }}",
}

if __name__ == "__main__" and "--ws-client" not in sys.argv:
    # a folder (and database name) of its own: other benches may run on the same machine
    os.environ.setdefault("BENCH_DATA_DIR", str(ROOT / ".brandgraph" / "bench-campaigns"))
    sys.path.insert(0, str(BENCH_DIR))
    import _env  # noqa: E402  (puts src/ on the path)

    _env.BENCH_DB = "brandgraph_campaigns_bench"
    LOGS = Path(os.environ["BENCH_DATA_DIR"]) / "logs"


# --- child processes -------------------------------------------------------------------------


class Child:
    """A process this bench starts (in its own session), its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None,
                 stdin: int | None = None, stdout: int | None = None) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = LOGS / f"{name}.log"
        self._out = self.log.open("wb")
        # this checkout's code, not whichever one the virtualenv was installed from
        path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen([sys.executable, *args], cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": path, **(env or {})},
                                     stdin=stdin, stdout=stdout if stdout is not None else self._out,
                                     stderr=self._out if stdout is not None else subprocess.STDOUT,
                                     start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.output().count(text) < count:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not get ready:\n{self.output()[-4000:]}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this bench started (Dramatiq's forks)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fake() -> tuple[Child, str]:
    port = free_port()
    fake = Child("brevo-fake", ["-m", "tests.fakes.providers", "brevo", "--port", str(port), "--api-key", API_KEY])
    fake.wait_for("READY ")
    return fake, f"http://127.0.0.1:{port}"


def start_workers(processes: int, threads: int, fake_url: str) -> Child:
    env = {"BREVO_API_URL": fake_url, "PUBLIC_URL": "https://bench.example.com", "LOG_LEVEL": "INFO",
           # per running batch: the advisory-lock connection and a transaction's
           "DATABASE_POOL_SIZE": str(max(5, threads + 2))}
    worker = Child("worker", ["-m", "dramatiq", "domain.worker", "--processes", str(processes),
                              "--threads", str(threads)], env)
    worker.wait_for("Worker process is ready", processes)
    return worker


def raise_file_limit() -> int:
    """Open files up to the hard limit (each websocket is one, in the client and in the API; the
    children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start_api(name: str = "api") -> tuple[Child, str]:
    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = Child(name, ["-m", "brandgraph", "serve", "--port", str(port), "--workers", "1"], {"PUBLIC_URL": base, "LOG_LEVEL": "WARNING"})
    deadline = time.monotonic() + 60
    while True:
        if api.proc.poll() is not None or time.monotonic() > deadline:
            api.stop()
            raise RuntimeError(f"the API did not start:\n{api.output()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return api, base
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_role(worker: Child | None, fake: Child | None) -> dict[str, float]:
    """CPU seconds used so far by the worker processes (the Dramatiq group), the fake, this
    process, and the PostgreSQL backends connected to the bench database (Linux /proc)."""
    out = {"worker": 0.0, "fake": 0.0, "bench": cpu_seconds(os.getpid()), "postgres": 0.0}
    groups = {worker.proc.pid: "worker"} if worker is not None else {}
    if fake is not None:
        groups[fake.proc.pid] = "fake"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            pid = int(entry.name)
            role = groups.get(os.getpgid(pid))
            if role is None and _env.BENCH_DB.encode() in (entry / "cmdline").read_bytes():
                role = "postgres" if (entry / "cmdline").read_bytes().startswith(b"postgres") else None
            if role is not None:
                out[role] += cpu_seconds(pid)
        except (OSError, ValueError):
            continue
    return out


def py_spy(pid: int, out: str, *options: str) -> subprocess.Popen:
    """py-spy recording ``pid`` into the logs folder as collapsed stacks (``-f raw``); stops at
    SIGINT or after ``-d``. py-spy is not a project dependency: pip install py-spy."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy) if spy.exists() else "py-spy", "record", "-p", str(pid), "-o", str(LOGS / out),
                             "-f", "raw", *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fake_count(fake_url: str) -> dict[str, int]:
    import httpx

    return httpx.get(f"{fake_url}/_fake/count", timeout=30).json()


def fake_reset(fake_url: str) -> None:
    import httpx

    httpx.post(f"{fake_url}/_fake/reset", timeout=30).raise_for_status()


# --- setup -----------------------------------------------------------------------------------


async def setup_brand(frequency_cap: int = 0):
    from domain.delivery import service as delivery
    from domain.delivery.base import Channel
    from domain.tenancy import brands

    owner, brand_id = await _env.setup_tenant("Campaigns Bench Co")
    await brands.update_brand(owner, brand_id, {"from_email": "news@bench.example.com", "from_name": "Bench Outdoor",
                                                "reply_to": "care@bench.example.com"})
    await delivery.set_provider(owner, brand_id, Channel.EMAIL, "brevo", {}, {"apiKey": API_KEY})
    rules: dict[str, Any] = {"send_rate_per_second": 100_000}
    if frequency_cap:  # each recipient gets one message, so any cap allows all: the claims take the capped path
        rules |= {"frequency_cap_count": frequency_cap, "frequency_cap_hours": 24}
    await delivery.update_messaging_settings(owner, brand_id, rules)
    return owner, brand_id


async def audience(owner, brand_id: uuid.UUID, n: int, tag: str) -> uuid.UUID:
    """``n`` customers of the brand with e-mail consent, in a new static segment; set-based."""
    from sqlalchemy import text

    from domain.platform.db import tenant_session
    from domain.segments.models import Segment

    t = owner.tenant_id
    series = "generate_series(cast(:lo AS int), cast(:hi AS int)) AS g"
    cid = f"md5('{tag}-' || g)::uuid"
    for lo in range(1, n + 1, 50_000):
        q = {"t": t, "b": brand_id, "lo": lo, "hi": min(n, lo + 49_999)}
        async with tenant_session(t) as s:
            await s.execute(text(f"""
                INSERT INTO customers (tenant_id, id, email, first_name, last_name, country, timezone, created_at, updated_at)
                SELECT cast(:t AS uuid), {cid}, '{tag}.' || g || '@inbox.example.com',
                       (ARRAY['Avery','Jordan','Maya','Ethan','Olivia','Liam','Harper','Noah'])[1 + g % 8],
                       'Customer ' || g, 'US', 'America/Denver', now(), now()
                  FROM {series}"""), q)
            await s.execute(text(f"""
                INSERT INTO customer_brands (tenant_id, brand_id, customer_id, first_seen_at, source)
                SELECT cast(:t AS uuid), cast(:b AS uuid), {cid}, now(), 'import' FROM {series}"""), q)
            await s.execute(text(f"""
                INSERT INTO customer_consents (tenant_id, customer_id, brand_id, channel, granted, granted_at, source)
                SELECT cast(:t AS uuid), {cid}, cast(:b AS uuid), 'email', true, now(), 'import' FROM {series}"""), q)
    async with tenant_session(t) as s:
        seg = Segment(id=uuid.uuid4(), tenant_id=t, brand_id=brand_id, name=f"Bench audience {tag}", kind="static",
                      member_count=n, last_refreshed_at=datetime.now().astimezone())
        s.add(seg)
        await s.flush()
        await s.execute(text(f"""
            INSERT INTO segment_memberships (tenant_id, segment_id, entered_at, customer_id)
            SELECT cast(:t AS uuid), cast(:seg AS uuid), now(), {cid} FROM generate_series(1, cast(:n AS int)) AS g"""),
            {"t": t, "seg": seg.id, "n": n})
    return seg.id


async def vacuum_analyze() -> None:
    from sqlalchemy import text

    from domain.config import get_settings
    from domain.platform.db import owner_engine

    engine = owner_engine(get_settings().owner_database_url()).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for table in ("customers", "customer_brands", "customer_consents", "segment_memberships", "segments",
                          "campaign_recipients", "suppressions"):
                await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
    finally:
        await engine.dispose()


async def new_campaign(owner, brand_id: uuid.UUID, segment_id: uuid.UUID, name: str) -> uuid.UUID:
    from domain.campaigns import service

    campaign = await service.create_campaign(owner, brand_id, {
        "name": name, "channel": "email", "content": CONTENT, "segment_ids": [segment_id], "cost_cents": 50_000})
    return campaign.id


# --- 1. throughput ---------------------------------------------------------------------------


async def progress_of(tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> dict[str, Any]:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        row = (await s.execute(text("""
            SELECT c.status, c.launched_at, c.audience_ready_at, c.completed_at, s.first_sent_at,
                   s.audience, s.queued, s.sent, s.failed
              FROM campaigns c JOIN campaign_stats s ON s.tenant_id = c.tenant_id AND s.campaign_id = c.id
             WHERE c.tenant_id = :t AND c.id = :c"""), {"t": tenant_id, "c": campaign_id})).mappings().one()
    return dict(row)


async def send_and_wait(owner, campaign_id: uuid.UUID, n: int, within: float) -> dict[str, Any]:
    """Launch; poll until the campaign is sent. Returns the timings."""
    from domain.campaigns import service

    started = time.perf_counter()
    await service.launch_campaign(owner, campaign_id, uuid.uuid4().hex)
    last_print = started
    while True:
        p = await progress_of(owner.tenant_id, campaign_id)
        now = time.perf_counter()
        if p["status"] == "sent" and p["sent"] + p["failed"] >= n:
            break
        if p["status"] not in ("sending", "sent"):
            raise RuntimeError(f"campaign {p['status']}: {p}")
        if now - started > within:
            raise RuntimeError(f"not sent within {within:.0f} s: {p}")
        if now - last_print >= 5:
            print(f"  {p['sent']:,} / {n:,} sent after {now - started:.1f} s", flush=True)
            last_print = now
        await asyncio.sleep(0.05)
    elapsed = now - started
    return {"elapsed": elapsed, **p}


async def recipient_statuses(tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> dict[str, int]:
    from sqlalchemy import text

    from domain.platform.db import tenant_session

    async with tenant_session(tenant_id) as s:
        return dict((await s.execute(text(
            "SELECT status, count(*) FROM campaign_recipients WHERE tenant_id = :t AND campaign_id = :c GROUP BY 1"),
            {"t": tenant_id, "c": campaign_id})).all())


async def throughput(args: argparse.Namespace, owner, brand_id: uuid.UUID) -> dict[str, Any]:
    from domain.config import get_settings

    n = args.recipients
    print(f"filling {n:,} customers with e-mail consent in a static segment ...", flush=True)
    started = time.perf_counter()
    segment = await audience(owner, brand_id, n, "main")
    warm_segment = await audience(owner, brand_id, args.warmup, "warm") if args.warmup else None
    await vacuum_analyze()
    fill_s = time.perf_counter() - started
    campaign = await new_campaign(owner, brand_id, segment, "Winter collection")
    fake, fake_url = start_fake()
    worker = None
    try:
        print(f"starting Dramatiq: --processes {args.processes} --threads {args.threads} ...", flush=True)
        worker = start_workers(args.processes, args.threads, fake_url)
        if warm_segment is not None:
            print(f"warm-up campaign ({args.warmup:,} recipients) ...", flush=True)
            warm = await new_campaign(owner, brand_id, warm_segment, "Warm-up")
            await send_and_wait(owner, warm, args.warmup, within=300)
            fake_reset(fake_url)
        print(f"launching the {n:,}-recipient campaign ...", flush=True)
        cpu = cpu_by_role(worker, fake)
        profiler = None
        if args.profile:
            profiler = py_spy(worker.proc.pid, "worker-send.txt", "--subprocesses", "-r", "100")
        result = await send_and_wait(owner, campaign, n, within=max(600, n / 100))
        cpu = {k: round(v - cpu[k], 1) for k, v in cpu_by_role(worker, fake).items()}
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            await asyncio.to_thread(profiler.wait)
        received = fake_count(fake_url)
        statuses = await recipient_statuses(owner.tenant_id, campaign)
    finally:
        if worker is not None:
            worker.stop()
        fake.stop()
    elapsed = result["elapsed"]
    prepare = (result["audience_ready_at"] - result["launched_at"]).total_seconds()
    sending = (result["completed_at"] - result["first_sent_at"]).total_seconds()
    server = (result["completed_at"] - result["launched_at"]).total_seconds()
    ok_count = received["count"] == n and statuses.get("sent", 0) == n and result["sent"] == n
    return {
        "recipients": n, "processes": args.processes, "threads": args.threads,
        "batch_size": get_settings().campaign_batch_size, "fill_s": round(fill_s, 2),
        "elapsed_s": round(elapsed, 3), "messages_per_s": round(n / elapsed),
        "prepare_s": round(prepare, 3), "sending_s": round(sending, 3),
        "sending_messages_per_s": round(n / sending) if sending > 0 else None,
        "server_launch_to_completed_s": round(server, 3),
        "fake_received": received["count"], "fake_requests": received["requests"],
        "recipient_statuses": statuses, "stats_sent": result["sent"], "stats_failed": result["failed"],
        "cpu_s": cpu, "load_average": os.getloadavg()[0],
        "exactly_once": ok_count, "target_messages_per_s": THROUGHPUT_TARGET,
        "met": ok_count and n / elapsed >= THROUGHPUT_TARGET,
    }


# --- 2. live stats ---------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


CLIENT_SUBSCRIBERS = 2_500  # subscriptions per client process at most


def latency_target(subscribers: int) -> float:
    """The p99 target: 50 ms up to 1,000 subscribers (one API process), 250 ms beyond (10,000
    over two API processes)."""
    return LATENCY_TARGET_MS if subscribers <= 1_000 else LATENCY_TARGET_LARGE_MS


def client_shares(subscribers: int, apis: int) -> list[tuple[int, int]]:
    """(API index, subscriptions) for each client process: the subscribers spread evenly over the
    APIs, each API's share over as many clients as it needs."""
    per_api = [subscribers // apis + (1 if i < subscribers % apis else 0) for i in range(apis)]
    shares = []
    for i, n in enumerate(per_api):
        clients = max(1, math.ceil(n / CLIENT_SUBSCRIBERS))
        shares += [(i, n // clients + (1 if k < n % clients else 0)) for k in range(clients)]
    return [(i, n) for i, n in shares if n]


async def live(args: argparse.Namespace, owner, brand_id: uuid.UUID, campaign_id: uuid.UUID | None) -> dict[str, Any]:
    from domain.campaigns import stats
    from domain.platform.db import after_commit, tenant_session
    from domain.tenancy.auth import mint_token
    from graph.core.ids import encode

    if campaign_id is None:  # a draft has its stats row too
        segment = await audience(owner, brand_id, 10, "live")
        campaign_id = await new_campaign(owner, brand_id, segment, "Live stats")
    token = mint_token(owner.tenant_id, owner.id, owner.label)
    apis: list[tuple[Child, str]] = []
    clients: list[Child] = []
    try:
        for i in range(args.api_processes):
            apis.append(start_api("api" if args.api_processes == 1 else f"api-{i + 1}"))
        shares = client_shares(args.subscribers, args.api_processes)
        print(f"opening {args.subscribers:,} campaignStats subscriptions, {args.per_connection} per connection, "
              f"on {args.api_processes} API process(es), from {len(shares)} client process(es) ...", flush=True)
        for k, (i, n) in enumerate(shares):
            url = apis[i][1].replace("http", "ws", 1) + "/graphql"
            clients.append(Child("ws-client" if len(shares) == 1 else f"ws-client-{k + 1}",
                                 [str(BENCH_DIR / Path(__file__).name), "--ws-client", "--url", url,
                                  "--token", token, "--campaign", str(encode("Campaign", campaign_id)),
                                  "--subscribers", str(n), "--per-connection", str(args.per_connection)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        setup_s = 0.0
        for client in clients:
            line = await asyncio.to_thread(client.proc.stdout.readline)
            if not line.startswith(b"SUBSCRIBED"):
                raise RuntimeError(f"{client.name}: {line!r}\n{client.output()[-4000:]}")
            setup_s = max(setup_s, float(line.split()[1]))
        print(f"  subscribed in {setup_s:.1f} s; {args.changes} changes {args.spacing * 1000:.0f} ms apart ...",
              flush=True)
        await asyncio.sleep(1.0)
        if args.profile:
            profilers = [py_spy(api.proc.pid, f"{api.name}-live.txt", "-r", "200",
                                "-d", str(int(args.changes * args.spacing) + 2)) for api, _ in apis]
            await asyncio.sleep(1.0)
        load_average = os.getloadavg()[0]
        commits: dict[int, float] = {}
        api_cpu = sum(cpu_seconds(api.proc.pid) for api, _ in apis)
        for _ in range(args.changes):
            marked: list[float] = []

            async def mark(marked: list[float] = marked) -> None:
                marked.append(time.time())

            async with tenant_session(owner.tenant_id) as s:
                after_commit(s, mark)  # runs right after the commit, before the stats' own publish
                figures = await stats.bump(s, owner.tenant_id, campaign_id, opens=1)
            commits[figures.version] = marked[0]
            await asyncio.sleep(args.spacing)
        await asyncio.sleep(2.0)
        api_cpu = sum(cpu_seconds(api.proc.pid) for api, _ in apis) - api_cpu
        for client in clients:
            client.proc.stdin.write(b"STOP\n")
            client.proc.stdin.flush()
        outputs = await asyncio.gather(*(asyncio.to_thread(c.proc.stdout.read) for c in clients))
        frames: dict[str, Any] = {"frames": [], "errors": [], "cpu_s": 0.0}
        for raw in outputs:
            part = json.loads(raw)
            frames["frames"] += part["frames"]
            frames["errors"] += part["errors"]
            frames["cpu_s"] += part["cpu_s"]
        if args.profile:
            for profiler in profilers:
                await asyncio.to_thread(profiler.wait)
    finally:
        for client in clients:
            client.stop()
        for api, _ in apis:
            api.stop()
    from_commit, from_updated = [], []
    per_version: dict[int, list[float]] = {}
    for version, arrived, updated_at in frames["frames"]:
        if version not in commits:
            continue  # the first frame (the figures at subscribe time)
        ms = (arrived - commits[version]) * 1000
        from_commit.append(ms)
        from_updated.append((arrived - datetime.fromisoformat(updated_at).timestamp()) * 1000)
        per_version.setdefault(version, []).append(ms)
    expected = args.subscribers * args.changes

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
                "p99": round(percentile(values, 99), 1), "max": round(max(values), 1) if values else float("nan")}

    result = {
        "subscribers": args.subscribers, "per_connection": args.per_connection,
        "api_processes": args.api_processes, "client_processes": len(clients), "load_average": round(load_average, 1),
        "connections": math.ceil(args.subscribers / args.per_connection), "changes": args.changes,
        "spacing_ms": round(args.spacing * 1000), "subscribe_s": round(setup_s, 2),
        "frames": len(from_commit), "frames_expected": expected, "errors": frames["errors"],
        "from_commit_ms": summary(from_commit), "from_updated_at_ms": summary(from_updated),
        "api_cpu_s": round(api_cpu, 2), "client_cpu_s": round(frames["cpu_s"], 2),
        "api_cpu_per_frame_ms": round(api_cpu * 1000 / len(from_commit), 3) if from_commit else None,
        "first_subscriber_ms": summary([min(v) for v in per_version.values()]),
        "last_subscriber_ms": summary([max(v) for v in per_version.values()]),
        "target_p99_ms": latency_target(args.subscribers),
        # per change, in order: (first, median, last) subscriber's latency in ms, frames received
        "per_change": [(round(min(v), 1), round(statistics.median(v), 1), round(max(v), 1), len(v))
                       for _, v in sorted(per_version.items())],
    }
    result["met"] = bool(from_commit) and len(from_commit) == expected and \
        result["from_commit_ms"]["p99"] <= result["target_p99_ms"]
    return result


# --- the websocket client (its own process) --------------------------------------------------


async def ws_client(args: argparse.Namespace) -> None:
    from websockets.asyncio.client import connect

    received: list[tuple[str | bytes, float]] = []  # frames as they came, parsed at the end (less CPU meanwhile)
    errors: list[str] = []
    first: set[tuple[int, str]] = set()
    conns = []
    live_on: dict[int, asyncio.Event] = {}  # a connection's subscriptions all have their first frame
    wanted: dict[int, int] = {}
    total = args.subscribers
    n_conns = math.ceil(total / args.per_connection)

    async def reader(ws, index: int) -> None:
        try:
            async for raw in ws:
                arrived = time.time()
                if live_on[index].is_set() and len(raw) > 40:  # a frame: read once the changes are over
                    received.append((raw, arrived))
                    continue
                m = json.loads(raw)
                kind = m.get("type")
                if kind == "next":
                    data = (m["payload"].get("data") or {}).get("campaignStats")
                    if data is None:
                        errors.append(json.dumps(m)[:500])
                        continue
                    if (index, m["id"]) not in first:
                        first.add((index, m["id"]))
                        wanted[index] -= 1
                        if not wanted[index]:
                            live_on[index].set()
                        continue
                    received.append((raw, arrived))
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind in ("error", "complete"):
                    errors.append(json.dumps(m)[:500])
        except Exception as exc:  # noqa: BLE001 - reported
            errors.append(f"connection {index}: {type(exc).__name__}: {exc}")

    async def open_one(index: int, n_subs: int, gate: asyncio.Semaphore) -> None:
        # the gate is held until the subscriptions are live: at most 50 connections subscribing
        # at a time, so that their first reads do not queue past the API's database pool timeout
        live_on[index], wanted[index] = asyncio.Event(), n_subs
        async with gate:
            ws = await connect(args.url, subprotocols=[PROTOCOL], open_timeout=120, max_queue=None,
                               ping_interval=None)
            await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {args.token}"}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 120))  # a busy API acknowledges late
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"not acknowledged: {ack}")
            conns.append((ws, asyncio.create_task(reader(ws, index))))
            for k in range(n_subs):
                await ws.send(json.dumps({"id": str(k + 1), "type": "subscribe",
                                          "payload": {"query": SUBSCRIPTION, "variables": {"id": args.campaign}}}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live_on[index].wait(), 60)

    started = time.perf_counter()
    gate = asyncio.Semaphore(50)
    await asyncio.gather(*(open_one(i, min(args.per_connection, total - i * args.per_connection), gate)
                           for i in range(n_conns)))
    deadline = time.monotonic() + 60
    while len(first) < total:  # every subscription has its first frame: subscribed on the server
        if time.monotonic() > deadline or errors:
            raise RuntimeError(f"{len(first)} of {total} subscriptions live; errors: {errors[:3]}")
        await asyncio.sleep(0.05)
    print(f"SUBSCRIBED {time.perf_counter() - started:.2f}", flush=True)
    cpu = time.process_time()
    await asyncio.to_thread(sys.stdin.readline)
    cpu = time.process_time() - cpu
    for _, task in conns:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws, _ in conns), return_exceptions=True)
    frames: list[tuple[int, float, str]] = []
    for raw, arrived in received:
        m = json.loads(raw)
        data = (m.get("payload", {}).get("data") or {}).get("campaignStats") if m.get("type") == "next" else None
        if data is None:
            errors.append(json.dumps(m)[:500])
            continue
        frames.append((data["version"], arrived, data["updatedAt"]))
    sys.stdout.write(json.dumps({"frames": frames, "errors": errors[:20], "cpu_s": cpu}))
    sys.stdout.flush()


# --- report ----------------------------------------------------------------------------------


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [line]
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            out.append(line)
    out.append(line)
    return "\n".join(out)


def report_throughput(r: dict[str, Any]) -> str:
    statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(r["recipient_statuses"].items()))
    return table([
        ("throughput", "value", "notes"),
        ("recipients", f"{r['recipients']:,}", f"workers: --processes {r['processes']} --threads {r['threads']}; "
                                               f"batch {r['batch_size']}"),
        ("launch -> all sent (polled)", f"{r['elapsed_s']:.2f} s", ""),
        ("**messages/s**", f"{r['messages_per_s']:,}", f"target >= {THROUGHPUT_TARGET:,} "
                                                      f"{'OK' if r['met'] else 'MISSED'}"),
        ("prepare (launch -> recipient rows)", f"{r['prepare_s']:.2f} s", "segment -> audience, one INSERT..SELECT"),
        ("sending (first -> last send)", f"{r['sending_s']:.2f} s", f"{r['sending_messages_per_s']:,} messages/s"),
        ("server: launched_at -> completed_at", f"{r['server_launch_to_completed_s']:.2f} s", ""),
        ("fake received", f"{r['fake_received']:,}", f"in {r['fake_requests']:,} requests; "
                                                     f"exactly once: {'yes' if r['exactly_once'] else 'NO'}"),
        ("recipient rows", statuses, f"stats: sent {r['stats_sent']:,}, failed {r['stats_failed']:,}"),
        ("CPU during the send", ", ".join(f"{k} {v} s" for k, v in r["cpu_s"].items()),
         f"over {r['elapsed_s']:.0f} s on {os.cpu_count()} CPUs; load average {r['load_average']:.1f}"),
    ])


def report_live(r: dict[str, Any]) -> str:
    def ms(d: dict[str, float]) -> str:
        return f"{d['p50']} / {d['p95']} / {d['p99']} / {d['max']} ms"

    return table([
        ("live stats", "value", "notes"),
        ("subscriptions", f"{r['subscribers']:,}", f"{r['connections']:,} connections, {r['per_connection']} each; "
                                                   f"all live in {r['subscribe_s']} s"),
        ("processes", f"{r['api_processes']} API, {r['client_processes']} client",
         f"load average {r['load_average']} when the changes began"),
        ("changes", f"{r['changes']}", f"{r['spacing_ms']} ms apart"),
        ("frames received", f"{r['frames']:,} / {r['frames_expected']:,}", f"errors: {len(r['errors'])}"),
        ("**commit -> frame: p50 / p95 / p99 / max**", ms(r["from_commit_ms"]),
         f"target p99 <= {r['target_p99_ms']:g} ms, no frame coalesced {'OK' if r['met'] else 'MISSED'}"),
        ("updatedAt -> frame", ms(r["from_updated_at_ms"]), "from the UPDATE's clock_timestamp()"),
        ("first subscriber of each change", ms(r["first_subscriber_ms"]), "p50 / p95 / p99 / max over changes"),
        ("last subscriber of each change", ms(r["last_subscriber_ms"]), "the fan-out's tail"),
        ("API process CPU during the changes", f"{r['api_cpu_s']} s", f"{r['api_cpu_per_frame_ms']} ms per frame sent"
                                                                      " (all API processes)"),
        ("client process CPU (same window)", f"{r['client_cpu_s']} s", f"all client processes, on the same "
                                                                        f"{os.cpu_count()} cores"),
    ])


async def run(args: argparse.Namespace) -> int:
    from sqlalchemy import text

    from domain.platform.db import dispose_engine, tenant_session

    # SIGTERM (timeout(1), kill) cancels the run, so that the processes it started are stopped
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    owner, brand_id = await setup_brand(args.frequency_cap)
    async with tenant_session(owner.tenant_id) as s:
        server = (await s.execute(text("SHOW server_version"))).scalar()
    out: dict[str, Any] = {"cpus": os.cpu_count(), "postgres": server, "database": args.where,
                           "frequency_cap": args.frequency_cap or None}
    campaign_id = None
    if args.only in (None, "throughput"):
        out["throughput"] = await throughput(args, owner, brand_id)
        async with tenant_session(owner.tenant_id) as s:
            campaign_id = (await s.execute(text("SELECT id FROM campaigns WHERE tenant_id = :t AND name = :n"),
                                           {"t": owner.tenant_id, "n": "Winter collection"})).scalar()
    if args.only in (None, "live"):
        out["live"] = await live(args, owner, brand_id, campaign_id)
    await dispose_engine()
    print()
    print(f"PostgreSQL {server}, {os.cpu_count()} CPUs; database: {args.where}")
    if "throughput" in out:
        print(report_throughput(out["throughput"]))
    if "live" in out:
        print(report_live(out["live"]))
    ok = all(part["met"] for key, part in out.items() if key in ("throughput", "live"))
    print(json.dumps(out, default=str))
    return 0 if ok or not args.check else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=2_000, help="recipients of the warm-up campaign (0: none)")
    parser.add_argument("--processes", type=int, default=2, help="Dramatiq worker processes")
    parser.add_argument("--threads", type=int, default=4, help="Dramatiq worker threads per process")
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--per-connection", type=int, default=1, help="subscriptions per websocket (max 50)")
    parser.add_argument("--api-processes", type=int, default=1,
                        help="API server processes for the live part, subscribers spread evenly over them")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--spacing", type=float, default=0.3, help="seconds between changes")
    parser.add_argument("--only", choices=["throughput", "live"])
    parser.add_argument("--frequency-cap", type=int, default=0,
                        help="give the brand a cap of N messages a day (0: none); every recipient stays within it")
    parser.add_argument("--profile", action="store_true", help="py-spy the API during the live part")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    # the websocket client process
    parser.add_argument("--ws-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--campaign", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_file_limit()
    if args.ws_client:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
        asyncio.run(ws_client(args))
        return
    args.where = _env.bootstrap()
    print(f"database: {args.where}", flush=True)
    try:
        code = asyncio.run(run(args))
    finally:
        _env.shutdown()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
