"""pg-mcp doctor: which server, which role, and how much that role could change.

``collect(settings)`` gathers facts from the server (the only I/O); ``assess(facts)`` turns
them into warnings and ``grant_statements(...)`` writes the SQL for a least-privilege
read-only role; ``build_report`` puts it together and ``render_text`` prints it. Reading is
all pg-mcp needs: any way the role could write is reported loudly.
"""

from __future__ import annotations

import fnmatch
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pg_mcp.core.settings import Settings

READER_ROLE = "pgmcp_reader"
MAX_DATABASES = 50  # databases inspected for write privileges
RISKY_ROLES = {
    "pg_write_all_data": "can INSERT, UPDATE and DELETE in every table",
    "pg_read_server_files": "can read any file the server can (COPY FROM, pg_read_file)",
    "pg_write_server_files": "can write files on the server (COPY TO)",
    "pg_execute_server_program": "can run programs on the server (COPY ... PROGRAM)",
    "pg_signal_backend": "can cancel or terminate other sessions",
}
NOTED_ROLES = ("pg_read_all_data", "pg_monitor", "pg_read_all_settings", "pg_read_all_stats")

_SERVER_SQL = """
SELECT current_setting('server_version'), current_setting('server_version_num')::int,
       current_user, session_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls,
       r.rolreplication
FROM pg_roles r WHERE r.rolname = current_user
"""
# Is this server a hot standby, and how far behind its primary? (Functions any role may call.)
# replay_lag_seconds: since the last transaction replayed (the real lag while the primary is
# writing; it also grows on an idle primary); replay_lag_bytes: WAL received, not yet replayed.
_RECOVERY_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery()
            THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
       CASE WHEN pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 END,
       pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text
"""
_MEMBER_SQL = """
SELECT rolname, pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = ANY(%s)
"""
_USER_SCHEMAS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
)
_DATABASE_SQL = f"""
WITH writable AS (
  SELECT format('%I.%I', n.nspname, c.relname) AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'f', 'm') AND {_USER_SCHEMAS}
    AND (has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')
         OR has_table_privilege(c.oid, 'DELETE') OR has_table_privilege(c.oid, 'TRUNCATE'))
)
SELECT has_database_privilege(current_database(), 'CREATE'),
       has_database_privilege(current_database(), 'TEMP'),
       ARRAY(SELECT n.nspname::text FROM pg_namespace n WHERE {_USER_SCHEMAS} ORDER BY 1),
       ARRAY(SELECT n.nspname::text FROM pg_namespace n
             WHERE has_schema_privilege(n.oid, 'CREATE') AND {_USER_SCHEMAS} ORDER BY 1),
       (SELECT count(*) FROM writable),
       ARRAY(SELECT name FROM writable ORDER BY 1 LIMIT 5)
