"""The CLI contract of the safety core: validate, run, databases, doctor, psql (real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pg_mcp.commands.run import cell_text, display_width, footer, render_table
from pg_mcp.commands.validate import caret_lines
from pg_mcp.discovery import database_dsn

ROOT = Path(__file__).resolve().parent.parent
PG_MCP = str(Path(sys.executable).parent / "pg-mcp")


def cli(
    *args: str, dsn: str, home: Path, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_MCP_", "PG"))}
    env.update(PG_MCP_DSN=dsn, PG_MCP_HOME=str(home))
    return subprocess.run(
        [PG_MCP, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=timeout,
    )


def one_json(out: str) -> dict:  # type: ignore[type-arg]
    """stdout must be exactly one JSON object on one line."""
    assert out.endswith("\n") and out.count("\n") == 1, out
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


@pytest.fixture
def db(pg_dsn: str, scratch_db: str) -> str:
    with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id int PRIMARY KEY, label text, price numeric);"
            "INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 10) g;"
            "COMMENT ON DATABASE " + f'"{scratch_db}"' + " IS 'cli test database'"
        )
    return scratch_db


# --- run ---------------------------------------------------------------------------------


def test_run_json_success_is_exactly_one_object(
    pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    p = cli("run", "--db", db, "--json", "--max-rows", "3", "SELECT id, label, price FROM items ORDER BY id",
            dsn=reader_dsn, home=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = one_json(p.stdout)
    assert out["ok"] is True and out["row_count"] == 3 and out["truncated"] is True
    assert out["columns"] == [
        {"name": "id", "type": "integer"},
        {"name": "label", "type": "text"},
        {"name": "price", "type": "numeric"},
    ]
    assert out["rows"][0] == [1, "item 1", 1.5]
    assert out["database"] == db and out["elapsed_ms"] > 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--db", "no_such_db_pgmcp", "SELECT 1"], "UNKNOWN_DATABASE"),
        (["--db", "{db}", "DELETE FROM items"], "NOT_READ_ONLY"),
        (["--db", "{db}", "SELECT 1; DROP TABLE items"], "MULTIPLE_STATEMENTS"),
        (["--db", "{db}", "SELECT * FROM items WHERE id = 1/0"], "DB_ERROR"),
        (
            ["--db", "{db}", "--timeout", "0.3", "SELECT count(*) FROM generate_series(1, 1e10)"],
            "TIMEOUT",
        ),
        (["SELECT 1"], "DATABASE_REQUIRED"),
    ],
)
def test_run_json_failures_are_one_object_and_nonzero(
    args: list[str], code: str, pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    p = cli("run", "--json", *[a.replace("{db}", db) for a in args], dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 1
    out = one_json(p.stdout)
    assert out["ok"] is False and out["code"] == code and out["message"]
    with psycopg.connect(database_dsn(pg_dsn, db)) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 10  # type: ignore[index]


def test_run_json_connection_error(tmp_path: Path) -> None:
    p = cli(
        "run",
        "--db",
        "x",
        "--json",
        "SELECT 1",
        dsn="postgresql://u@127.0.0.1:1/postgres",
        home=tmp_path,
    )
    assert p.returncode == 1
    out = one_json(p.stdout)
    assert out["code"] == "CONNECTION_ERROR"


def test_run_table_and_footer(pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path) -> None:
    p = cli(
        "run",
        "--db",
        db,
        "--max-rows",
        "2",
        "SELECT id, label FROM items ORDER BY id",
        dsn=reader_dsn,
        home=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split("|")[0].strip() == "id" and "label" in lines[0]
    assert set(lines[1]) <= {"-", "+"}
    assert lines[2].startswith(" 1 | item 1")
    assert lines[-1].startswith("(2 rows, truncated) in ") and lines[-1].endswith(" ms")
    p = cli("run", "--db", db, "SELECT count(*) FROM items", dsn=reader_dsn, home=tmp_path)
    assert p.stdout.splitlines()[-1].startswith("(1 row) in ")


def test_run_reads_stdin_and_reports_errors_with_a_caret(
    pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    p = cli(
        "run",
        "--db",
        db,
        "-",
        dsn=reader_dsn,
        home=tmp_path,
        stdin="SELECT label FROM items WHERE id = 3\n",
    )
    assert p.returncode == 0 and "item 3" in p.stdout
    p = cli("run", "--db", db, "SELECT lable FROM items", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.startswith("error UNKNOWN_OBJECT") or p.stderr.startswith("error DB_ERROR")
    assert "  SELECT lable FROM items\n         ^" in p.stderr


# --- validate --------------------------------------------------------------------------------


def test_validate_exit_codes_and_output(pg_dsn: str, reader_dsn: str, tmp_path: Path) -> None:
    ok = cli("validate", "SELECT 1", dsn=reader_dsn, home=tmp_path)
    assert (ok.returncode, ok.stdout) == (0, "ok\n")
    bad = cli("validate", "SELECT 1; DROP TABLE x", dsn=reader_dsn, home=tmp_path)
    assert bad.returncode == 1
    first, *rest = bad.stdout.splitlines()
    assert first.startswith("MULTIPLE_STATEMENTS: ")
    assert "  SELECT 1; DROP TABLE x" in rest and "            ^" in rest
    js = cli("validate", "--json", "-", dsn=reader_dsn, home=tmp_path, stdin="DELETE FROM t")
    assert js.returncode == 1
    verdict = one_json(js.stdout)
    assert verdict["ok"] is False and verdict["code"] == "NOT_READ_ONLY"


def test_validate_against_a_database(pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path) -> None:
    p = cli("validate", "--db", db, "--json", "SELECT id FROM items", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 0 and one_json(p.stdout)["ok"] is True
    p = cli("validate", "--db", db, "SELECT id FROM itemz", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 1 and p.stdout.startswith("UNKNOWN_OBJECT: ")


# --- databases, doctor ------------------------------------------------------------------------


def test_databases(pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path) -> None:
    p = cli("databases", "--json", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 0
    out = one_json(p.stdout)
    mine = [d for d in out["databases"] if d["name"] == db]
    assert mine and mine[0]["comment"] == "cli test database" and mine[0]["size_bytes"] > 0
    assert not any(d["name"].startswith("template") for d in out["databases"])
    p = cli("databases", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 0 and any(line.startswith(db) for line in p.stdout.splitlines())
    p = cli("databases", "--json", dsn="postgresql://u@127.0.0.1:1/postgres", home=tmp_path)
    assert p.returncode == 1 and one_json(p.stdout)["code"] == "CONNECTION_ERROR"


def test_doctor_reports_and_warns_loudly(pg_dsn: str, reader_dsn: str, tmp_path: Path) -> None:
    p = cli("doctor", "--json", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 0, p.stderr
    report = one_json(p.stdout)
    assert report["server"]["mode"] == "external" and report["server"]["version"]
    assert report["role"]["role"]
    assert {"psycopg", "sqlglot", "pg-mcp"} <= set(report["versions"])
    assert any("CREATE ROLE" in line for line in report["grant_sql"])
    text = cli("doctor", dsn=reader_dsn, home=tmp_path).stdout
    assert "server       PostgreSQL" in text and "GRANT" in text
    if report["role"]["superuser"]:  # the embedded server and test containers run as superuser
        assert report["can_write"] is True
        assert "!!! DANGER: role" in text and "SUPERUSER" in text


# --- psql --------------------------------------------------------------------------------------


def test_psql_is_read_only_and_time_limited(
    pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    p = cli("psql", "--db", db, "--", "-X", "-A", "-t", "-c", "SELECT count(*) FROM items",
            dsn=reader_dsn, home=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "10"
    assert "read-only" in p.stderr.splitlines()[0]
    p = cli("psql", "--db", db, "--timeout", "3", "--", "-X", "-A", "-t", "-c", "SHOW statement_timeout",
            "-c", "SHOW default_transaction_read_only", dsn=reader_dsn, home=tmp_path)  # fmt: skip
    assert p.stdout.split() == ["3s", "on"]
    p = cli(
        "psql",
        "--db",
        db,
        "--",
        "-X",
        "-c",
        "CREATE TABLE x (a int)",
        dsn=reader_dsn,
        home=tmp_path,
    )
    assert p.returncode != 0 and "read-only transaction" in p.stderr
    with psycopg.connect(database_dsn(pg_dsn, db)) as conn:
        assert conn.execute("SELECT to_regclass('x')").fetchone()[0] is None  # type: ignore[index]


# --- pure helpers ------------------------------------------------------------------------------


def test_table_rendering_helpers() -> None:
    assert (
        cell_text(None) == "NULL" and cell_text(True) == "true" and cell_text([1, "a"]) == '[1,"a"]'
    )
    assert cell_text("a\nb") == "a\\nb"
    long = cell_text("x" * 100, 10)
    assert long == "x" * 9 + "…"
    assert display_width(cell_text("中" * 30, 10)) <= 10
    lines = render_table([{"name": "n"}, {"name": "word"}], [[1, "a"], [100, "中文"]])
    assert lines == ["n   | word", "----+-----", "  1 | a", "100 | 中文"]
    assert footer(1, False, 3.2) == "(1 row) in 3 ms"
    assert footer(100, True, 12.7) == "(100 rows, truncated) in 13 ms"
    assert caret_lines("SELECT\n  x FROM t", 10) == ["    x FROM t", "    ^"]
    assert caret_lines("SELECT 1", None) == []
