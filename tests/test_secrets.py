"""No secret from the DSN appears in any error, log or output.

A real role with a password; DSNs carrying it that point at an unreachable host, a missing
database, and (for the commands that get that far) the real server. Every CLI command's stdout
and stderr, and the audit log, are searched for the password, raw and percent-encoded. The
embedded server trusts unix-socket connections, so a wrong password would still connect: the
failure paths are exercised with unreachable hosts and missing databases instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pg_mcp.core.secrets import Redactor, dsn_password, redact_dsn
from pg_mcp.core.settings import load_settings
from pg_mcp.db.executor import run_readonly

PG_MCP = str(Path(sys.executable).parent / "pg-mcp")


# --- Redactor unit tests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "password", "redacted"),
    [
        ("postgresql://u:S3cr3t-x@h:5432/db", "S3cr3t-x", "postgresql://u:***@h:5432/db"),
        ("postgres://u:p%40ss%2Fw@h/db", "p@ss/w", "postgres://u:***@h/db"),
        ("postgresql://u@h/db?password=S3cr3t-q&sslmode=require", "S3cr3t-q", None),
        (
            "host=h user=u password=S3cr3t-kv dbname=d",
            "S3cr3t-kv",
            "host=h user=u password=*** dbname=d",
        ),
        ("host=h password='S3 cr3t' dbname=d", "S3 cr3t", "host=h password=*** dbname=d"),
        ("postgresql://u@h/db", None, "postgresql://u@h/db"),
        (None, None, ""),
    ],
)
def test_redact_dsn_and_dsn_password(
    dsn: str | None, password: str | None, redacted: str | None
) -> None:
    assert dsn_password(dsn) == password
    out = redact_dsn(dsn)
    if redacted is not None:
        assert out == redacted
    if password:
        assert password not in out and quote(password, safe="") not in out


def test_redactor_scrubs_known_secrets_and_dsn_shapes() -> None:
    r = Redactor(["S3cr3t-abc", None, "ab"])  # too-short secrets are ignored (would mangle text)
    assert r("failed for S3cr3t-abc!") == "failed for ***!"
    assert r("ab stays") == "ab stays"
    assert r("see postgresql://u:other-pw@h/db") == "see postgresql://u:***@h/db"
    assert r("password=hunter22 host=x") == "password=*** host=x"
    r.add("later-secret")
    assert r("a later-secret b") == "a *** b"
    assert r("") == ""


# --- the real thing -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secret_role(pg_dsn: str) -> Iterator[tuple[str, str]]:
    role = f"pgmcp_secret_{uuid.uuid4().hex[:8]}"
    password = f"S3cr3t-{uuid.uuid4().hex[:12]}@p:w/d%"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    try:
        yield role, password
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def uri(user: str, password: str, host: str, port: str, db: str) -> str:
    return f"postgresql://{user}:{quote(password, safe='')}@/{db}?host={quote(host, safe='/')}&port={port}"


def dsns(pg_dsn: str, role: str, password: str) -> dict[str, str]:
    params = conninfo_to_dict(pg_dsn)
    host, port = str(params.get("host") or "localhost"), str(params.get("port") or "5432")
    missing = f"pgmcp_missing_{uuid.uuid4().hex[:6]}"
    return {
        "unreachable-uri": uri(role, password, "127.0.0.1", "1", "postgres"),
        "unreachable-kv": make_conninfo(
            host="127.0.0.1",
            port="1",
            user=role,
            password=password,
            dbname="postgres",
            connect_timeout="2",
        ),
        "missing-database": uri(role, password, host, port, missing),
        "reachable": uri(role, password, host, port, str(params.get("dbname") or "postgres")),
    }


COMMANDS: list[list[str]] = [
    ["run", "--json", "--db", "postgres", "SELECT 1"],
    ["run", "--db", "postgres", "SELECT 1"],
    ["run", "--json", "--db", "pgmcp_no_such_db", "SELECT 1"],
    ["run", "--db", "postgres", "SELECT * FROM no_such_table"],
    ["databases", "--json"],
    ["databases"],
    ["doctor", "--json"],
    ["doctor"],
    ["validate", "--db", "postgres", "SELECT 1"],
    ["validate", "--json", "--db", "postgres", "SELECT no_such_column"],
    ["describe", "--db", "postgres", "--json"],
]


def run_cli(args: list[str], dsn: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PG_MCP_DSN=dsn, PG_MCP_HOME=str(home), PG_MCP_AUDIT_LOG=str(home / "audit.jsonl"))
    return subprocess.run(
        [PG_MCP, *args], capture_output=True, text=True, env=env, cwd=home, timeout=120
    )


def test_no_secret_in_any_cli_output_or_the_audit_log(
    pg_dsn: str, secret_role: tuple[str, str], tmp_path: Path
) -> None:
    role, password = secret_role
    forms = {password, quote(password, safe=""), quote(password)}
    jobs = [
        (name, dsn, args)
        for name, dsn in dsns(pg_dsn, role, password).items()
        # the unreachable servers fail the same way everywhere: every other command is enough
        for args in (COMMANDS[::2] if name.startswith("unreachable") else COMMANDS)
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda job: (job, run_cli(job[2], job[1], tmp_path / job[0])),
                jobs_with_homes(jobs, tmp_path),
            )
        )
    seen_failure = seen_success = False
    for (name, _dsn, args), proc in results:
        text = proc.stdout + proc.stderr
        for form in forms:
            assert form not in text, (name, args, text)
        seen_failure |= proc.returncode != 0
        seen_success |= proc.returncode == 0
        if name.startswith("unreachable") and args[0] in ("run", "databases", "doctor"):
            assert "CONNECTION_ERROR" in text, (name, args, text)
        if name == "reachable" and args == COMMANDS[0]:
            assert proc.returncode == 0 and '"ok": true' in proc.stdout, text
        if name == "reachable" and args == ["doctor", "--json"]:
            assert proc.returncode == 0 and ":***@" in proc.stdout, text
        if name == "missing-database" and args[0] == "databases":
            assert "CONNECTION_ERROR" in text and "does not exist" in text, text
    assert seen_failure and seen_success
    logs = list(tmp_path.glob("*/audit.jsonl"))
    assert logs, "the audit log was written"
    for log in logs:
        content = log.read_text()
        for form in forms:
            assert form not in content


def jobs_with_homes(
    jobs: list[tuple[str, str, list[str]]], tmp_path: Path
) -> list[tuple[str, str, list[str]]]:
    for name, _, _ in jobs:
        (tmp_path / name).mkdir(exist_ok=True)
    return jobs


def test_run_readonly_results_carry_no_secret(
    pg_dsn: str, secret_role: tuple[str, str], tmp_path: Path
) -> None:
    role, password = secret_role
    for dsn in dsns(pg_dsn, role, password).values():
        s = load_settings(
            env={"PG_MCP_DSN": dsn, "PG_MCP_HOME": str(tmp_path)},
            config_path=None,
            connect_timeout=2,
        )
        for db in ("postgres", "pgmcp_no_such_db"):
            out = str(run_readonly("SELECT 1", db, settings=s, validate=False).to_dict())
            assert password not in out and quote(password, safe="") not in out
