"""`pg-mcp serve --transport http --stateless`: any replica answers any request.

Two real server processes on two ports, with bearer auth on; one real MCP client (the SDK's
streamable HTTP client) whose HTTP requests a round-robin "load balancer" (an httpx2
transport) sends to each server in turn: initialize on one, the tool calls and resource reads
on whichever is next, with the legacy initialize handshake and with the SDK's default
negotiation. Both answer, and both refuse a request without the token. Raw
JSON-RPC shows the stateless contract: no ``Mcp-Session-Id``, a JSON body (not an event
stream), and a request answered by a replica that never saw the client's initialize.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import serving
from conftest import scratch_database

pytestmark = pytest.mark.anyio

TOKEN = f"stateless-{secrets.token_hex(16)}"
MCP_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-06-18",
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served_db(pg_dsn: str) -> Iterator[str]:
    setup = "CREATE TABLE t (id int PRIMARY KEY, label text); INSERT INTO t VALUES (1, 'one'), (2, 'two')"
    with scratch_database(pg_dsn, setup, "stateless") as name:
        yield name


@pytest.fixture
def replicas(settings, tmp_path: Path, served_db: str) -> Iterator[list[serving.Served]]:  # type: ignore[no-untyped-def]
    env = {
        "PG_MCP_DSN": str(settings.dsn),
        "PG_MCP_HOME": str(tmp_path / "home"),  # one schema cache folder, as on a shared volume
        "PG_MCP_HTTP_TOKEN": TOKEN,
        "PATH": os.environ.get("PATH", ""),
    }
    with ExitStack() as stack:
        served = []
        for i in range(2):
            cwd = tmp_path / f"replica{i}"
            cwd.mkdir()
            (cwd / "pg-mcp.toml").write_text(f'[databases]\ninclude = ["{served_db}"]\n')
            served.append(stack.enter_context(serving.http_server(env, cwd, args=("--stateless",))))
        yield served


def round_robin(ports: list[int]) -> Any:
    """An httpx2 transport sending each request to the next replica's port (a load balancer)."""
    import httpx2

    class RoundRobin(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.ports = ports
            self.sent: list[tuple[str, int]] = []  # (method, port) of every request
            self.inner = httpx2.AsyncHTTPTransport()

        async def handle_async_request(self, request: Any) -> Any:
            port = self.ports[len(self.sent) % len(self.ports)]
            self.sent.append((request.method, port))
            request.url = request.url.copy_with(port=port)
            request.headers["host"] = f"127.0.0.1:{port}"
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    return RoundRobin()


def port_of(served: serving.Served) -> int:
    return int(served.base.rsplit(":", 1)[1])


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_one_client_alternating_between_two_replicas(
    replicas: list[serving.Served], served_db: str, mode: str
) -> None:
    """``legacy``: the initialize handshake of protocol versions up to 2025 (where a stateful
    server hands out an ``Mcp-Session-Id`` only it knows); ``auto``: the SDK's default, the
    modern protocol when the server offers it."""
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    ports = [port_of(s) for s in replicas]
    balancer = round_robin(ports)
    balancer_base = replicas[0].base
    async with (
        httpx2.AsyncClient(
            transport=balancer,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=httpx2.Timeout(30, read=120),
        ) as http,
        Client(
            streamable_http_client(f"{balancer_base}/mcp", http_client=http), mode=mode
        ) as client,
    ):
        results = []
        for i in range(6):
            r = await client.call_tool(
                "run_readonly",
                {"sql": f"SELECT label FROM t WHERE id = {i % 2 + 1}", "database": served_db},
            )
            results.append(r)
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        listed = await client.read_resource("databases://list")
    assert [r.is_error for r in results] == [False] * 6, [r.content for r in results]
    assert [r.structured_content["rows"] for r in results] == [[["one"]], [["two"]]] * 3
    assert tools == ["ask", "run_readonly", "validate_sql"]
    assert served_db in listed.contents[0].text
    # every replica answered MCP requests (POSTs) of this one client
    posts = [port for method, port in balancer.sent if method == "POST"]
    assert set(posts) == set(ports) and len(posts) >= 8, balancer.sent


def test_stateless_contract_and_auth_on_every_replica(
    replicas: list[serving.Served], served_db: str
) -> None:
    import httpx2

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {
            "name": "run_readonly",
            "arguments": {"sql": "SELECT count(*) AS n FROM t", "database": served_db},
        },
    }
    first, second = replicas
    authed = {**MCP_HEADERS, "Authorization": f"Bearer {TOKEN}"}
    with httpx2.Client(timeout=60) as http:
        for served in replicas:  # auth still applies, on each replica
            anon = http.post(f"{served.base}/mcp", json=init, headers=MCP_HEADERS)
            assert anon.status_code == 401, anon.text
        hello = http.post(f"{first.base}/mcp", json=init, headers=authed)
        assert hello.status_code == 200, hello.text
        assert hello.headers["content-type"].startswith("application/json")
        assert "mcp-session-id" not in hello.headers  # no session to be sticky to
        assert hello.json()["result"]["serverInfo"]["name"]
        # the other replica never saw that initialize, and answers the call anyway
        answer = http.post(f"{second.base}/mcp", json=call, headers=authed)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/json")
        result = answer.json()["result"]
        assert result["isError"] is False, result
        assert result["structuredContent"]["rows"] == [[2]]
        assert json.loads(result["content"][0]["text"])["rows"] == [[2]]


def test_stateless_needs_the_http_transport(tmp_path: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [serving.PGMCP, "serve", "--stateless"],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "PG_MCP_HOME": str(tmp_path / "home")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "CONFIG_ERROR" in proc.stderr, proc.stderr
