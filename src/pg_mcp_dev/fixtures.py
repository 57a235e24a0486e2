"""The fixture databases (db_pg_mcp_small/medium/large) and the real-world sample databases.

Each fixture is one committed SQL file under ``fixtures/`` that generates its data inside
PostgreSQL from generate_series with a fixed seed (``setseed`` + ``random()`` for small and
medium; a hash of the row number and a salt for large, which is then identical on every
PostgreSQL version), so loads are deterministic. A database is
(re)created when it is missing, when forced, or when the SHA-256 of its SQL file differs
from the one recorded at the end of its ``COMMENT ON DATABASE`` text
(``"pg-mcp fixture small: ... [sha256:0123456789ab]"``). The comment is written last, so an
interrupted load is redone next time.

A load builds into ``<name>__loading`` and renames it into place at the end, so readers
of the previous version are only disturbed for the instant of the swap. A
PostgreSQL advisory lock per database serialises concurrent loaders (``make fixtures``
and a pytest session, say) on the same server.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pg_mcp.core.errors import PgMcpError

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
SIZES = ("small", "medium", "large")
PREFIX = "db_pg_mcp_"
_HASH_RE = re.compile(r"\[sha256:([0-9a-f]{12})\]")
_LOCK_BASE = 0x70676D63  # "pgmc"


def database_name(name: str) -> str:
    """'small' or 'db_pg_mcp_small' -> 'db_pg_mcp_small'."""
    short = name.removeprefix(PREFIX)
    if short not in SIZES:
        raise PgMcpError(
            "CONFIG_ERROR",
            f"unknown fixture database {name!r}",
            hint="choose from: " + ", ".join(SIZES),
        )
    return PREFIX + short


def sql_path(name: str) -> Path:
    return FIXTURES_DIR / f"{database_name(name)}.sql"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def read_fixture(name: str) -> tuple[str, str]:
    """(SQL text, short SHA-256) of a fixture file, from one read so both always match."""
    path = sql_path(name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PgMcpError(
            "CONFIG_ERROR",
            f"fixture file {path.name} cannot be read: {exc.strerror or exc}",
            hint=f"expected it under {FIXTURES_DIR}",
        ) from None
    return data.decode("utf-8"), _digest(data)


def file_hash(path: Path) -> str:
    return _digest(path.read_bytes())


def _connect(dsn: str):  # type: ignore[no-untyped-def]
    import psycopg

    try:
        return psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        from pg_mcp.core.secrets import Redactor, dsn_password

        redact = Redactor([p for p in (dsn_password(dsn),) if p])
        raise PgMcpError(
            "CONNECTION_ERROR",
            redact(f"cannot connect to the server: {str(exc).strip().splitlines()[0]}"),
        ) from None


def _comment(conn, dbname: str) -> str | None:  # type: ignore[no-untyped-def]
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (dbname,),
    ).fetchone()
    if row is None:
        return None
    return row[0] or ""


def recorded_hash(server_dsn: str, dbname: str) -> str | None:
    """The file hash recorded in the database's comment (None when missing or unmarked)."""
    with _connect(server_dsn) as conn:
        comment = _comment(conn, dbname)
    m = _HASH_RE.search(comment or "")
    return m.group(1) if m else None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _error_line(sql: str, exc: Exception) -> str:
    """' (line N)' for a server error that reports a position in the script."""
    pos = getattr(getattr(exc, "diag", None), "statement_position", None)
    if pos and str(pos).isdigit():
        return f" (line {sql[: int(pos)].count(chr(10)) + 1})"
    return ""


def run_script(db_dsn: str, sql: str, *, label: str) -> None:
    """Execute a whole trusted SQL script (many statements) in one simple-protocol call."""
    import psycopg

    with _connect(db_dsn) as conn:
        conn.add_notice_handler(lambda _diag: None)
        try:
            conn.execute(sql)  # type: ignore[arg-type]  # no parameters: simple query protocol
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PgMcpError(
                "DB_ERROR",
                f"loading {label} failed{_error_line(sql, exc)}: {first}",
                details={"sqlstate": getattr(exc, "sqlstate", None)},
            ) from None


def load_into(server_dsn: str, name: str, target: str, *, sql: str | None = None) -> None:
    """Create database ``target`` (must not exist) and run the fixture's SQL file in it.

    ``target`` may be any name (tests load fixtures into scratch databases); ``sql``
    overrides the file's text (used with the text whose hash is recorded).
    """
    from pg_mcp.db.discovery import database_dsn

    if sql is None:
        sql, _ = read_fixture(name)
    with _connect(server_dsn) as conn:
        conn.execute(f"CREATE DATABASE {_ident(target)} TEMPLATE template0 ENCODING 'UTF8'")
    run_script(database_dsn(server_dsn, target), sql, label=sql_path(name).name)


def _load(server_dsn: str, dbname: str, sql: str, digest: str) -> None:
    staging = dbname + "__loading"
    with _connect(server_dsn) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_ident(staging)} WITH (FORCE)")
    try:
        load_into(server_dsn, dbname, staging, sql=sql)
        with _connect(server_dsn) as conn:
            comment = _comment(conn, staging) or f"pg-mcp fixture {dbname}"
            comment = _HASH_RE.sub("", comment).rstrip() + f" [sha256:{digest}]"
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(dbname)} WITH (FORCE)")
            conn.execute(f"ALTER DATABASE {_ident(staging)} RENAME TO {_ident(dbname)}")
            conn.execute(f"COMMENT ON DATABASE {_ident(dbname)} IS {_literal(comment)}")
    except BaseException:
        with _connect(server_dsn) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(staging)} WITH (FORCE)")
        raise


