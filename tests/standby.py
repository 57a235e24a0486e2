"""A private primary and a streaming hot standby, for tests: the embedded wheel's own binaries.

``initdb`` makes the primary (``wal_level = replica``, ``max_wal_senders``, trust on its Unix
socket, which initdb's pg_hba.conf also grants for local replication connections),
``pg_basebackup -R -X stream`` copies it into the standby (``standby.signal`` and
``primary_conninfo`` written by ``-R``), ``pg_ctl`` starts and stops both. Both listen on Unix
sockets only, in a private temporary directory, on ports of their own. As root every tool and
server runs as the ``pgserver`` system user (PostgreSQL refuses root), like tests/pgtemp.py.

Every wait has a deadline. Use the module-scoped ``standby_pair`` fixture (import
``standby_fixture``), or ``with StandbyPair() as pair: ...``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgtemp import SYSTEM_USER, PgTemp, free_port

USER = "postgres"
READER = "pgmcp_reader"
SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    # on: a commit's WAL is flushed (and so sent to the standby) before COMMIT returns, so
    # wait_replayed() after a write waits for that write
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "32MB",
    "max_connections": "60",
    "wal_level": "replica",
    "max_wal_senders": "4",
    "hot_standby": "on",
    "log_min_messages": "warning",
}


class StandbyPair:
    """``primary_dsn`` / ``standby_dsn`` (superuser), ``reader_dsn(which)``, ``wait_replayed()``."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pgmcp-sb-"))
        self.primary = self.base / "primary"
        self.standby = self.base / "standby"
        self.ports = {"primary": free_port(), "standby": free_port()}
        self._as_root = os.name != "nt" and os.geteuid() == 0

    # ---- addresses ------------------------------------------------------------------------
    def dsn(self, which: str, user: str = USER, dbname: str = "postgres") -> str:
        return f"host={self.base} port={self.ports[which]} user={user} dbname={dbname}"

    @property
    def primary_dsn(self) -> str:
        return self.dsn("primary")

    @property
    def standby_dsn(self) -> str:
        return self.dsn("standby")

    def reader_dsn(self, which: str) -> str:
        return self.dsn(which, READER)

    # ---- tools ----------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        from pg_mcp.db.embedded import bin_dir

        return str(bin_dir() / name)

    def _run(self, *args: str, timeout: float = 90.0) -> None:
        out = self.base / "ctl.out"
        kwargs: dict[str, Any] = {"cwd": self.base, "timeout": timeout}
        if self._as_root:
            kwargs.update(user=SYSTEM_USER, group=SYSTEM_USER, extra_groups=[])
        with out.open("ab") as fh:
            proc = subprocess.run(
                args, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, check=False, **kwargs
            )
        if proc.returncode != 0:
            tail = out.read_text(errors="replace")[-2000:]
            for log in self.base.glob("*.log"):
                tail += f"\n--- {log.name} ---\n" + log.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}):\n{tail}")

    def _start(self, which: str) -> None:
        data = self.primary if which == "primary" else self.standby
        options = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        options += f" -p {self.ports[which]} -k {self.base}"
        self._run(
            self._bin("pg_ctl"),
            "-w",
            "-t",
            "60",
            "-D",
            str(data),
            "-l",
            str(self.base / f"{which}.log"),
            "-o",
            options,
            "start",
        )

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> StandbyPair:
        if self._as_root:
            PgTemp._prepare_permissions(self)  # type: ignore[arg-type]  # same needs: base, bin
        self._run(
            self._bin("initdb"),
            "--auth=trust",
            "--username",
            USER,
            "--encoding=UTF8",
            "--no-instructions",
            "--no-sync",
            "-D",
            str(self.primary),
        )
        self._start("primary")
        self._wait_sql(self.primary_dsn, "SELECT 1")
        from pg_mcp.db.embedded import provision_reader

        provision_reader(self.primary_dsn, READER)
        self._run(
            self._bin("pg_basebackup"),
            "-D",
            str(self.standby),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            str(self.base),
            "-p",
            str(self.ports["primary"]),
            "-U",
            USER,
        )
        self._start("standby")
        self._wait_sql(
            self.standby_dsn,
            "SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming' AND pg_is_in_recovery()",
        )
        self.wait_replayed()
        return self

    def _wait_sql(self, dsn: str, sql: str, timeout: float = 60.0) -> None:
        """Until ``sql`` returns a row on ``dsn``."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
                    if conn.execute(sql).fetchone():
                        return
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer to {sql!r} within {timeout:g} s")
            time.sleep(0.1)

    def wait_replayed(self, timeout: float = 60.0) -> None:
        """Until the standby has replayed everything the primary wrote so far (up to its WAL
        insert position, not just what it had written out)."""
        import psycopg

        with psycopg.connect(self.primary_dsn, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        self._wait_sql(
            self.standby_dsn,
            f"SELECT 1 WHERE pg_last_wal_replay_lsn() >= '{row[0]}'::pg_lsn",
            timeout,
        )

    def stop(self) -> None:
        for data in (self.standby, self.primary):
            if (data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError):  # already gone
                    self._run(self._bin("pg_ctl"), "-w", "-D", str(data), "-m", "immediate", "stop")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> StandbyPair:
        try:
            return self.start()
        except Exception:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="module", name="standby_pair")
def standby_fixture() -> Iterator[StandbyPair]:
    """A primary and its streaming hot standby for this test module, removed afterwards."""
    with StandbyPair() as pair:
        yield pair
