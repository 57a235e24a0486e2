"""pg-mcp psql --db NAME [-- extra psql args]: psql in a read-only, time-limited session.

The connection parameters travel in the environment (PGHOST, PGUSER, PGPASSWORD, ...), never
on the command line, so the password does not show in ``ps``. PGOPTIONS makes the session
read-only by default and sets statement, lock and idle-in-transaction timeouts. This is a
guard-rail for humans, not a security boundary: a session can ``SET`` its way out; use a
read-only role (see ``pg-mcp doctor``) for that.
"""

from __future__ import annotations

import argparse
import os
import sys

from pg_mcp.settings import Settings

# libpq connection keyword -> environment variable
_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
    "channel_binding": "PGCHANNELBINDING",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "client_encoding": "PGCLIENTENCODING",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslnegotiation": "PGSSLNEGOTIATION",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "sslcertmode": "PGSSLCERTMODE",
    "requirepeer": "PGREQUIREPEER",
    "require_auth": "PGREQUIREAUTH",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "gssdelegation": "PGGSSDELEGATION",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "load_balance_hosts": "PGLOADBALANCEHOSTS",
}


def _ms(seconds: float) -> int:
    return 0 if seconds <= 0 else max(1, round(seconds * 1000))


def psql_environment(
    dsn: str, timeout: float, settings: Settings, base: dict[str, str]
) -> dict[str, str]:
    """The environment psql runs with: the DSN as PG* variables plus read-only PGOPTIONS."""
    from psycopg.conninfo import conninfo_to_dict

    env = dict(base)  # inherited PG* variables apply, as they do to pg-mcp's own connections
    params = conninfo_to_dict(dsn)
    for key, value in params.items():
        var = _ENV.get(key)
        if var and value is not None and key != "options":
            env[var] = str(value)
    guard = (
        "-c default_transaction_read_only=on"
        f" -c statement_timeout={_ms(timeout)}"
        f" -c lock_timeout={_ms(settings.lock_timeout)}"
        f" -c idle_in_transaction_session_timeout={_ms(settings.idle_in_transaction_timeout)}"
    )
    extra = " ".join(str(o) for o in (base.get("PGOPTIONS"), params.get("options")) if o)
    env["PGOPTIONS"] = f"{extra} {guard}".strip()  # ours last: they win
    env.setdefault("PGAPPNAME", "pg-mcp psql")
    return env


def command_line(psql: str, extra: list[str]) -> list[str]:
    args = list(extra)
    if args and args[0] == "--":
        args = args[1:]
    return [psql, *args]


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp import embedded
    from pg_mcp.discovery import database_dsn, resolve_database, server_dsn

    server = server_dsn(settings)
    db = resolve_database(settings, args.db, dsn=server)
    timeout = args.timeout if args.timeout and args.timeout > 0 else settings.statement_timeout
    env = psql_environment(database_dsn(server, db), timeout, settings, dict(os.environ))
    argv = command_line(embedded.find_tool("psql"), args.psql_args or [])
    print(
        f"pg-mcp psql: database {db}, read-only session (default_transaction_read_only=on), "
        f"statement_timeout {timeout:g} s. A guard-rail, not a security boundary.",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os.execve(argv[0], argv, env)
    return 0  # unreachable
