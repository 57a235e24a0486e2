"""`pg-mcp serve` as a real subprocess, driven by the SDK's client over stdio and streamable HTTP.

The server gets a DSN carrying a password (the test server trusts local connections, so any
password works; an explicit PG_MCP_TEST_DSN keeps its own): the password must never appear
on stdout, stderr, in a tool result or in the metrics. Also: `pg-mcp stats`, and the
command registered in `.mcp.json` answering tools/list.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio
import pytest

import serving
from conftest import scratch_database
from serving import free_port

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PGMCP = str(BIN / "pg-mcp")
SECRET = "Sup3rS3cret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def with_password(dsn: str, password: str) -> tuple[str, str]:
    """(a DSN that carries a password, that password): ``password`` unless one is there."""
    from pg_mcp.core.secrets import dsn_password

    existing = dsn_password(dsn)
    if existing:
        return dsn, existing
    if "://" in dsn:
        parts = urlsplit(dsn)
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0] or "postgres"
        netloc = f"{user}:{quote(password, safe='')}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)), password
    return f"{dsn} password={password}", password


@pytest.fixture(scope="module")
def served_db(pg_dsn: str) -> Iterator[str]:
    setup = (
        "CREATE TABLE t (id int PRIMARY KEY, label text);"
        "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 10) g"
    )
    with scratch_database(pg_dsn, setup, "srvt") as name:
        yield name


@pytest.fixture
def workdir(tmp_path: Path, served_db: str) -> Path:
    """Where the server runs: a pg-mcp.toml limiting it to the test database."""
    (tmp_path / "pg-mcp.toml").write_text(f'[databases]\ninclude = ["{served_db}"]\n')
    return tmp_path


@pytest.fixture
def secret_env(reader_dsn: str, tmp_path: Path) -> tuple[dict[str, str], str]:
    dsn, secret = with_password(reader_dsn, SECRET)
    env = {
        "PG_MCP_DSN": dsn,
        "PG_MCP_HOME": str(tmp_path / "home"),
        "PG_MCP_LOG_LEVEL": "INFO",
        "PATH": os.environ.get("PATH", ""),
    }
    return env, secret


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- stdio ------------------------------------------------------------------------------------


async def test_stdio_tools_and_stderr_logs(workdir: Path, secret_env, served_db: str) -> None:  # type: ignore[no-untyped-def]
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    env, secret = secret_env
    params = StdioServerParameters(command=PGMCP, args=["serve"], env=env, cwd=str(workdir))
    errlog = workdir / "stderr.log"
    results: list[str] = []
    with errlog.open("w") as err:
        async with Client(stdio_client(params, errlog=err)) as client:
            tools = (await client.list_tools()).tools
            ok = await client.call_tool(
                "run_readonly", {"sql": "SELECT id, label FROM t ORDER BY id"}
            )
            refused = await client.call_tool("run_readonly", {"sql": "DROP TABLE t"})
            verdict = await client.call_tool("validate_sql", {"sql": "UPDATE t SET label = 'x'"})
            listing = await client.read_resource("databases://list")
            results += [text_of(ok), text_of(refused), text_of(verdict), listing.contents[0].text]
    assert sorted(t.name for t in tools) == ["ask", "run_readonly", "validate_sql"]
    assert all(t.annotations and t.annotations.read_only_hint for t in tools)
    assert not ok.is_error and ok.structured_content["row_count"] == 10
    assert ok.structured_content["database"] == served_db
    assert refused.is_error and "NOT_READ_ONLY: " in text_of(refused)
    assert not verdict.is_error and verdict.structured_content["code"] == "NOT_READ_ONLY"
    assert served_db in listing.contents[0].text

    stderr = errlog.read_text()
    lines = json_lines(stderr)  # every stderr line is one JSON object
    calls = [x for x in lines if x["event"] == "tool_call"]
    assert [c["tool"] for c in calls] == ["run_readonly", "run_readonly", "validate_sql"]
    assert all(c["request_id"] for c in calls)
    assert calls[1]["code"] == "NOT_READ_ONLY"
    start = next(x for x in lines if x["event"] == "server_start")
    assert "***" in start["dsn"]  # the DSN is logged, masked
    assert any(x["event"] == "server_stop" for x in lines)
    assert secret not in stderr
    assert all(secret not in r for r in results)


# --- streamable HTTP ----------------------------------------------------------------------------


@pytest.fixture
def http_server(workdir: Path, secret_env) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:  # type: ignore[no-untyped-def]
    env, _ = secret_env
    with serving.http_server(env, workdir) as served:
        yield served.base, served.proc, workdir


async def test_streamable_http_tools_metrics_and_stats(http_server, secret_env, served_db) -> None:  # type: ignore[no-untyped-def]
    from mcp.client import Client

    base, proc, workdir = http_server
    _, secret = secret_env
    async with Client(f"{base}/mcp") as client:
        tools = (await client.list_tools()).tools
        ok = await client.call_tool("run_readonly", {"sql": "SELECT count(*) AS n FROM t"})
        again = await client.call_tool("run_readonly", {"sql": "SELECT label FROM t WHERE id = 3"})
        refused = await client.call_tool("run_readonly", {"sql": "DELETE FROM t"})
        unknown = await client.call_tool("run_readonly", {"sql": "SELECT 1", "database": "nope_db"})
        verdict = await client.call_tool("validate_sql", {"sql": "SELECT 1"})
        leak = await client.call_tool("run_readonly", {"sql": f"SELECT '{secret}'::int"})
    assert len(tools) == 3
    assert ok.structured_content["rows"] == [[10]]
    assert again.structured_content["rows"] == [["row 3"]]
    assert refused.is_error and "NOT_READ_ONLY: " in text_of(refused)
    assert unknown.is_error and "UNKNOWN_DATABASE: " in text_of(unknown)
    assert verdict.structured_content["ok"] is True
    assert leak.is_error and "DB_ERROR: " in text_of(leak) and "***" in text_of(leak)

    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        ctype = resp.headers["Content-Type"]
        metrics = resp.read().decode()
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    lines = metrics.splitlines()
    assert 'pg_mcp_tool_calls_total{tool="run_readonly",outcome="ok"} 2' in lines
    assert 'pg_mcp_tool_calls_total{tool="run_readonly",outcome="NOT_READ_ONLY"} 1' in lines
    assert 'pg_mcp_tool_calls_total{tool="run_readonly",outcome="UNKNOWN_DATABASE"} 1' in lines
    assert 'pg_mcp_tool_calls_total{tool="validate_sql",outcome="ok"} 1' in lines
    assert 'pg_mcp_tool_duration_seconds_count{tool="run_readonly",outcome="ok"} 2' in lines
    assert any(
        x.startswith(
            'pg_mcp_tool_duration_seconds_bucket{tool="run_readonly",outcome="ok",le="+Inf"} 2'
        )
        for x in lines
    )
    assert 'pg_mcp_model_tokens_total{kind="prompt"} 0' in lines

    for url in (f"{base}/metrics", base):  # `pg-mcp stats --url` takes the base URL too
        stats = subprocess.run(
            [PGMCP, "stats", "--url", url], capture_output=True, text=True, timeout=30, cwd=workdir
        )
        assert stats.returncode == 0, stats.stderr
        assert 'pg_mcp_tool_calls_total{tool="run_readonly",outcome="ok"} 2' in stats.stdout

    proc.send_signal(signal.SIGINT)  # graceful: the lifespan closes the pools
    assert proc.wait(timeout=20) == 0
    stdout = (workdir / "serve.out").read_bytes().decode()
    stderr = (workdir / "serve.err").read_text()
    events = [x["event"] for x in json_lines(stderr)]
    assert "serving" in events and "server_stop" in events
    assert events.count("tool_call") == 6
    assert stdout == ""  # logs never go to stdout
    for text in (stdout, stderr, metrics, text_of(refused), text_of(unknown), text_of(leak)):
        assert secret not in text


def test_stats_without_a_server() -> None:
    port = free_port()  # nothing listens there
    res = subprocess.run(
        [PGMCP, "stats", "--url", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1 and "CONNECTION_ERROR" in res.stderr
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8000)) == 0:
            return  # something serves the default port: the fallback cannot be shown here
    res = subprocess.run([PGMCP, "stats"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0
    assert "note:" in res.stderr and "empty registry" in res.stderr
    assert 'pg_mcp_tool_calls_total{tool="run_readonly",outcome="ok"} 0' in res.stdout


# --- .mcp.json -------------------------------------------------------------------------------


async def test_mcp_json_command_starts_the_server(
    pg_dsn: str, reader_dsn: str, tmp_path: Path
) -> None:
    """The command Claude Code runs (from the repository root) answers tools/list."""
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    config = json.loads((ROOT / ".mcp.json").read_text())
    entry = config["mcpServers"]["pg-mcp"]
    command = entry["command"]
    if shutil.which(command) is None and not (ROOT / command).exists():
        pytest.skip(f"{command} is not installed here")
    env = {"PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path / "home"), **entry.get("env", {})}
    params = StdioServerParameters(
        command=command, args=entry.get("args", []), env=env, cwd=str(ROOT)
    )
    with (tmp_path / "stderr.log").open("w") as err:
        with anyio.fail_after(120):  # the initialize handshake, as Claude Code speaks it
            async with Client(stdio_client(params, errlog=err), mode="legacy") as client:
                tools = (await client.list_tools()).tools
    assert sorted(t.name for t in tools) == ["ask", "run_readonly", "validate_sql"]


def test_stdio_stops_cleanly_on_sigterm(workdir: Path, secret_env) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM (or SIGINT) ends `pg-mcp serve` promptly, after the lifespan's cleanup."""
    env, _ = secret_env
    proc = subprocess.Popen(
        [PGMCP, "serve"],
        cwd=workdir,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    proc.stdin.write(json.dumps(init).encode() + b"\n")
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["id"] == 1
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    _, stderr = proc.communicate()
    events = [x["event"] for x in json_lines(stderr.decode())]
    assert code == 0 and "server_stop" in events, (code, stderr.decode()[-3000:])
