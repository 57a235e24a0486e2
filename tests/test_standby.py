"""pg-mcp pointed at a real streaming hot standby (tests/standby.py): discovery, references,
run_readonly, ask (against the stand-in model), doctor (standby and replay lag), and the
separate query / introspection DSNs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pg_mcp.core.settings import Settings, load_settings
from pg_mcp.db.discovery import list_databases
from pg_mcp.db.executor import Pools, run_readonly
from standby import StandbyPair, standby_fixture  # noqa: F401
from standin_model import (  # noqa: F401
    StandinModel,
    gen,
    is_judge_request,
    judge,
    standin_fixture,
)

PGMCP = str(Path(sys.executable).parent / "pg-mcp")
DB = "shop"
# a port nothing listens on: the main DSN when only query_dsn / introspection_dsn may be used
NOWHERE = "host=127.0.0.1 port=1 user=pgmcp_reader dbname=postgres connect_timeout=2"


@pytest.fixture(scope="module")
def pair(standby_pair: StandbyPair) -> StandbyPair:
    """The pair with a database written on the primary and replayed on the standby."""
    with psycopg.connect(standby_pair.primary_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(standby_pair.dsn("primary", dbname=DB), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));"
            "COMMENT ON TABLE products IS 'Things for sale';"
            "INSERT INTO products SELECT g, 'product ' || g, g * 1.5 FROM generate_series(1, 40) g;"
            "ANALYZE products;"
        )
    standby_pair.wait_replayed()
    return standby_pair


def settings_for(dsn: str, tmp: Path, **overrides: Any) -> Settings:
    return load_settings(
        env={"PG_MCP_DSN": dsn, "PG_MCP_HOME": str(tmp / "home")}, config_path=None, **overrides
    )


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", **env}
    return subprocess.run(
        [PGMCP, *args], env=full, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_discovery_references_and_queries_on_the_standby(pair: StandbyPair, tmp_path: Path) -> None:
    settings = settings_for(pair.reader_dsn("standby"), tmp_path)
    assert DB in [d.name for d in list_databases(settings)]
    with Pools(settings) as pools:
        r = run_readonly("SELECT count(*), pg_is_in_recovery() FROM products", DB, pools=pools)
        assert r.ok and r.rows == [[40, True]], r
        # a write is refused, whatever the validator would say
        w = run_readonly("SELECT 1 FROM products FOR UPDATE", DB, pools=pools, validate=False)
        assert not w.ok and w.code == "READ_ONLY_VIOLATION", w
    env = {"PG_MCP_DSN": pair.reader_dsn("standby"), "PG_MCP_HOME": str(tmp_path / "home")}
    out = tmp_path / "refs"
    proc = cli(["references", "--db", DB, "--out", str(out)], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = (out / f"{DB}.md").read_text(encoding="utf-8")
    assert "products" in page and "Things for sale" in page


def test_ask_on_the_standby(pair: StandbyPair, tmp_path: Path, standin: StandinModel) -> None:
    from pg_mcp.ask.llm import LLM
    from pg_mcp.ask.loop import Asker
    from pg_mcp.db.cache import SchemaCache

    sql = "SELECT count(*) AS products FROM public.products"

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        if is_judge_request(body):
            return judge(9, "counts the products")
        return gen(sql, "counts products", ["public.products"])

    standin.default = answer
    s = settings_for(pair.reader_dsn("standby"), tmp_path).with_(
        openai_base_url=standin.base_url,
        openai_api_key="sk-test-standby-0b1c",
        model="standin-1",
        llm_deadline=20.0,
        llm_timeout=10.0,
    )
    asker = Asker(s, cache=SchemaCache(s), client=LLM(s))
    got = asker.ask_sync("How many products are there?", DB)
    assert got["sql"] == sql and got["score"] == 9
    assert got["result"]["rows"] == [[40]]


def test_doctor_reports_the_standby_and_its_replay_lag(pair: StandbyPair, tmp_path: Path) -> None:
    from pg_mcp.db.doctor import build_report, render_text

    report = build_report(settings_for(pair.reader_dsn("standby"), tmp_path))
    server = report["server"]
    assert server["standby"] is True
    assert isinstance(server["replay_lag_bytes"], int) and server["replay_lag_bytes"] >= 0
    assert server["received_lsn"] and server["replayed_lsn"]
    # a transaction has been replayed (the fixture's): its age is known
    assert server["replay_lag_seconds"] is not None and server["replay_lag_seconds"] >= 0
    text = render_text(report)
    assert "hot standby" in text and "bytes of WAL not yet replayed" in text
    env = {"PG_MCP_DSN": pair.reader_dsn("standby"), "PG_MCP_HOME": str(tmp_path / "home")}
    proc = cli(["doctor"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "recovery     hot standby" in proc.stdout
    primary = build_report(settings_for(pair.reader_dsn("primary"), tmp_path))
    assert primary["server"]["standby"] is False and "replay_lag_bytes" not in primary["server"]


def test_queries_and_introspection_can_each_have_their_own_dsn(
    pair: StandbyPair, tmp_path: Path
) -> None:
    """The main DSN leads nowhere: run_readonly only uses query_dsn, the schema cache only
    introspection_dsn (each resolves the database on its own server)."""
    from pg_mcp.db.cache import SchemaCache

    standby = pair.reader_dsn("standby")
    queries = settings_for(NOWHERE, tmp_path, query_dsn=standby)
    with Pools(queries) as pools:
        r = run_readonly("SELECT pg_is_in_recovery()", DB, pools=pools, validate=False)
    assert r.ok and r.rows == [[True]], r
    introspection = settings_for(NOWHERE, tmp_path, introspection_dsn=standby)
    schema = SchemaCache(introspection).refresh(DB)
    assert [t.name for t in schema.tables] == ["products"]
    # doctor names both servers; from the environment too
    from pg_mcp.db.doctor import build_report

    both = settings_for(
        pair.reader_dsn("primary"), tmp_path, query_dsn=standby, introspection_dsn=standby
    )
    report = build_report(both)
    assert report["server"]["standby"] is False
    assert report["targets"]["query"]["standby"] is True
    assert report["targets"]["introspection"]["standby"] is True
    env_settings = load_settings(
        env={"PG_MCP_DSN": NOWHERE, "PG_MCP_QUERY_DSN": standby, "PG_MCP_INTROSPECTION_DSN": "x"},
        config_path=None,
    )
    assert env_settings.query_dsn == standby and env_settings.introspection_dsn == "x"
