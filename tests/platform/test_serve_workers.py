"""``brandgraph serve --workers 2``: two API processes on one port, seen through the OS.

Which process answered a connection is read from Linux's own tables: the server end of each
connection (``/proc/net/tcp``) is a socket that exactly one worker process holds open
(``/proc/<pid>/fd``). Nothing in the API says which process it is.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from conftest import Process, free_port


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def server_socket_inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server end of the loopback connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return int(fields[9])
    return None


def holder(inode: int, pids: set[int]) -> int | None:
    """Which of ``pids`` has the socket ``inode`` open."""
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue
    return None


def ready_over(conn: socket.socket, port: int) -> bytes:
    """GET /readyz on a kept-open connection (the database and Redis, from the process that answers)."""
    conn.sendall(f"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = conn.recv(4096)
        assert chunk, f"connection closed after {answer!r}"
        answer += chunk
    return answer


def wait_listening(port: int, proc: Process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, f"serve exited:\n{proc.output()}"
        if proc.output().count("api ready") >= 2:
            return
        time.sleep(0.1)
    proc.stop()
    raise AssertionError(f"two workers did not get ready:\n{proc.output()}")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_two_worker_processes_answer_on_one_port_and_stop_on_signal(stop_signal: signal.Signals) -> None:
    port = free_port()
    proc = Process(["-m", "brandgraph", "serve", "--port", str(port), "--workers", "2"],
                   f"serve-workers-{stop_signal.name}", env={"LOG_LEVEL": "INFO"})
    conns: list[socket.socket] = []
    try:
        wait_listening(port, proc)  # each worker ran the app's lifespan
        workers = {pid for pid in children(proc.proc.pid)
                   if b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
                   and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()}
        assert len(workers) == 2, f"expected two worker processes under serve, found {workers}"

        answered_by: set[int] = set()
        for _ in range(200):  # connections kept open, so the kernel hands the next to either worker
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            conns.append(conn)
            answer = ready_over(conn, port)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            inode = server_socket_inode(port, conn.getsockname()[1])
            assert inode is not None
            pid = holder(inode, workers)
            assert pid is not None, f"no worker holds the server end of connection {conn.getsockname()}"
            answered_by.add(pid)
            if answered_by == workers:
                break
        assert answered_by == workers, f"only {answered_by} of {workers} answered over {len(conns)} connections"
    finally:
        for conn in conns:
            conn.close()

    started = time.monotonic()
    code = proc.stop(stop_signal, timeout=20)
    assert code == 0, f"serve exited {code} after {stop_signal.name}:\n{proc.output()}"
    assert time.monotonic() - started < 15
    for pid in workers:
        assert not alive(pid), f"worker {pid} outlived serve"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