def ensure_loaded(
    server_dsn: str,
    names: Iterable[str] | None = None,
    force: bool = False,
    *,
    progress: Callable[[str, str, float], None] | None = None,
) -> dict[str, str]:
    """(Re)create the fixture databases that are missing, stale or forced.

    Returns ``{database: "loaded" | "up to date"}``; ``progress(db, status, seconds)`` is
    called after each database.
    """
    dbnames = [database_name(n) for n in (names or SIZES)]
    dbnames = sorted(set(dbnames), key=lambda d: SIZES.index(d.removeprefix(PREFIX)))
    result: dict[str, str] = {}
    with _connect(server_dsn) as lock_conn:
        for dbname in dbnames:
            start = time.monotonic()
            key = SIZES.index(dbname.removeprefix(PREFIX))
            lock_conn.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_BASE, key))
            try:
                sql, digest = read_fixture(dbname)  # read under the lock, once
                if force or recorded_hash(server_dsn, dbname) != digest:
                    _load(server_dsn, dbname, sql, digest)
                    result[dbname] = "loaded"
                else:
                    result[dbname] = "up to date"
            finally:
                lock_conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_BASE, key))
            if progress:
                progress(dbname, result[dbname], time.monotonic() - start)
    return result


# --- real-world sample databases (../shared/databases) -------------------------------------

SAMPLE_DBS: dict[str, tuple[str, ...]] = {
    "pagila": ("pagila/pagila-schema.sql", "pagila/pagila-data.sql"),
    "northwind": ("northwind/northwind.sql",),
}
# Lines dropped before loading: a setting PostgreSQL 12+ rejects, and ownership changes to a
# role named postgres (which need not exist on an external server; the loader owns instead).
_SKIP_LINE = re.compile(
    r"^\s*(SET\s+default_with_oids\b.*|ALTER\s+.*\s+OWNER\s+TO\s+postgres\s*;\s*)$",
    re.IGNORECASE | re.MULTILINE,
)


def _psql() -> str:
    from pg_mcp.db import embedded

    try:
        tool = Path(embedded.embedded_tool("psql"))
        if tool.exists():
            return str(tool)
    except Exception:
        pass
    return embedded.find_tool("psql")


def _sample_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _psql_target(db_dsn: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and an environment carrying it (PGPASSWORD), so the
    password never shows up in the process list."""
    import os

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(db_dsn)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env


def _psql_load(db_dsn: str, path: Path, label: str) -> None:
    text = _SKIP_LINE.sub("", path.read_text(encoding="utf-8"))
    psql = _psql()
    target, env = _psql_target(db_dsn)
    proc = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", target, "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        from pg_mcp.core.secrets import Redactor, dsn_password

        redact = Redactor([p for p in (dsn_password(db_dsn),) if p])
        err = redact(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "psql failed")
        raise PgMcpError("DB_ERROR", f"loading {label} failed: {err}")


def ensure_sample_dbs(
    server_dsn: str, shared_dir: Path | str, force: bool = False
) -> dict[str, str]:
    """Load pagila and northwind from ``shared_dir`` (``../shared/databases``).

    Returns ``{database: "loaded" | "up to date" | "missing"}``; raises PgMcpError when the
    folder does not exist.
    """
    from pg_mcp.db.discovery import database_dsn

    shared = Path(shared_dir)
    if not shared.is_dir():
        raise PgMcpError("CONFIG_ERROR", f"no sample databases folder at {shared}")
    result: dict[str, str] = {}
    with _connect(server_dsn) as lock_conn:
        for key, (dbname, rel) in enumerate(SAMPLE_DBS.items(), start=10):
            files = [shared / r for r in rel]
            if not all(f.is_file() for f in files):
                result[dbname] = "missing"
                continue
            digest = _sample_hash(files)
            lock_conn.execute("SELECT pg_advisory_lock(%s, %s)", (_LOCK_BASE, key))
            try:
                if not force and recorded_hash(server_dsn, dbname) == digest:
                    result[dbname] = "up to date"
                    continue
                staging = dbname + "__loading"
                with _connect(server_dsn) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {_ident(staging)} WITH (FORCE)")
                    conn.execute(
                        f"CREATE DATABASE {_ident(staging)} TEMPLATE template0 ENCODING 'UTF8'"
                    )
                try:
                    for f in files:
                        _psql_load(database_dsn(server_dsn, staging), f, f"{dbname}/{f.name}")
                    with _connect(database_dsn(server_dsn, staging)) as conn:
                        conn.execute("ANALYZE")
                    with _connect(server_dsn) as conn:
                        conn.execute(f"DROP DATABASE IF EXISTS {_ident(dbname)} WITH (FORCE)")
                        conn.execute(f"ALTER DATABASE {_ident(staging)} RENAME TO {_ident(dbname)}")
                        text = (
                            f"{dbname} sample database from ../shared/databases [sha256:{digest}]"
                        )
                        conn.execute(f"COMMENT ON DATABASE {_ident(dbname)} IS {_literal(text)}")
                except BaseException:
                    with _connect(server_dsn) as conn:
                        conn.execute(f"DROP DATABASE IF EXISTS {_ident(staging)} WITH (FORCE)")
                    raise
                result[dbname] = "loaded"
            finally:
                lock_conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_BASE, key))
    return result
