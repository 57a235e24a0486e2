"""Faults with real processes: the database goes away and comes back, a runaway query, a model
endpoint that rate-limits, fails or stalls.

The database is a private PostgreSQL (tests/pgtemp.py: TCP, password authentication, a
distinctive password) that these tests stop and restart; the shared server is never touched.
The model is the stand-in Chat Completions server (tests/standin_model.py) behind the real
``openai`` client; the MCP server is driven by the SDK's own client (in memory, and
``pg-mcp serve --transport http`` as a subprocess).

Timing bounds are generous on purpose (2 cores, loaded CI): each states the issue's figure
and the margin allowed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import serving
from pgtemp import PASSWORD, PgTemp, free_port, pgtemp_fixture  # noqa: F401
from standin_model import (  # noqa: F401
    StandinModel,
    gen,
    is_judge_request,
    judge,
    standin_fixture,
    status,
)

BIN = Path(sys.executable).parent
PGMCP = str(BIN / "pg-mcp")
API_KEY = "sk-test-FAULTS-7c1e9b2d4a6f8e0c"
DB = "faults"
ROWS = 100
RUNAWAY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def faults_db(pgtemp: PgTemp) -> str:
    return pgtemp.create_database(
        DB,
        f"CREATE TABLE t (id int PRIMARY KEY, label text NOT NULL);"
        f"INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g; ANALYZE t;",
    )


@pytest.fixture
def up(pgtemp: PgTemp, faults_db: str) -> Iterator[PgTemp]:
    """The private server, running before and after the test (whatever the test did to it)."""
    pgtemp.start()
    try:
        yield pgtemp
    finally:
        pgtemp.start()


def make_settings(pg: PgTemp, tmp_path: Path, **changes: Any) -> Any:
    from pg_mcp.core.settings import Settings

    changes.setdefault("connect_timeout", 2.0)
    changes.setdefault("statement_timeout", 3.0)
    return Settings(
        dsn=pg.reader_dsn,
        home=tmp_path / "home",
        include=(DB,),
        references_dir=tmp_path / "references",
        **changes,
    )


def cli_env(pg: PgTemp, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PG_MCP_DSN": pg.reader_dsn,
        "PG_MCP_HOME": str(tmp_path / "home"),
        "PG_MCP_CONFIG": str(write_config(tmp_path)),
    }


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "pg-mcp.toml"
    path.write_text(
        f'[databases]\ninclude = ["{DB}"]\n\n[limits]\nconnect_timeout = 2\nstatement_timeout = 3\n{extra}'
    )
    return path


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def code_of(result: Any) -> str:
    text = re.sub(r"^Error executing tool \w+: ", "", text_of(result))
    return text.split(":", 1)[0]


@asynccontextmanager
async def mcp_client(settings: Any, **kwargs: Any) -> AsyncIterator[Any]:
    from mcp.client import Client

    from pg_mcp.server.app import build_server

    async with Client(build_server(settings, **kwargs)) as client:
        yield client


# --- the database is down at start ---------------------------------------------------------


def test_cli_run_with_database_down_gives_connection_error_without_the_password(
    up: PgTemp, tmp_path: Path
) -> None:
    env = cli_env(up, tmp_path)
    up.stop()
    outputs = []
    for args in (["--json"], []):
        # bounded by connect_timeout (2 s here) plus the interpreter's start; the subprocess
        # timeout is the guard against a hang (no assertion on wall time)
        proc = subprocess.run(
            [PGMCP, "run", "--db", DB, *args, "SELECT count(*) FROM t"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        outputs += [proc.stdout, proc.stderr]
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        if args:
            out = json.loads(proc.stdout)
            assert out["ok"] is False and out["code"] == "CONNECTION_ERROR", out
            assert out["message"]
        else:
            assert proc.stdout == ""
            assert proc.stderr.startswith("error CONNECTION_ERROR: "), proc.stderr
    for text in outputs:
        assert PASSWORD not in text


def test_cli_run_against_a_blackholed_address_is_bounded_by_connect_timeout(
    tmp_path: Path,
) -> None:
    """A server that never answers (nothing listening behind a non-routable address is not
    available offline, so: a listening socket that never speaks) still ends in CONNECTION_ERROR."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # accepts TCP connections, never answers the startup packet
        port = silent.getsockname()[1]
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PG_MCP_DSN": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/postgres",
            "PG_MCP_HOME": str(tmp_path / "home"),
            "PG_MCP_CONFIG": str(write_config(tmp_path)),
        }
        # connect_timeout = 2 s (libpq may try twice: IPv4 and a retry); the subprocess
        # timeout is the guard against a hang (no assertion on wall time)
        proc = subprocess.run(
            [PGMCP, "run", "--db", DB, "--json", "SELECT 1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["code"] == "CONNECTION_ERROR", out
    assert PASSWORD not in proc.stdout + proc.stderr


# --- the database goes away mid-session ------------------------------------------------------


def pool_connections(pg: PgTemp) -> int:
    import psycopg

    with psycopg.connect(pg.dsn_for(DB), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg-mcp'"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.anyio
async def test_mcp_server_survives_a_database_restart_between_calls(
    up: PgTemp, tmp_path: Path
) -> None:
    """Restarted under a full idle pool (4 dead connections): the very next call succeeds,
    at once (health check on checkout; the first dead connection drains the pool)."""
    settings = make_settings(up, tmp_path, pool_max_size=4)
    busy = {"sql": "SELECT count(*) FROM generate_series(1, 3000000)", "database": DB}
    sql = {"sql": "SELECT count(*) AS n FROM t", "database": DB}
    async with mcp_client(settings, warm_up=False) as client:
        async with anyio.create_task_group() as tg:  # open all four pooled connections
            for _ in range(4):
                tg.start_soon(client.call_tool, "run_readonly", busy)
        assert await anyio.to_thread.run_sync(pool_connections, up) == 4
        await anyio.to_thread.run_sync(up.restart)  # every pooled connection is now dead
        after = await client.call_tool("run_readonly", sql)
        again = await client.call_tool("run_readonly", sql)
    assert not after.is_error, text_of(after)
    assert after.structured_content["rows"] == [[ROWS]]
    assert not again.is_error, text_of(again)
    # a reconnect, not a timeout (connect_timeout + statement_timeout = 5 s here: an error)


@pytest.mark.anyio
async def test_mcp_server_database_down_then_back_without_restarting_pg_mcp(
    up: PgTemp, tmp_path: Path
) -> None:
    settings = make_settings(up, tmp_path)
    sql = {"sql": "SELECT count(*) AS n FROM t", "database": DB}
    texts: list[str] = []
    async with mcp_client(settings, warm_up=False) as client:
        first = await client.call_tool("run_readonly", sql)
        assert not first.is_error, text_of(first)

        await anyio.to_thread.run_sync(up.stop)
        down = await client.call_tool("run_readonly", sql)
        again = await client.call_tool("run_readonly", sql)
        # validation needs no database: it keeps answering
        verdict = await client.call_tool("validate_sql", {"sql": "SELECT 1; DROP TABLE t"})
        texts += [text_of(down), text_of(again)]

        await anyio.to_thread.run_sync(up.start)
        back = await client.call_tool("run_readonly", sql)

    assert down.is_error and code_of(down) == "CONNECTION_ERROR", text_of(down)
    assert again.is_error and code_of(again) == "CONNECTION_ERROR", text_of(again)
    # The server refuses connections: both fail (fast: the pool's wait is bounded by
    # connect_timeout + statement_timeout = 2 + 3 s here; the test's timeout guards a hang).
    assert verdict.structured_content["code"] == "MULTIPLE_STATEMENTS"
    assert not back.is_error, text_of(back)
    assert back.structured_content["rows"] == [[ROWS]]
    for text in texts:
        assert PASSWORD not in text


@pytest.mark.anyio
async def test_http_server_subprocess_rides_out_a_database_outage(
    up: PgTemp, tmp_path: Path
) -> None:
    """`pg-mcp serve --transport http` as users run it: down -> CONNECTION_ERROR, up -> rows;
    the password appears nowhere (tool results, stdout, stderr logs)."""
    from mcp.client import Client

    port = free_port()
    env = cli_env(up, tmp_path) | {"PG_MCP_LOG_LEVEL": "INFO"}
    served = serving.start_http(env, tmp_path, port)
    base, proc, out, err = served.base, served.proc, served.out, served.err
    texts: list[str] = []
    try:
        await anyio.to_thread.run_sync(serving.wait_healthy, served)
        sql = {"sql": "SELECT label FROM t WHERE id = 7", "database": DB}
        async with Client(f"{base}/mcp") as client:
            ok = await client.call_tool("run_readonly", sql)
            await anyio.to_thread.run_sync(up.stop)
            down = await client.call_tool("run_readonly", sql)
            await anyio.to_thread.run_sync(up.start)
            back = await client.call_tool("run_readonly", sql)
            texts += [text_of(ok), text_of(down), text_of(back)]
    finally:
        serving.stop_process(proc)
    assert ok.structured_content["rows"] == [["row 7"]]
    assert down.is_error and code_of(down) == "CONNECTION_ERROR", text_of(down)
    assert not back.is_error and back.structured_content["rows"] == [["row 7"]], text_of(back)
    stderr = err.read_text()
    assert "tool_call" in stderr and out.read_text() == ""
    for text in [*texts, stderr]:
        assert PASSWORD not in text


@pytest.mark.anyio
async def test_http_server_started_while_the_database_is_down(up: PgTemp, tmp_path: Path) -> None:
    """Down at start: the server still comes up and lists its tools, calls fail with
    CONNECTION_ERROR, and the first call after the database starts succeeds."""
    from mcp.client import Client

    up.stop()
    port = free_port()
    env = cli_env(up, tmp_path) | {"PG_MCP_LOG_LEVEL": "INFO"}
    served = serving.start_http(env, tmp_path, port)
    base, proc, out, err = served.base, served.proc, served.out, served.err
    texts: list[str] = []
    try:
        await anyio.to_thread.run_sync(serving.wait_healthy, served)
        sql = {"sql": "SELECT count(*) AS n FROM t", "database": DB}
        async with Client(f"{base}/mcp") as client:
            tools = (await client.list_tools()).tools
            down = await client.call_tool("run_readonly", sql)
            await anyio.to_thread.run_sync(up.start)
            back = await client.call_tool("run_readonly", sql)
            texts += [text_of(down), text_of(back)]
    finally:
        serving.stop_process(proc)
    assert len(tools) == 3
    assert down.is_error and code_of(down) == "CONNECTION_ERROR", text_of(down)
    assert not back.is_error and back.structured_content["rows"] == [[ROWS]], text_of(back)
    stderr = err.read_text()
    assert "warm_up_failed" in stderr  # logged, not fatal
    for text in [*texts, stderr, out.read_text()]:
        assert PASSWORD not in text


# --- a runaway query ---------------------------------------------------------------------------


def backends_running(pg: PgTemp, marker: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state, query FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND state <> 'idle' AND query LIKE %s",
            [f"%{marker}%"],
        ).fetchall()


def test_runaway_query_under_1s_timeout_ends_in_about_2s_leaving_no_backend(
    up: PgTemp, tmp_path: Path
) -> None:
    from pg_mcp.db.executor import Pools, run_readonly

    marker = f"runaway_{uuid.uuid4().hex[:12]}"
    sql = f"/* {marker} */ {RUNAWAY}"
    with Pools(make_settings(up, tmp_path)) as pools:
        run_readonly("SELECT 1", DB, pools=pools)  # the pool is warm: time the query alone
        result = run_readonly(sql, DB, pools=pools, timeout=1.0)
        left = backends_running(up, marker)
        still_ok = run_readonly("SELECT count(*) FROM t", DB, pools=pools)
    assert result.ok is False and result.code == "TIMEOUT", result.to_dict()
    assert result.sqlstate == "57014"
    assert "after the 1 s timeout" in result.message  # the server's statement timeout, 1 s
    assert left == [], left  # cancelled on the server, not merely abandoned by the client
    assert still_ok.ok and still_ok.rows == [[ROWS]]  # the pooled connection is reusable


def test_runaway_query_through_the_cli(up: PgTemp, tmp_path: Path) -> None:
    marker = f"runaway_{uuid.uuid4().hex[:12]}"
    proc = subprocess.run(
        [PGMCP, "run", "--db", DB, "--timeout", "1", "--json", f"/* {marker} */ {RUNAWAY}"],
        env=cli_env(up, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["code"] == "TIMEOUT", out
    assert "after the 1 s timeout" in out["message"], out  # the 1 s statement timeout fired
    assert backends_running(up, marker) == []


# --- the model endpoint ------------------------------------------------------------------------

GOOD_SQL = "SELECT count(*) AS n FROM t"
QUESTION = "How many rows does t have?"


def ask_settings(pg: PgTemp, tmp_path: Path, model: StandinModel | str, **changes: Any) -> Any:
    url = model if isinstance(model, str) else model.base_url
    changes.setdefault("llm_deadline", 20.0)
    changes.setdefault("llm_timeout", 10.0)
    return make_settings(
        pg, tmp_path, openai_base_url=url, openai_api_key=API_KEY, model="standin-1", **changes
    )


@pytest.mark.anyio
async def test_ask_tool_answers_after_429_then_500(
    up: PgTemp, tmp_path: Path, standin: StandinModel
) -> None:
    standin.script = [
        status(429, {"Retry-After": "0"}),
        status(500),
        gen(GOOD_SQL, "counts the rows", ["public.t"]),
        judge(9, "counts every row of t"),
    ]
    async with mcp_client(ask_settings(up, tmp_path, standin), warm_up=False) as client:
        res = await client.call_tool(
            "ask", {"question": QUESTION, "database": DB, "return_type": "both"}
        )
    assert not res.is_error, text_of(res)
    a = res.structured_content
    assert a["sql"] == GOOD_SQL and a["result"]["rows"] == [[ROWS]]
    assert a["score"] == 9 and a["attempts"] == 1 and a["low_confidence"] is False
    assert len(standin.requests) == 4  # 429, 500, the generation, the judgement
    # the SDK's own retries: the generation's third request is its retry 2
    assert [h["x-stainless-retry-count"] for h in standin.headers] == ["0", "1", "2", "0"]


@pytest.mark.anyio
async def test_ask_tool_endpoint_failing_for_good_gives_llm_error_within_the_deadline(
    up: PgTemp, tmp_path: Path, standin: StandinModel
) -> None:
    standin.default = status(500, body={"error": {"message": f"upstream broke, key {API_KEY}"}})
    deadline = 3.0
    settings = ask_settings(up, tmp_path, standin, llm_deadline=deadline, llm_timeout=2.0)
    async with mcp_client(settings, warm_up=False) as client:
        res = await client.call_tool("ask", {"question": QUESTION, "database": DB})
    assert res.is_error and code_of(res) == "LLM_ERROR", text_of(res)
    assert len(standin.requests) >= 2  # it was retried
    assert API_KEY not in text_of(res)


@pytest.mark.anyio
async def test_ask_tool_dead_endpoint_gives_llm_error_within_the_deadline(
    up: PgTemp, tmp_path: Path
) -> None:
    deadline = 3.0
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings = ask_settings(up, tmp_path, url, llm_deadline=deadline, llm_timeout=2.0)
    async with mcp_client(settings, warm_up=False) as client:
        res = await client.call_tool("ask", {"question": QUESTION, "database": DB})
    assert res.is_error and code_of(res) == "LLM_ERROR", text_of(res)
    assert "cannot reach" in text_of(res)
    assert API_KEY not in text_of(res)


@pytest.mark.anyio
async def test_ask_tool_model_slower_than_the_deadline_gives_llm_timeout(
    up: PgTemp, tmp_path: Path, standin: StandinModel
) -> None:
    standin.default = {"delay": 30.0, **gen(GOOD_SQL)}
    deadline = 1.5
    settings = ask_settings(up, tmp_path, standin, llm_deadline=deadline, llm_timeout=10.0)
    async with mcp_client(settings, warm_up=False) as client:
        res = await client.call_tool("ask", {"question": QUESTION, "database": DB})
    assert res.is_error and code_of(res) == "LLM_TIMEOUT", text_of(res)
    assert len(standin.requests) == 1  # the 30 s reply was not waited for: the deadline ended it
    assert API_KEY not in text_of(res)
