"""A private PgBouncer (the Debian package's binary) in front of the test server, for tests.

Its configuration is PgBouncer's defaults plus what a private instance needs: a free loopback
port (no Unix socket), its own ini, auth file, log and pid file in a temporary directory,
``auth_type = md5`` (the Debian default) with a plain-text auth file, **transaction pooling**
and a small pool (``default_pool_size = 4``), and a wildcard ``[databases]`` entry (``* =``)
pointing at the test server (Unix socket or TCP, whatever its DSN says), so every database
of the server is reachable through it. Nothing else: in particular no
``ignore_startup_parameters``, so a client sending the ``options`` startup parameter is
refused, as by any PgBouncer left at its defaults.

PgBouncer refuses to run as root: as root it runs as the ``pgserver`` system user (the one the
embedded wheel runs PostgreSQL as, which can reach the embedded server's socket).

Use the module-scoped ``pgbouncer`` fixture (import ``pgbouncer_fixture`` into a test module);
it skips with a clear reason when no ``pgbouncer`` binary is installed
(``scripts/install-test-packages.sh`` installs Debian's; ``.ci/run`` calls it). Every wait has
a deadline; the process is stopped at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

SYSTEM_USER = "pgserver"
POOL_SIZE = 4
PASSWORD = "Bn-41d7-bouncer"  # what clients give PgBouncer (md5 against the auth file)
ADMIN_DB = "pgbouncer"  # PgBouncer's admin console: a virtual database, no SQL


def pgbouncer_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    for candidate in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Backend:
    host: str  # a Unix socket directory or a host name
    port: int
    users: dict[str, str]  # role -> the password PgBouncer gives the server (may be "")


def backend_of(*dsns: str) -> Backend:
    """Where PgBouncer connects, from the test server's DSNs (admin and reader)."""
    from psycopg.conninfo import conninfo_to_dict

    users: dict[str, str] = {}
    host, port = "", 5432
    for dsn in dsns:
        params: dict[str, Any] = conninfo_to_dict(dsn)
        host = str(params.get("host") or "/var/run/postgresql")
        port = int(params.get("port") or 5432)
        users[str(params.get("user") or "postgres")] = str(params.get("password") or "")
    return Backend(host, port, users)


class PgBouncer:
    """One private PgBouncer process: ``start()``, ``stop()``, ``client_dsn(db, user)``."""

    def __init__(self, backend: Backend, *, pool_size: int = POOL_SIZE) -> None:
        self.backend = backend
        self.pool_size = pool_size
        self.binary = pgbouncer_binary()
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="pgmcp-pgbouncer-"))
        self.ini = self.base / "pgbouncer.ini"
        self.log = self.base / "pgbouncer.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_root = os.name != "nt" and os.geteuid() == 0

    def _write_config(self) -> None:
        b = self.backend
        server_password = {u: p for u, p in b.users.items() if p}
        # The auth file: what clients must give (PASSWORD). PgBouncer also logs in to the
        # server with it when the server asks for a password, so a server that does (TCP,
        # scram) gets its own password here and clients give that one instead.
        lines = [f'"{u}" "{server_password.get(u, PASSWORD)}"' for u in b.users]
        (self.base / "userlist.txt").write_text("\n".join(lines) + "\n")
        admin = next(iter(b.users))
        self.ini.write_text(
            "[databases]\n"
            f"* = host={b.host} port={b.port}\n"
            "\n[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = md5\n"
            f"auth_file = {self.base / 'userlist.txt'}\n"
            f"admin_users = {admin}\n"
            f"stats_users = {','.join(b.users)}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\n"
            f"logfile = {self.log}\n"
            f"pidfile = {self.base / 'pgbouncer.pid'}\n"
        )

    def password_for(self, user: str) -> str:
        return self.backend.users.get(user) or PASSWORD

    def client_dsn(self, dbname: str, user: str) -> str:
        """A DSN through PgBouncer as ``user`` (with the password the auth file holds)."""
        pw = quote(self.password_for(user), safe="")
        return f"postgresql://{quote(user, safe='')}:{pw}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def start(self, timeout: float = 30.0) -> PgBouncer:
        if self.binary is None:
            raise RuntimeError("no pgbouncer binary")
        self._write_config()
        kwargs: dict[str, Any] = {}
        if self._as_root:
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.base, *self.base.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            kwargs = {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}
        out = (self.base / "stdout").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, str(self.ini)],
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            **kwargs,
        )
        out.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        user = next(iter(self.backend.users))
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                with psycopg.connect(
                    self.client_dsn("postgres", user), connect_timeout=2, autocommit=True
                ) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"pgbouncer did not answer within {timeout:g} s:\n{self.tail()}"
                    ) from None
                time.sleep(0.1)

    def tail(self) -> str:
        text = ""
        for path in (self.base / "stdout", self.log):
            if path.exists():
                text += path.read_text(errors="replace")[-2000:]
        return text

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # immediate shutdown
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module", name="pgbouncer")
def pgbouncer_fixture(pg_dsn: str, reader_dsn: str) -> Iterator[PgBouncer]:
    """A private PgBouncer (transaction pooling, 4 server connections per database and user,
    default settings otherwise) in front of the test server, for this module."""
    if pgbouncer_binary() is None:
        pytest.skip(
            "pgbouncer is not installed (Debian package `pgbouncer`: "
            "scripts/install-test-packages.sh installs it as root)"
        )
    bouncer = PgBouncer(backend_of(pg_dsn, reader_dsn))
    try:
        bouncer.start()
    except Exception:
        bouncer.close()
        raise
    try:
        yield bouncer
    finally:
        bouncer.close()


if __name__ == "__main__":  # a manual PgBouncer in front of the embedded server
    from pg_mcp.db import embedded

    home = Path(__file__).resolve().parent.parent / ".pg-mcp"
    b = PgBouncer(backend_of(embedded.ensure_running(home), embedded.reader_dsn(home))).start()
    print(b.client_dsn("postgres", embedded.READER_ROLE), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        b.close()
