"""The CLI contract of the safety core: validate, run, databases, doctor, describe (real
processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pg_mcp.cli.commands.run import cell_text, display_width, footer, render_table
from pg_mcp.cli.commands.validate import caret_lines
from pg_mcp.db.discovery import database_dsn

ROOT = Path(__file__).resolve().parent.parent
PG_MCP = str(Path(sys.executable).parent / "pg-mcp")


def cli(
    *args: str,
    dsn: str,
    home: Path,
    stdin: str | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PG_MCP_", "PG"))}
    base.update(PG_MCP_DSN=dsn, PG_MCP_HOME=str(home), **(env or {}))
    return subprocess.run(
        [PG_MCP, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=base,
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
    assert out["rows"][0] == [1, "item 1", "1.5"]  # numeric: exact text
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


# --- describe ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop(pg_dsn: str) -> Iterator[str]:
    """A small shop: keys both ways, an enum, a unique key, a quoted name, comments."""
    from conftest import scratch_database

    setup = """
        CREATE TYPE state AS ENUM ('open', 'closed');
        CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE, secret_note text);
        COMMENT ON TABLE customers IS 'People who buy';
        CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers,
          status state NOT NULL DEFAULT 'open', channel text, amount numeric CHECK (amount >= 0));
        COMMENT ON COLUMN orders.channel IS 'web or shop';
        CREATE INDEX orders_channel_idx ON orders (channel) WHERE channel IS NOT NULL;
        CREATE TABLE "Mixed Case" (x int);
        INSERT INTO customers SELECT g, 'c' || g || '@x.org', 'n' FROM generate_series(1, 5) g;
        INSERT INTO orders SELECT g, 1 + g % 5, CASE WHEN g % 4 = 0 THEN 'closed' ELSE 'open' END::state,
          (ARRAY['web', 'web', 'web', 'shop', 'phone'])[1 + g % 5], g FROM generate_series(1, 40) g;
        ANALYZE;
    """
    with scratch_database(pg_dsn, setup, "describe") as name:
        yield name


def test_describe_lists_tables_and_views(reader_dsn: str, shop: str, tmp_path: Path) -> None:
    p = cli("describe", "--db", shop, "--json", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 0, p.stderr
    out = one_json(p.stdout)
    by_name = {r["name"]: r for r in out["relations"]}
    assert set(by_name) == {"public.customers", "public.orders", "public.Mixed Case"}
    assert by_name["public.customers"]["comment"] == "People who buy"
    assert (
        by_name["public.orders"]["kind"] == "table"
        and by_name["public.orders"]["row_estimate"] == 40
    )
    text = cli("describe", "--db", shop, dsn=reader_dsn, home=tmp_path).stdout.splitlines()
    assert text[1].startswith(f"database {shop}: 3 tables and views") and "data to read" in text[0]
    assert any(
        ln.split() == ["public.customers", "table", "5", '"People', "who", 'buy"'] for ln in text
    )
    assert any(ln.startswith('public."Mixed Case"') for ln in text)


def test_describe_a_table(reader_dsn: str, shop: str, tmp_path: Path) -> None:
    p = cli("describe", "--db", shop, "--json", "orders", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 0, p.stderr
    out = one_json(p.stdout)
    assert out["table"]["name"] == "public.orders" and out["table"]["row_count"] == 40
    cols = {c["name"]: c for c in out["columns"]}
    assert list(cols) == ["id", "customer_id", "status", "channel", "amount"]
    assert cols["status"]["enum_labels"] == ["open", "closed"] and not cols["status"]["nullable"]
    assert cols["status"]["default"] == "'open'::state" and cols["id"]["primary_key"]
    assert cols["channel"]["comment"] == "web or shop"
    assert (
        cols["channel"]["samples"] == ["phone", "shop", "web"]
        and cols["channel"]["samples_complete"]
    )
    assert out["primary_key"]["columns"] == ["id"]
    assert out["foreign_keys"] == [
        {"name": "orders_customer_id_fkey", "columns": ["customer_id"],
         "references": "public.customers", "ref_columns": ["id"], "inferred": None}
    ]  # fmt: skip
    assert [c["definition"] for c in out["checks"]] == ["CHECK (amount >= 0::numeric)"]
    idx = {i["name"]: i for i in out["indexes"]}
    assert idx["orders_channel_idx"]["predicate"] == "channel IS NOT NULL"
    assert idx["orders_pkey"]["primary"] is True
    # the other direction, and a unique key
    out = one_json(cli("describe", "--db", shop, "--json", "public.customers", dsn=reader_dsn, home=tmp_path).stdout)  # fmt: skip
    assert out["referenced_by"] == [
        {"name": "orders_customer_id_fkey", "table": "public.orders",
         "columns": ["customer_id"], "ref_columns": ["id"], "inferred": None}
    ]  # fmt: skip
    assert out["unique"] == [{"name": "customers_email_key", "columns": ["email"]}]
    # text form
    text = cli("describe", "--db", shop, "orders", dsn=reader_dsn, home=tmp_path).stdout
    lines = text.splitlines()
    assert "data to read" in lines[0] and lines[1] == "table public.orders"
    assert lines[2] == "rows: 40 (exact count); planner estimate: 40"
    assert any(ln.startswith("status ") and "enum: 'open', 'closed'" in ln for ln in lines)
    assert any(ln.startswith("channel ") and ln.endswith("values: 'phone', 'shop', 'web' · \"web or shop\"") for ln in lines)  # fmt: skip
    assert "  (customer_id) -> public.customers (id)  orders_customer_id_fkey" in lines
    assert "  orders_channel_idx: btree (channel) WHERE channel IS NOT NULL" in lines
    # quoted and case-insensitive spellings of a name
    for spelling in ('"Mixed Case"', 'public."Mixed Case"', "public.Mixed Case", "mixed case"):
        p = cli("describe", "--db", shop, "--json", spelling, dsn=reader_dsn, home=tmp_path)
        assert p.returncode == 0 and one_json(p.stdout)["table"]["name"] == "public.Mixed Case", (
            spelling
        )


def test_describe_column_values(reader_dsn: str, shop: str, tmp_path: Path) -> None:
    def values(*extra: str, env: dict[str, str] | None = None) -> dict:  # type: ignore[type-arg]
        p = cli("describe", "--db", shop, "--json", "orders", "--column", "channel", *extra,
                dsn=reader_dsn, home=tmp_path, env=env)  # fmt: skip
        assert p.returncode == 0, p.stderr
        return one_json(p.stdout)

    out = values()
    assert out["values"] == [
        {"value": "web", "n": 24}, {"value": "phone", "n": 8}, {"value": "shop", "n": 8}
    ]  # fmt: skip
    assert out["complete"] is True and out["column"] == "channel" and out["type"] == "text"
    out = values("--values", "2")
    assert [v["value"] for v in out["values"]] == ["web", "phone"] and out["complete"] is False
    # the row cap applies: N + 1 rows at most the configured max_rows
    out = values("--values", "100", env={"PG_MCP_MAX_ROWS": "2"})
    assert len(out["values"]) == 1 and out["complete"] is False
    text = cli("describe", "--db", shop, "orders", "--column", "status", dsn=reader_dsn, home=tmp_path).stdout  # fmt: skip
    lines = text.splitlines()
    assert (
        lines[1]
        == "column public.orders.status (state): 2 distinct values (complete), most frequent first"
    )
    assert lines[3].split() == ["value", "n"] and lines[4].split() == ["'open'", "30"]


def test_describe_runs_only_validated_queries(reader_dsn: str, shop: str, tmp_path: Path) -> None:
    """The count and the values go through run_readonly (the audit log records them), and the
    access policy applies: a denied column is refused, and never listed."""
    audit = tmp_path / "audit.jsonl"
    config = tmp_path / "pg-mcp.toml"
    config.write_text('[policy]\ndeny_columns = ["public.customers.secret_note"]\n')
    env = {"PG_MCP_AUDIT_LOG": str(audit), "PG_MCP_CONFIG": str(config)}
    p = cli("describe", "--db", shop, "--json", "customers", dsn=reader_dsn, home=tmp_path, env=env)
    out = one_json(p.stdout)
    assert [c["name"] for c in out["columns"]] == ["id", "email"] and out["table"]["row_count"] == 5
    p = cli("describe", "--db", shop, "--json", "customers", "--column", "secret_note",
            dsn=reader_dsn, home=tmp_path, env=env)  # fmt: skip
    assert p.returncode == 1 and one_json(p.stdout)["code"] == "ACCESS_DENIED"
    cli("describe", "--db", shop, "--json", "customers", "--column", "email", dsn=reader_dsn, home=tmp_path, env=env)  # fmt: skip
    logged = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["sql"], e["outcome"]) for e in logged] == [
        ('SELECT count(*) FROM "public"."customers"', "ok"),
        ('SELECT "secret_note" AS value, count(*) AS n FROM "public"."customers" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 21', "ACCESS_DENIED"),
        ('SELECT "email" AS value, count(*) AS n FROM "public"."customers" GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 21', "ok"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "hint"),
    [
        (["ordres"], "UNKNOWN_OBJECT", "did you mean public.orders?"),
        (["public.nope"], "UNKNOWN_OBJECT", None),
        (["orders", "--column", "chanel"], "UNKNOWN_OBJECT", "did you mean channel?"),
        (["--db", "pgmcp_no_such_db"], "UNKNOWN_DATABASE", None),
    ],
)
def test_describe_errors_are_one_json_object(
    args: list[str], code: str, hint: str | None, reader_dsn: str, shop: str, tmp_path: Path
) -> None:
    argv = args if args[0] == "--db" else ["--db", shop, *args]
    p = cli("describe", "--json", *argv, dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 1
    out = one_json(p.stdout)
    assert out["ok"] is False and out["code"] == code
    if hint:
        assert out["hint"] == hint
    p = cli("describe", *argv, dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 1 and p.stdout == "" and p.stderr.startswith(f"error {code}: ")


def test_describe_column_needs_a_table(reader_dsn: str, shop: str, tmp_path: Path) -> None:
    p = cli("describe", "--db", shop, "--column", "x", dsn=reader_dsn, home=tmp_path)
    assert p.returncode == 2 and "--column needs a TABLE" in p.stderr


# --- invalid UTF-8 -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "run"])
def test_invalid_utf8_is_a_one_line_parse_error(
    command: str, reader_dsn: str, shop: str, tmp_path: Path
) -> None:
    """Standard input and arguments with invalid UTF-8, under the C locale and a strict
    encoding: one PARSE_ERROR naming the first bad byte, never a traceback."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PG_MCP_", "PG", "LC_", "LANG"))
    }
    env.update(PG_MCP_DSN=reader_dsn, PG_MCP_HOME=str(tmp_path), LC_ALL="C",
               PYTHONIOENCODING="utf-8:strict")  # fmt: skip
    for extra in ([], ["--json"]):
        argv = [PG_MCP, command, "--db", shop, *extra]
        p = subprocess.run([*argv, "-"], input=b"SELECT 1 -- caf\xc3\n\xff", capture_output=True,
                           env=env, timeout=120)  # fmt: skip
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        assert p.returncode == 1 and "Traceback" not in text, text
        assert "standard input is not valid UTF-8 (byte 16)" in text, text
        assert len(text.strip().splitlines()) <= 2  # the error, and its hint
        if extra:
            assert json.loads(p.stdout)["code"] == "PARSE_ERROR"
        p = subprocess.run([*argv, b"SELECT '\xff'"], capture_output=True, env=env, timeout=120)
        text = (p.stdout + p.stderr).decode("utf-8", "replace")
        assert p.returncode == 1 and "Traceback" not in text, text
        assert "the sql argument is not valid UTF-8 (byte 9)" in text, text
    p = subprocess.run([PG_MCP, "describe", "--db", shop, b"orders\xfe"], capture_output=True,
                       env=env, timeout=120)  # fmt: skip
    assert p.returncode == 1 and b"the table argument is not valid UTF-8 (byte 7)" in p.stderr


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
