"""The ``brandgraph`` command: run the system and operate it.

    brandgraph dev                 embedded services + migrations + demo + API, worker, scheduler
    brandgraph serve|worker|scheduler
    brandgraph migrate | seed-demo | export-schema
    brandgraph create-tenant | create-api-key | token | set-feature
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from domain.config import ConfigError, Settings, get_settings

_embedded = None  # the embedded services this process started (services()), for supervision


def _fail(message: str, code: int = 2) -> None:
    print(f"brandgraph: {message}", file=sys.stderr)
    raise SystemExit(code)


def _reload_settings() -> Settings:
    get_settings.cache_clear()
    return get_settings()


def _redis_alive(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


@contextlib.contextmanager
def services(*, provision: bool = False, redis: bool = True) -> Iterator[Settings]:
    """Settings with DATABASE_URL and REDIS_URL set: from the environment, or, in development,
    from embedded services started (or joined, when ``brandgraph dev`` already runs them) here."""
    settings = get_settings()
    try:
        settings.check_production(redis=redis, secret=redis)
    except ConfigError as exc:
        _fail(str(exc))
    if settings.secret_key is None and not settings.production:
        os.environ["BRANDGRAPH_SECRET_KEY"] = _development_secret(settings.data_dir)
        settings = _reload_settings()
    global _embedded
    embedded = None
    if settings.embedded_database or settings.embedded_redis:
        from brandgraph.embedded import (
            DATABASE_NAME,
            EmbeddedError,
            EmbeddedRedis,
            EmbeddedServices,
        )

        embedded = EmbeddedServices(settings.data_dir)
        joined_redis = None
        if settings.embedded_redis:
            probe = EmbeddedRedis(settings.data_dir)
            url = f"unix://{probe.socket}"
            if probe.socket.exists() and _redis_alive(url):
                joined_redis = url
        try:
            env = embedded.start(database=settings.embedded_database,
                                 redis=settings.embedded_redis and joined_redis is None)
        except EmbeddedError as exc:
            _fail(str(exc))
        if joined_redis:
            env["REDIS_URL"] = joined_redis
        server_url = env.pop("_BRANDGRAPH_SERVER_URL", None)
        os.environ.update(env)
        settings = _reload_settings()
        if server_url:  # a new (or joined) embedded server: its database, migrated, with the app's login
            from domain.platform.migrations import provision as provision_database

            provision_database(server_url, DATABASE_NAME)
            provision = False
    _embedded = embedded
    try:
        if provision:
            _migrate(settings)
        yield settings
    finally:
        _embedded = None
        if embedded is not None:
            embedded.stop()


def _development_secret(data_dir: Path) -> str:
    """A random signing secret kept in the data folder, so development tokens survive restarts
    and no two installations share one."""
    import secrets

    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _migrate(settings: Settings) -> None:
    from domain.platform.migrations import enable_app_login, upgrade

    upgrade(settings.owner_database_url())
    if not settings.database_app_url:
        asyncio.run(enable_app_login(settings.owner_database_url(), settings.app_password()))


# --- commands -------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> None:
    with services(provision=True, redis=False):
        print("migrations applied")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    workers = args.workers or _web_concurrency()
    with services():
        # more than one: uvicorn binds the port here and spawns that many processes, each
        # importing the factory and running the app's lifespan (its event hub, its outbox relay:
        # one relay at a time claims); SIGTERM or SIGINT here stops them all, then this process
        uvicorn.run("graph.app:create_app", factory=True, host=args.host, port=args.port, workers=workers,
                    log_config=None, proxy_headers=True, ws="websockets-sansio",
                    ws_max_size=get_settings().max_body_bytes,
                    # frames are small JSON documents: compressing each costs more CPU than it saves
                    ws_per_message_deflate=False)


def cmd_worker(args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", "dramatiq", "domain.worker", "--processes", str(args.processes),
           "--threads", str(args.threads)]
    settings = get_settings()
    if not (settings.embedded_database or settings.embedded_redis):
        try:
            settings.check_production()
        except ConfigError as exc:
            _fail(str(exc))
        os.execv(sys.executable, cmd)  # Dramatiq's own process handles signals and shutdown
    with services():  # embedded services live in this process: supervise Dramatiq from here
        proc = subprocess.Popen(cmd, start_new_session=True)
        _forward_signals([proc])
        raise SystemExit(proc.wait())


def cmd_scheduler(args: argparse.Namespace) -> None:
    from domain.periodic import schedule
    from domain.platform.observability import configure_logging
    from domain.platform.scheduler import run_forever

    with services() as settings:
        configure_logging(settings.log_level)
        asyncio.run(run_forever(schedule()))


def cmd_seed_demo(args: argparse.Namespace) -> None:
    with services():
        creds = asyncio.run(_seed(args.customers_per_brand))
        _print_credentials(creds, None)


def cmd_export_schema(args: argparse.Namespace) -> None:
    from graph.schema import export_sdl

    sdl = export_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"wrote {args.output}")


def cmd_create_tenant(args: argparse.Namespace) -> None:
    from domain.errors import DomainError
    from domain.tenancy.tenants import create_tenant

    with services():
        try:
            tenant = asyncio.run(create_tenant(args.slug, args.name, plan=args.plan))
        except DomainError as exc:
            _fail(exc.message)
        print(tenant.id)


def cmd_set_plan(args: argparse.Namespace) -> None:
    from domain.errors import DomainError
    from domain.plans import quotas
    from domain.tenancy.tenants import tenant_id_for_slug

    async def run() -> None:
        add_ons = quotas.parse_add_ons(args.add_on or [])
        tenant = await quotas.set_plan(await tenant_id_for_slug(args.tenant), args.plan, add_ons)
        extra = ", ".join(f"{k}+{v}" for k, v in sorted(add_ons.items())) or "no add-ons"
        print(f"tenant {args.tenant}: plan {tenant.plan}, {extra}")

    with services():
        try:
            asyncio.run(run())
        except DomainError as exc:
            _fail("; ".join(e.message for e in exc.errors))


def cmd_set_feature(args: argparse.Namespace) -> None:
    from domain.errors import DomainError
    from domain.tenancy.tenants import set_feature

    with services():
        try:
            changed = asyncio.run(set_feature(args.tenant, args.feature, args.state == "on"))
        except DomainError as exc:
            _fail(exc.message)
        print(f"{args.feature} is {args.state} for tenant {args.tenant}" + ("" if changed else " (unchanged)"))


def cmd_create_api_key(args: argparse.Namespace) -> None:
    from domain.errors import DomainError

    async def run() -> str:
        from sqlalchemy import select

        from domain.platform.db import tenant_session
        from domain.tenancy.api_keys import create_api_key
        from domain.tenancy.models import Brand
        from domain.tenancy.tenants import tenant_id_for_slug

        tenant_id = await tenant_id_for_slug(args.tenant)
        brand_ids = None
        if args.brand:
            async with tenant_session(tenant_id) as s:
                found = dict((await s.execute(select(Brand.slug, Brand.id).where(
                    Brand.tenant_id == tenant_id, Brand.slug.in_(args.brand)))).all())
            missing = sorted(set(args.brand) - set(found))
            if missing:
                _fail(f"no brand with slug {', '.join(missing)} in tenant {args.tenant}")
            brand_ids = [found[s] for s in args.brand]
        key, secret = await create_api_key(None, args.name, args.role, brand_ids=brand_ids, tenant_id=tenant_id)
        print(f"created API key {key.prefix}… ({key.role}) for tenant {args.tenant}", file=sys.stderr)
        return secret

    with services():
        try:
            secret = asyncio.run(run())
        except DomainError as exc:
            _fail(exc.message)
        print(secret)


def cmd_token(args: argparse.Namespace) -> None:
    from domain.errors import DomainError
    from domain.tenancy.auth import mint_token
    from domain.tenancy.members import ensure_member, invitation_pending, parse_role
    from domain.tenancy.tenants import tenant_id_for_slug

    async def run() -> str:
        tenant_id = await tenant_id_for_slug(args.tenant)
        user_id, created = await ensure_member(tenant_id, args.email, parse_role(args.role))
        if created:
            print(f"added {args.email} to {args.tenant} as {args.role}", file=sys.stderr)
        elif await invitation_pending(tenant_id, user_id):
            print(f"{args.email} has not accepted the invitation to {args.tenant}: this token may only "
                  "accept it (mutation acceptInvitation)", file=sys.stderr)
        return mint_token(tenant_id, user_id, args.email, ttl=args.ttl)

    with services():
        try:
            print(asyncio.run(run()))
        except DomainError as exc:
            _fail(exc.message)


# --- dev: the whole system in one terminal ---------------------------------------------


async def _seed(customers_per_brand: int = 200):
    from brandgraph.demo import seed_demo
    from brandgraph.progress import ProgressBar
    from domain.platform.db import dispose_engine

    try:
        return await seed_demo(ProgressBar("seeding demo data"), customers_per_brand=customers_per_brand)
    finally:
        await dispose_engine()


def _print_credentials(creds, url: str | None) -> None:
    from brandgraph.demo import DEMO_OWNER
    from domain.tenancy.auth import mint_token
    from graph.core.ids import encode

    token = mint_token(creds.tenant_id, creds.owner_id, DEMO_OWNER)
    first_brand = next(iter(sorted(creds.brand_ids)), None)
    headers = {"Authorization": f"Bearer {token}"}
    if first_brand:
        headers["X-Brand-Id"] = str(encode("Brand", creds.brand_ids[first_brand]))
    lines = []
    if url:
        lines += [f"GraphiQL:  {url}", ""]
    lines += [
        f"Demo tenant 'demo', owner {DEMO_OWNER}. Paste into GraphiQL's Headers pane:",
        json.dumps(headers, indent=2),
        "",
        "Try:  { viewer { tenant { name } role brands { id name } } }",
    ]
    if creds.api_key:
        lines += ["", "Demo API key (marketer; shown once):", creds.api_key]
    print("\n".join(lines), flush=True)


def _forward_signals(procs: list[subprocess.Popen]) -> None:
    def forward(signum, _frame):
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child(cmd: list[str]) -> subprocess.Popen:
    """A supervised child in its own session: a terminal's Ctrl-C reaches only the parent,
    which then stops each child once, in order."""
    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent)


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def _stop_all(procs: list[subprocess.Popen], grace: float = 15) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# `brandgraph dev`'s allowed browser origins when CORS_ORIGINS is unset: pages served from this
# machine on any port (http or https; localhost, 127.0.0.1, [::1]).
DEV_CORS_ORIGIN_REGEX = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?"


def _dev_public_url(host: str, port: int) -> str:
    """PUBLIC_URL for ``brandgraph dev`` when unset: the address it serves on."""
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _supervise() -> None:
    """Restart an embedded PostgreSQL or Redis that died; the children reconnect on their own."""
    if _embedded is None:
        return
    try:
        restarted = _embedded.supervise()
    except Exception as exc:  # noqa: BLE001  (tried again on the next pass)
        print(f"brandgraph: could not restart an embedded service: {exc}", file=sys.stderr, flush=True)
        return
    for name in restarted:
        print(f"brandgraph: embedded {name} had stopped; restarted it", file=sys.stderr, flush=True)


def cmd_dev(args: argparse.Namespace) -> None:
    if get_settings().production:
        _fail("`brandgraph dev` is for development; use serve, worker and scheduler in production")
    if not os.environ.get("PUBLIC_URL"):  # links and webhook addresses point at this server
        os.environ["PUBLIC_URL"] = _dev_public_url(args.host, args.port)
    if not os.environ.get("CORS_ORIGINS") and not os.environ.get("CORS_ORIGIN_REGEX"):
        os.environ["CORS_ORIGIN_REGEX"] = DEV_CORS_ORIGIN_REGEX  # a local SPA (Vite, CRA...) may call
    _reload_settings()
    with services(provision=True):
        creds = asyncio.run(_seed())
        me = [sys.executable, "-m", "brandgraph"]
        procs = [
            _child([*me, "serve", "--host", args.host, "--port", str(args.port)]),
            _child([*me, "worker", "--processes", "1", "--threads", "4"]),
            _child([*me, "scheduler"]),
        ]
        stopping = {"now": False}

        def stop(_signum, _frame):
            stopping["now"] = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
            base = f"http://{host}:{args.port}"
            if _wait_healthy(f"{base}/healthz", procs[0]):
                _print_credentials(creds, f"{base}/graphql")
                print("\nRunning: API, worker, scheduler. Ctrl-C stops everything.", flush=True)
            while not stopping["now"]:
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    print(f"brandgraph: a process exited ({dead[0].args[3]}); stopping", file=sys.stderr)
                    break
                _supervise()
                time.sleep(0.2)
        finally:
            _stop_all(procs)
            print("stopped", file=sys.stderr)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def _web_concurrency() -> int:
    """``serve``'s default number of processes: WEB_CONCURRENCY (as uvicorn and gunicorn read it), else 1."""
    value = os.environ.get("WEB_CONCURRENCY", "").strip()
    if not value:
        return 1
    try:
        return _positive(value)
    except argparse.ArgumentTypeError:
        _fail(f"WEB_CONCURRENCY must be a whole number of at least 1, got {value!r}")
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brandgraph", description="Brandgraph: the marketing graph API.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, fn, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(fn=fn)
        return p

    for name, fn, help_ in (("dev", cmd_dev, "Run everything locally with demo data."),
                            ("serve", cmd_serve, "Run the GraphQL API.")):
        p = add(name, fn, help_)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        if name == "serve":
            p.add_argument("--workers", type=_positive, default=None,
                           help="API processes on the one port (default: WEB_CONCURRENCY, else 1; "
                                "in production one per core)")
    p = add("worker", cmd_worker, "Run a Dramatiq worker.")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    add("scheduler", cmd_scheduler, "Run the periodic-job scheduler.")
    add("migrate", cmd_migrate, "Apply database migrations.")
    p = add("seed-demo", cmd_seed_demo, "Create the demo tenant (once), with a progress bar.")
    p.add_argument("--customers-per-brand", type=int, default=200,
                   help="customers per demo brand (a large demo: 50000)")
    p = add("export-schema", cmd_export_schema, "Write the GraphQL SDL.")
    p.add_argument("--output", "-o", default="schema.graphql")
    p = add("create-tenant", cmd_create_tenant, "Create a tenant; prints its id.")
    p.add_argument("--slug", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--plan", default="free")
    p = add("set-plan", cmd_set_plan, "Change a tenant's plan and add-ons (audited; a downgrade below what is "
                                      "in use is refused).")
    p.add_argument("--tenant", required=True, metavar="SLUG")
    p.add_argument("--plan", required=True, choices=["free", "growth", "enterprise"])
    p.add_argument("--add-on", action="append", metavar="NAME=N",
                   help="raise quota NAME by N (repeatable; replaces the tenant's add-ons; "
                        "active_segments, audience_exports, copilot_tokens, messages)")
    p = add("create-api-key", cmd_create_api_key, "Create an API key; prints the secret on the last line.")
    p.add_argument("--tenant", required=True, metavar="SLUG")
    p.add_argument("--role", required=True, choices=["admin", "marketer", "agent", "analyst"])
    p.add_argument("--brand", action="append", metavar="SLUG", help="limit to this brand (repeatable)")
    p.add_argument("--name", default="CLI key")
    p = add("set-feature", cmd_set_feature, "Switch a premium module on or off for a tenant (audited).")
    p.add_argument("--tenant", required=True, metavar="SLUG")
    p.add_argument("feature", choices=["copilot"])
    p.add_argument("state", choices=["on", "off"])
    p = add("token", cmd_token, "Mint a development JWT (adds the member when missing).")
    p.add_argument("--tenant", required=True, metavar="SLUG")
    p.add_argument("--email", required=True)
    p.add_argument("--role", default="owner", choices=["owner", "admin", "marketer", "agent", "analyst"])
    p.add_argument("--ttl", type=int, default=24 * 3600, help="seconds (default one day)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except ConfigError as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