"""


@dataclass(frozen=True)
class Finding:
    level: str  # "danger" (can change data or the server) or "warn"
    message: str


def collect(settings: Settings) -> dict[str, Any]:
    """Facts about the server, the role and every reachable database (read-only queries)."""
    import psycopg

    from pg_mcp.core.errors import PgMcpError
    from pg_mcp.core.secrets import Redactor
    from pg_mcp.db.discovery import database_dsn, list_databases, server_dsn

    dsn = server_dsn(settings)
    redact = Redactor(settings.secrets())
    from pg_mcp.db.pools import utility_kwargs, utility_transaction

    kwargs = utility_kwargs(settings)
    try:
        with psycopg.connect(dsn, **kwargs) as conn, utility_transaction(conn, settings):
            version, version_num, user, session_user, sup, createrole, createdb, bypassrls, repl = (
                conn.execute(_SERVER_SQL).fetchone() or (None,) * 9
            )
            roles = list(RISKY_ROLES) + list(NOTED_ROLES)
            member = {name: bool(m) for name, m in conn.execute(_MEMBER_SQL, [roles]).fetchall()}
            recovery = _recovery(conn)
    except psycopg.Error as exc:
        raise PgMcpError(
            "CONNECTION_ERROR",
            redact(f"cannot query the server: {str(exc).strip().splitlines()[0]}"),
            hint="check PG_MCP_DSN (or unset it to use the embedded server)",
        ) from None

    databases: dict[str, dict[str, Any]] = {}
    for info in list_databases(settings, dsn)[:MAX_DATABASES]:
        entry: dict[str, Any] = {"size_bytes": info.size_bytes}
        try:
            with (
                psycopg.connect(database_dsn(dsn, info.name), **kwargs) as conn,
                utility_transaction(conn, settings),
            ):
                row = conn.execute(_DATABASE_SQL).fetchone()
            assert row is not None
            create_db, temp, schemas, create_schemas, n_writable, examples = row
            entry.update(
                create=bool(create_db),
                temp=bool(temp),
                schemas=list(schemas),
                create_schemas=list(create_schemas),
                writable_tables=int(n_writable),
                writable_examples=list(examples),
            )
        except psycopg.Error as exc:
            entry["error"] = redact(
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            )
        databases[info.name] = entry

    targets: dict[str, dict[str, Any]] = {}
    for purpose, other in (
        ("query", settings.query_dsn),
        ("introspection", settings.introspection_dsn),
    ):
        if other and other != dsn:
            targets[purpose] = _target_facts(other, settings, redact)

    return {
        "server_version": version,
        "server_version_num": version_num,
        "recovery": recovery,
        "targets": targets,
        "role": user,
        "session_user": session_user,
        "superuser": bool(sup),
        "createrole": bool(createrole),
        "createdb": bool(createdb),
        "bypassrls": bool(bypassrls),
        "replication": bool(repl),
        "memberships": {name: member.get(name, False) for name in roles},
        "databases": databases,
    }


def _recovery(conn: Any) -> dict[str, Any]:
    """Standby or primary, and the replay lag of a standby (see _RECOVERY_SQL)."""
    row = conn.execute(_RECOVERY_SQL).fetchone()
    standby, lag_s, lag_b, received, replayed = row if row else (False, None, None, None, None)
    out: dict[str, Any] = {"standby": bool(standby)}
    if standby:
        out.update(
            replay_lag_seconds=None if lag_s is None else round(float(lag_s), 3),
            replay_lag_bytes=None if lag_b is None else int(lag_b),
            received_lsn=received,
            replayed_lsn=replayed,
        )
    return out


def _target_facts(dsn: str, settings: Settings, redact: Any) -> dict[str, Any]:
    """The server behind ``query_dsn`` / ``introspection_dsn``: version, role, standby, lag."""
    import psycopg

    from pg_mcp.core.secrets import redact_dsn
    from pg_mcp.db.pools import utility_kwargs, utility_transaction

    out: dict[str, Any] = {"dsn": redact_dsn(dsn)}
    try:
        with (
            psycopg.connect(dsn, **utility_kwargs(settings)) as conn,
            utility_transaction(conn, settings),
        ):
            row = conn.execute(_SERVER_SQL).fetchone() or (None,) * 9
            out.update(version=row[0], role=row[2], **_recovery(conn))
    except psycopg.Error as exc:
        text = str(exc).strip().splitlines()
        out["error"] = redact(text[0] if text else type(exc).__name__)
    return out


def describe_recovery(recovery: dict[str, Any]) -> str:
    """One line: primary, or standby with its replay lag."""
    if not recovery.get("standby"):
        return "primary (not in recovery)"
    parts = []
    if recovery.get("replay_lag_bytes") is not None:
        parts.append(f"{recovery['replay_lag_bytes']:,} bytes of WAL not yet replayed")
    if recovery.get("replay_lag_seconds") is not None:
        parts.append(f"last transaction replayed {recovery['replay_lag_seconds']:g} s ago")
    else:
        parts.append("no transaction replayed since it started")
    return "hot standby (read-only by construction): " + ", ".join(parts)


def assess(facts: dict[str, Any]) -> list[Finding]:
    """Warnings about what the role could change (pure)."""
    role = facts.get("role")
    out: list[Finding] = []
    if facts.get("superuser"):
        out.append(
            Finding(
                "danger",
                f"role {role} is a SUPERUSER: it can change or destroy anything, read server files "
                "and run programs; pg-mcp refuses to run queries with it (PRIVILEGED_ROLE) unless "
                "policy.allow_privileged_role is set",
            )
        )
    if facts.get("createrole"):
        out.append(
            Finding(
                "danger",
                f"role {role} has CREATEROLE: it can create roles and grant them privileges",
            )
        )
    if facts.get("bypassrls"):
        out.append(
            Finding(
                "warn", f"role {role} has BYPASSRLS: row-level security policies do not apply to it"
            )
        )
    if facts.get("createdb"):
        out.append(Finding("warn", f"role {role} has CREATEDB: it can create databases"))
    if facts.get("replication"):
        out.append(Finding("warn", f"role {role} has REPLICATION: it can stream the whole cluster"))
    for name, what in RISKY_ROLES.items():
        if facts.get("memberships", {}).get(name) and not facts.get("superuser"):
            level = "warn" if name == "pg_signal_backend" else "danger"
            out.append(Finding(level, f"role {role} is a member of {name}: it {what}"))
    if facts.get("superuser"):
        return out  # it can write everything everywhere: per-database findings add nothing
    for db, entry in sorted(facts.get("databases", {}).items()):
        if entry.get("writable_tables"):
            examples = ", ".join(entry.get("writable_examples", []))
            out.append(
                Finding(
                    "danger",
                    f"database {db}: role {role} can write to {entry['writable_tables']} table(s), e.g. {examples}",
                )
            )
        if entry.get("create_schemas"):
            out.append(
                Finding(
                    "danger",
                    f"database {db}: role {role} can CREATE in schema(s) {', '.join(entry['create_schemas'])}",
                )
            )
        if entry.get("create"):
            out.append(
                Finding("warn", f"database {db}: role {role} can CREATE schemas in the database")
            )
    return out


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grant_statements(
    databases: dict[str, list[str]],
    version_num: int | None = None,
    deny_schemas: tuple[str, ...] = (),
    role: str = READER_ROLE,
) -> list[str]:
    """SQL for a least-privilege read-only role (pure). ``databases``: name -> user schemas."""
    r = _ident(role)
    lines = [
        "-- A least-privilege, read-only login role for pg-mcp (run as an administrator).",
        f"CREATE ROLE {r} LOGIN PASSWORD '<choose-a-strong-password>'"
        " NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;",
        f"ALTER ROLE {r} SET default_transaction_read_only = on;",
        f"ALTER ROLE {r} SET statement_timeout = '30s';",
    ]
    if version_num is None or version_num >= 140000:
        lines += [
            "-- Simplest (PostgreSQL 14+): read every table of every database, present and future.",
            "-- It ignores the schemas your pg-mcp.toml policy denies; prefer the per-schema grants below.",
            f"-- GRANT pg_read_all_data TO {r};",
        ]
    lines += [
        "-- Per database and schema (least privilege). ALTER DEFAULT PRIVILEGES covers tables created",
        "-- later by the role running it; add FOR ROLE <owner> for tables other roles create.",
    ]
    for db, schemas in sorted(databases.items()):
        lines.append(f"GRANT CONNECT ON DATABASE {_ident(db)} TO {r};")
        lines.append(f"\\connect {_ident(db)}")
        if version_num is not None and version_num < 150000:
            lines.append(
                "REVOKE CREATE ON SCHEMA public FROM PUBLIC;  -- default before PostgreSQL 15"
            )
        for schema in schemas:
            if any(fnmatch.fnmatchcase(schema, p) for p in deny_schemas):
                continue
            s = _ident(schema)
            lines += [
                f"GRANT USAGE ON SCHEMA {s} TO {r};",
                f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r};",
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r};",
            ]
    lines.append(f"-- then: PG_MCP_DSN='postgresql://{role}:<password>@<host>:<port>/postgres'")
    return lines


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from pg_mcp.core.version import VERSION as __version__

    out = {"pg-mcp": __version__, "python": platform.python_version()}
    for dist in ("psycopg", "psycopg-pool", "sqlglot", "mcp"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    try:
        import psycopg

        v = psycopg.pq.version()
        out["libpq"] = f"{v // 10000}.{v % 10000}"
    except Exception:
        pass
    return out


def config_file(explicit: str | None = None, env: dict[str, str] | None = None) -> str | None:
    """The pg-mcp.toml in use, as settings.load_settings finds it (None when there is none)."""
    env = dict(os.environ) if env is None else env
    path = Path(explicit or env.get("PG_MCP_CONFIG") or "pg-mcp.toml")
    return str(path.resolve()) if path.is_file() else None


def build_report(settings: Settings, config_path: str | None = None) -> dict[str, Any]:
    """Everything doctor shows, as one JSON-ready dict."""
    from pg_mcp.core.secrets import redact_dsn

    facts = collect(settings)
    if settings.dsn:
        server = {"mode": "external", "dsn": redact_dsn(settings.dsn)}
    else:
        from pg_mcp.db import embedded

        server = {
            "mode": "embedded",
            "dsn": redact_dsn(embedded.running_dsn(settings.home)),
            "data_dir": str(embedded.pgdata_dir(settings.home)),
        }
    findings = assess(facts)
    schemas = {db: e.get("schemas", []) for db, e in facts["databases"].items() if "error" not in e}
    return {
        "ok": True,
        "server": {**server, "version": facts["server_version"], **facts["recovery"]},
        "targets": facts["targets"],
        "role": {
            k: facts[k]
            for k in (
                "role",
                "session_user",
                "superuser",
                "createrole",
                "createdb",
                "bypassrls",
                "replication",
            )
        },
        "memberships": facts["memberships"],
        "databases": facts["databases"],
        "can_write": any(f.level == "danger" for f in findings),
        "queries_refused": _queries_refused(facts, settings),
        "warnings": [{"level": f.level, "message": f.message} for f in findings],
        "grant_sql": grant_statements(
            schemas, facts["server_version_num"], settings.policy.deny_schemas
        ),
        "limits": {
            "statement_timeout": settings.statement_timeout,
            "lock_timeout": settings.lock_timeout,
            "max_rows": settings.max_rows,
            "max_bytes": settings.max_bytes,
            "explain_max_cost": settings.explain_max_cost,
            "explain_max_rows": settings.explain_max_rows,
        },
        "audit_log": str(settings.audit_log) if settings.audit_log else None,
        "config_file": config_file(config_path),
        "versions": _versions(),
    }


def _queries_refused(facts: dict[str, Any], settings: Settings) -> bool:
    """Whether run_readonly refuses this role (PRIVILEGED_ROLE), as the executor decides it for
    the login role (a policy.query_role is checked by the executor itself)."""
    from pg_mcp.db.executor import PRIVILEGED_MEMBERSHIPS

    if settings.policy.allow_privileged_role or settings.policy.query_role:
        return False
    members = facts.get("memberships", {})
    return bool(facts.get("superuser")) or any(members.get(m) for m in PRIVILEGED_MEMBERSHIPS)


def render_text(report: dict[str, Any]) -> str:
    """The human-readable doctor report."""
    s, r = report["server"], report["role"]
    flags = [
        k.upper()
        for k in ("superuser", "createrole", "createdb", "bypassrls", "replication")
        if r[k]
    ]
    member_of = [name for name, yes in report["memberships"].items() if yes]
    lines = [
        "pg-mcp doctor",
        f"  server       PostgreSQL {s['version']} ({s['mode']}: {s['dsn']})",
        f"  role         {r['role']} (session user {r['session_user']})"
        + (f"  attributes: {', '.join(flags)}" if flags else ""),
        f"  recovery     {describe_recovery(s)}",
        f"  member of    {', '.join(member_of) if member_of else '(no predefined roles)'}",
        f"  databases    {len(report['databases'])} inspected",
    ]
    for purpose, t in sorted(report.get("targets", {}).items()):
        where = "queries" if purpose == "query" else purpose
        if "error" in t:
            lines.append(f"  {where:<12} {t['dsn']}: could not connect ({t['error']})")
        else:
            lines.append(
                f"  {where:<12} PostgreSQL {t['version']} ({t['dsn']}) as {t['role']}: "
                + describe_recovery(t)
            )
    for db, e in sorted(report["databases"].items()):
        if "error" in e:
            lines.append(f"    {db}: could not inspect ({e['error']})")
        else:
            state = (
                "can write" if e.get("writable_tables") or e.get("create_schemas") else "read-only"
            )
            lines.append(f"    {db}: {state}")
    lim = report["limits"]
    lines += [
        f"  limits       statement_timeout {lim['statement_timeout']:g} s, max_rows {lim['max_rows']}, "
        f"max_bytes {lim['max_bytes']:,}, explain_max_cost {lim['explain_max_cost']:g}, "
        f"explain_max_rows {lim['explain_max_rows']:g}",
        f"  audit log    {report['audit_log'] or '(off)'}",
        f"  config file  {report['config_file'] or '(none: defaults and environment)'}",
        "  versions     " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
    ]
    dangers = [w for w in report["warnings"] if w["level"] == "danger"]
    if report.get("queries_refused"):
        lines.append(
            "!!! pg-mcp REFUSES TO RUN QUERIES with this role (PRIVILEGED_ROLE): use a "
            "least-privilege role (below), set policy.query_role, or policy.allow_privileged_role."
        )
    for w in report["warnings"]:
        mark = "!!! DANGER" if w["level"] == "danger" else "!   warning"
        lines.append(f"{mark}: {w['message']}")
    if dangers:
        lines += [
            "",
            "!!! THIS ROLE CAN WRITE. pg-mcp runs every statement in a rolled-back READ ONLY transaction,",
            "!!! but a role that cannot write is the real guarantee. Create one with:",
        ]
    elif not report["warnings"]:
        lines.append("ok: the role cannot write anywhere pg-mcp can see.")
    if not dangers:
        lines += ["", "A least-privilege read-only role, for reference:"]
    lines += ["", *report["grant_sql"]]
    return "\n".join(lines)
