"""The MCP server driven in-process by the SDK's own client (fast), plus metrics and logs units.

The database is real: a scratch database with one table, created for this module on the
test server (PG_MCP_TEST_DSN, testcontainers or the embedded PostgreSQL).
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytestmark = pytest.mark.anyio

ITEMS = 25


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _make_db(server_dsn: str, name: str, ddl: str | None = None) -> None:
    import psycopg

    from pg_mcp.db.discovery import database_dsn

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    if ddl:
        with psycopg.connect(database_dsn(server_dsn, name), autocommit=True) as conn:
            conn.execute(ddl)


def _drop_db(server_dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


ITEMS_DDL = f"""
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));
COMMENT ON TABLE items IS 'things for sale';
INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, {ITEMS}) g;
ANALYZE items;
"""


@pytest.fixture(scope="module")
def dbs(pg_dsn: str) -> Iterator[tuple[str, str]]:
    """Two scratch databases: (one with an ``items`` table, an empty one)."""
    tag = uuid.uuid4().hex[:8]
    main, other = f"pgmcp_srv_{tag}_items", f"pgmcp_srv_{tag}_empty"
    _make_db(pg_dsn, main, ITEMS_DDL)
    _make_db(pg_dsn, other)
    try:
        yield main, other
    finally:
        _drop_db(pg_dsn, main)
        _drop_db(pg_dsn, other)


@pytest.fixture
def make_settings(pg_dsn: str, reader_dsn: str, dbs: tuple[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    from pg_mcp.core.settings import load_settings

    def make(**overrides: Any):  # type: ignore[no-untyped-def]
        env = {"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path / "home")}
        overrides.setdefault("include", (dbs[0],))
        overrides.setdefault("references_dir", tmp_path / "references")
        return load_settings(env=env, config_path=None, **overrides)

    return make


@asynccontextmanager
async def connect(settings: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
    from mcp.client import Client

    from pg_mcp.server.app import build_server
    from pg_mcp.server.metrics import Metrics

    metrics = Metrics()
    server = build_server(settings, metrics=metrics, **kwargs)
    async with Client(server) as client:
        yield client, metrics


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def code_of(result: Any) -> str:
    """The stable code a failed call carries: its text is ``[SDK prefix: ]CODE: message``."""
    import re

    text = text_of(result)
    text = re.sub(r"^Error executing tool \w+: ", "", text)
    return text.split(":", 1)[0]


# --- tools/list ----------------------------------------------------------------------------


async def test_tools_list_read_only_with_output_schemas(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with connect(make_settings(), warm_up=False) as (client, _):
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == {"validate_sql", "run_readonly", "ask"}
    for tool in tools.values():
        a = tool.annotations
        assert a is not None
        assert (a.read_only_hint, a.destructive_hint, a.open_world_hint) == (True, False, False)
        assert tool.output_schema and tool.output_schema.get("type") == "object"
        assert tool.description
    assert tools["validate_sql"].annotations.idempotent_hint is True
    assert tools["run_readonly"].annotations.idempotent_hint is True
    assert tools["ask"].annotations.idempotent_hint is False
    assert tools["validate_sql"].input_schema["required"] == ["sql"]
    assert tools["run_readonly"].input_schema["required"] == ["sql"]
    assert set(tools["run_readonly"].input_schema["properties"]) == {"sql", "database", "max_rows"}
    ask_props = tools["ask"].input_schema["properties"]
    assert ask_props["return_type"]["enum"] == ["result", "sql", "both"]
    out = tools["run_readonly"].output_schema["properties"]
    assert {"columns", "rows", "row_count", "truncated", "elapsed_ms", "database"} <= set(out)
    assert {"ok", "code", "message", "hint", "position"} <= set(
        tools["validate_sql"].output_schema["properties"]
    )
    assert {"sql", "explanation", "score", "reasoning", "attempts", "tokens", "database"} <= set(
        tools["ask"].output_schema["properties"]
    )


# --- validate_sql ---------------------------------------------------------------------------


async def test_validate_sql_accepts_and_names_tables(make_settings, dbs) -> None:  # type: ignore[no-untyped-def]
    async with connect(make_settings()) as (client, metrics):
        res = await client.call_tool(
            "validate_sql", {"sql": "SELECT name FROM items", "database": dbs[0]}
        )
    assert not res.is_error, text_of(res)
    v = res.structured_content
    assert v["ok"] is True and v["code"] is None
    assert v["database"] == dbs[0]
    assert "public.items" in v["tables"]
    assert metrics.calls("validate_sql", "ok") == 1


async def test_validate_sql_refusal_is_a_verdict_not_an_error(make_settings) -> None:  # type: ignore[no-untyped-def]
    async with connect(make_settings(), warm_up=False) as (client, metrics):
        res = await client.call_tool("validate_sql", {"sql": "DELETE FROM items"})
        multi = await client.call_tool("validate_sql", {"sql": "SELECT 1; SELECT 2"})
    assert not res.is_error
    v = res.structured_content
    assert v["ok"] is False and v["code"] == "NOT_READ_ONLY" and v["message"]
    assert v["database"] is None  # no database named: nothing contacted
    assert multi.structured_content["code"] == "MULTIPLE_STATEMENTS"
    assert metrics.calls("validate_sql", "NOT_READ_ONLY") == 1


async def test_validate_sql_unknown_name_and_unknown_database(make_settings, dbs) -> None:  # type: ignore[no-untyped-def]
    async with connect(make_settings()) as (client, _):
        missing = await client.call_tool(
            "validate_sql", {"sql": "SELECT * FROM nope", "database": dbs[0]}
        )
        unknown = await client.call_tool(
            "validate_sql", {"sql": "SELECT 1", "database": "no_such_db"}
        )
    assert not missing.is_error and missing.structured_content["code"] == "UNKNOWN_OBJECT"
    assert unknown.is_error
    assert code_of(unknown) == "UNKNOWN_DATABASE"


# --- run_readonly ---------------------------------------------------------------------------


async def test_run_readonly_rows_with_database_omitted(make_settings, dbs) -> None:  # type: ignore[no-untyped-def]
    async with connect(make_settings()) as (client, metrics):
        res = await client.call_tool(
            "run_readonly", {"sql": "SELECT id, name, price FROM items ORDER BY id"}
        )
        capped = await client.call_tool(
            "run_readonly", {"sql": "SELECT id FROM items ORDER BY id", "max_rows": 3}
        )
    assert not res.is_error, text_of(res)
    r = res.structured_content
    assert r["database"] == dbs[0]
    assert [c["name"] for c in r["columns"]] == ["id", "name", "price"]
    assert r["columns"][0]["type"] == "integer"
    assert r["row_count"] == ITEMS and r["truncated"] is False
    assert r["rows"][0] == [1, "item 1", "1.50"]  # numeric: exact text, scale kept
    assert r["elapsed_ms"] >= 0
    assert json.loads(text_of(res))["row_count"] == ITEMS  # the text block is the same JSON
    c = capped.structured_content
    assert c["rows"] == [[1], [2], [3]] and c["truncated"] is True
    assert metrics.calls("run_readonly", "ok") == 2


async def test_run_readonly_failures_are_errors_with_codes(make_settings, dbs) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "NOT_READ_ONLY": {"sql": "DELETE FROM items"},
        "MULTIPLE_STATEMENTS": {"sql": "SELECT 1; DROP TABLE items"},
        "UNKNOWN_DATABASE": {"sql": "SELECT 1", "database": "no_such_db"},
        "UNKNOWN_OBJECT": {"sql": "SELECT * FROM no_such_table"},
        "DB_ERROR": {"sql": "SELECT 1 / (id - id) FROM items"},
    }
    texts = {}
    async with connect(make_settings()) as (client, metrics):
        for code, args in cases.items():
            res = await client.call_tool("run_readonly", args)
            texts[code] = text_of(res)
            assert res.is_error, (code, texts[code])
            assert code_of(res) == code, texts[code]
            assert res.structured_content is None
            assert metrics.calls("run_readonly", code) == 1
        still = await client.call_tool("run_readonly", {"sql": "SELECT count(*) AS n FROM items"})
    assert "22012" in texts["DB_ERROR"]  # the SQLSTATE reaches the client
    assert "\nhint: " in texts["NOT_READ_ONLY"]
    assert still.structured_content["rows"] == [[ITEMS]]  # nothing was deleted


async def test_run_readonly_timeout(make_settings) -> None:  # type: ignore[no-untyped-def]
    slow = "SELECT count(*) FROM generate_series(1, 30000) a CROSS JOIN generate_series(1, 30000) b"
    async with connect(make_settings(statement_timeout=0.5), warm_up=False) as (client, metrics):
        res = await client.call_tool("run_readonly", {"sql": slow})
    assert res.is_error and code_of(res) == "TIMEOUT", text_of(res)
    assert metrics.calls("run_readonly", "TIMEOUT") == 1


async def test_database_required_when_several_are_reachable(make_settings, dbs) -> None:  # type: ignore[no-untyped-def]
    async with connect(make_settings(include=dbs), warm_up=False) as (client, _):
        res = await client.call_tool("run_readonly", {"sql": "SELECT 1"})
        named = await client.call_tool("run_readonly", {"sql": "SELECT 1 AS x", "database": dbs[1]})
    assert res.is_error and code_of(res) == "DATABASE_REQUIRED"
    assert dbs[0] in text_of(res) and dbs[1] in text_of(res)  # the hint lists them
    assert named.structured_content["rows"] == [[1]]


async def test_slow_query_does_not_block_other_calls(make_settings) -> None:  # type: ignore[no-untyped-def]
    """A running query holds a worker thread, not the event loop: validate_sql answers meanwhile."""
    slow = "SELECT count(*) FROM generate_series(1, 4000) a CROSS JOIN generate_series(1, 4000) b"
    order: list[str] = []
    async with connect(make_settings(), warm_up=False) as (client, _):
        await client.call_tool("run_readonly", {"sql": "SELECT 1"})  # pools and imports warm

        async def run_slow() -> None:
            res = await client.call_tool("run_readonly", {"sql": slow})
            assert not res.is_error, text_of(res)
            order.append("slow")

        async def validate_soon() -> None:
            await anyio.sleep(0.05)
            res = await client.call_tool("validate_sql", {"sql": "SELECT 1"})
            assert res.structured_content["ok"] is True
            order.append("validate")

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_slow)
            tg.start_soon(validate_soon)
    assert order == ["validate", "slow"]


# --- ask -------------------------------------------------------------------------------------


async def test_ask_without_model_is_llm_not_configured(make_settings) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(openai_api_key=None, openai_base_url=None)
    assert settings.openai_api_key is None and settings.openai_base_url is None
    async with connect(settings, warm_up=False) as (client, metrics):
        res = await client.call_tool("ask", {"question": "how many items are there?"})
    assert res.is_error and code_of(res) == "LLM_NOT_CONFIGURED", text_of(res)
    assert metrics.calls("ask", "LLM_NOT_CONFIGURED") == 1


async def test_ask_answers_through_the_standin_model(make_settings, dbs) -> None:  # type: ignore[no-untyped-def]
    """The ask tool's structured output accepts what the ask loop returns (details: test_ask)."""
    from standin_model import StandinModel, gen, is_judge_request, judge

    model = StandinModel().start()
    model.default = lambda body: (
        judge(9)
        if is_judge_request(body)
        else gen("SELECT count(*) AS n FROM items", "counts the items", ["public.items"])
    )
    try:
        settings = make_settings(openai_base_url=model.base_url, model="standin-1")
        async with connect(settings) as (client, metrics):
            res = await client.call_tool(
                "ask", {"question": "How many items are there?", "return_type": "both"}
            )
    finally:
        model.stop()
    assert not res.is_error, text_of(res)
    a = res.structured_content
    assert a["database"] == dbs[0] and a["sql"] == "SELECT count(*) AS n FROM items"
    assert a["result"]["rows"] == [[ITEMS]]
    assert a["score"] == 9 and a["attempts"] == 1 and a["low_confidence"] is False
    assert a["tokens"]["prompt"] > 0
    assert metrics.tokens("prompt") == a["tokens"]["prompt"]
    assert metrics.tokens("completion") == a["tokens"]["completion"]


# --- resources -------------------------------------------------------------------------------


async def test_resources_list_and_read(make_settings, dbs, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mcp.shared.exceptions import MCPError

    refs = tmp_path / "references"
    refs.mkdir()
    (refs / f"{dbs[0]}.md").write_text("# hand-written reference\n", encoding="utf-8")
    async with connect(make_settings(include=dbs), warm_up=False) as (client, _):
        uris = [str(r.uri) for r in (await client.list_resources()).resources]
        templates = [
            t.uri_template for t in (await client.list_resource_templates()).resource_templates
        ]
        listing = await client.read_resource("databases://list")
        ref = await client.read_resource(f"references://{dbs[0]}")
        with pytest.raises(MCPError):
            await client.read_resource("references://no_such_db")
        rendered = await client.read_resource(f"references://{dbs[1]}")
    assert "databases://list" in uris
    assert "references://{database}" in templates
    data = json.loads(listing.contents[0].text)
    assert [d["name"] for d in data["databases"]] == sorted(dbs)
    assert data["databases"][0]["reference"] == f"references://{data['databases'][0]['name']}"
    assert ref.contents[0].text == "# hand-written reference\n"  # the file wins
    assert ref.contents[0].mime_type == "text/markdown"
    assert dbs[1] in rendered.contents[0].text  # no file: rendered from the schema cache


# --- metrics and logs ------------------------------------------------------------------------


async def test_tool_calls_are_logged_with_a_request_id(make_settings, dbs, pg_dsn) -> None:  # type: ignore[no-untyped-def]
    from pg_mcp.core.logs import JsonFormatter
    from pg_mcp.core.secrets import Redactor

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Redactor(["Sup3rS3cret"])))
    logger = logging.getLogger("pg_mcp")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        async with connect(make_settings(), warm_up=False) as (client, _):
            await client.call_tool("run_readonly", {"sql": "SELECT 1 AS one"})
            await client.call_tool("run_readonly", {"sql": "DELETE FROM items"})
            await client.call_tool("validate_sql", {"sql": "SELECT 'Sup3rS3cret'"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    calls = [x for x in lines if x["event"] == "tool_call"]
    assert len(calls) == 3
    ok, refused, validated = calls
    assert ok["tool"] == "run_readonly" and ok["outcome"] == "ok" and ok["database"] == dbs[0]
    assert ok["row_count"] == 1 and ok["elapsed_ms"] >= 0
    assert refused["outcome"] == refused["code"] == "NOT_READ_ONLY"
    assert len({c["request_id"] for c in calls}) == 3  # one id per call
    assert all(set(c) >= {"ts", "level", "event", "request_id", "tool", "outcome"} for c in calls)
    assert validated["outcome"] == "ok"
    assert "Sup3rS3cret" not in stream.getvalue()


def test_metrics_render_prometheus_text() -> None:
    from pg_mcp.server.metrics import Metrics

    m = Metrics(buckets=(0.1, 1.0))
    m.observe("run_readonly", "ok", 0.05)
    m.observe("run_readonly", "ok", 0.5)
    m.observe("run_readonly", "ok", 5.0)
    m.observe("run_readonly", "TIMEOUT", 1.0)
    m.add_tokens("prompt", 120)
    m.add_tokens("completion", 30)
    m.add_tokens("completion", 0)
    text = m.render()
    lines = text.splitlines()
    assert text.endswith("\n")
    assert "# TYPE pg_mcp_tool_calls_total counter" in lines
    assert "# TYPE pg_mcp_tool_duration_seconds histogram" in lines
    assert "# TYPE pg_mcp_model_tokens_total counter" in lines
    assert sum(1 for x in lines if x.startswith("# HELP ")) == 3
    assert 'pg_mcp_tool_calls_total{tool="run_readonly",outcome="ok"} 3' in lines
    assert 'pg_mcp_tool_calls_total{tool="run_readonly",outcome="TIMEOUT"} 1' in lines
    assert 'pg_mcp_tool_calls_total{tool="ask",outcome="ok"} 0' in lines  # published from the start
    base = 'pg_mcp_tool_duration_seconds_bucket{tool="run_readonly",outcome="ok",'
    assert f'{base}le="0.1"}} 1' in lines
    assert f'{base}le="1"}} 2' in lines  # cumulative
    assert f'{base}le="+Inf"}} 3' in lines
    assert 'pg_mcp_tool_duration_seconds_count{tool="run_readonly",outcome="ok"} 3' in lines
    assert 'pg_mcp_tool_duration_seconds_sum{tool="run_readonly",outcome="ok"} 5.55' in lines
    assert (
        'pg_mcp_tool_duration_seconds_bucket{tool="run_readonly",outcome="TIMEOUT",le="1"} 1'
        in lines
    )
    assert 'pg_mcp_model_tokens_total{kind="prompt"} 120' in lines
    assert 'pg_mcp_model_tokens_total{kind="completion"} 30' in lines
    for line in lines:  # every sample line is `name{labels} number`
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            float(value)
            assert name.startswith("pg_mcp_")


def test_metrics_escape_labels_and_count_from_threads() -> None:
    import threading

    from pg_mcp.server.metrics import Metrics

    m = Metrics(tools=())
    m.observe('we"ird\\tool\n', "ok", 0.001)
    assert 'tool="we\\"ird\\\\tool\\n"' in m.render()

    def work() -> None:
        for _ in range(1000):
            m.observe("validate_sql", "ok", 0.001)
            m.add_tokens("prompt", 1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.calls("validate_sql") == 4000 and m.tokens("prompt") == 4000


def test_json_logs_scrub_secrets_and_carry_bound_fields() -> None:
    from pg_mcp.core.logs import bind, log_event, setup_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("pg_mcp").level)
    stream = io.StringIO()
    try:
        setup_logging(["Sup3rS3cret"], level="DEBUG", stream=stream)
        log = logging.getLogger("pg_mcp.test")
        with bind(request_id="abc123", tool="run_readonly"):
            log_event(log, "tool_call", database="db1", outcome="ok", elapsed_ms=1.5, code=None)
            log.warning("connect to postgresql://u:Sup3rS3cret@h/db failed")
        log_event(log, "after", detail={"dsn": "host=h password=hunter22 dbname=x"})
        try:
            raise ValueError("boom Sup3rS3cret")
        except ValueError:
            log.exception("crashed")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        logging.getLogger("pg_mcp").setLevel(saved[2])
    out = stream.getvalue()
    lines = [json.loads(x) for x in out.splitlines()]
    assert "Sup3rS3cret" not in out and "hunter22" not in out
    first, second, third, fourth = lines
    assert first["event"] == "tool_call" and first["request_id"] == "abc123"
    assert first["tool"] == "run_readonly" and first["database"] == "db1"
    assert first["outcome"] == "ok" and first["elapsed_ms"] == 1.5 and "code" not in first
    assert first["level"] == "info" and first["ts"].endswith("Z")
    assert second["request_id"] == "abc123" and second["level"] == "warning"
    assert "request_id" not in third
    assert "exc" in fourth and "ValueError" in fourth["exc"]


def test_one_conversion_between_verdict_run_result_and_error() -> None:
    """PgMcpError.of is the one conversion of a refused Verdict or a failed RunResult into an
    error; RunResult.failure is its inverse (sqlstate travels in details)."""
    from pg_mcp.core.errors import PgMcpError
    from pg_mcp.db.checker import validate_sql
    from pg_mcp.db.executor import RunResult

    verdict = validate_sql("SELECT 1; DROP TABLE t")
    err = PgMcpError.of(verdict)
    assert (err.code, err.message, err.hint, err.position) == (
        verdict.code,
        verdict.message,
        verdict.hint,
        verdict.position,
    )
    assert err.details == {}
    original = PgMcpError(
        "DB_ERROR", "division by zero", hint="h", position=8, details={"sqlstate": "22012", "x": 1}
    )
    run = RunResult.failure(original, "db1")
    assert run.sqlstate == "22012" and run.details == {"x": 1}
    back = PgMcpError.of(run)
    assert back.to_dict() == original.to_dict()
