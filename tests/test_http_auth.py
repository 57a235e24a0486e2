"""Bearer auth on `pg-mcp serve --transport http`: static tokens, JWTs, the host guard.

Servers run as real processes (tests/serving.py) and are talked to over real sockets, with
httpx2 (the MCP SDK's HTTP client library) for the raw HTTP answers and with the SDK's
streamable HTTP client for the MCP calls. The JWT issuer is an RSA key made here whose JWKS
a local HTTP server thread serves; the model behind `ask` is tests/standin_model.py.
No assertion is about wall time; every wait has a timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import serving
from conftest import scratch_database
from serving import PGMCP, free_port

pytestmark = pytest.mark.anyio

ISSUER = "https://issuer.pg-mcp.test"
SCOPE = "pg-mcp:query"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def new_token(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(20)}"


def short(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


# --- fixtures: database, server processes ------------------------------------------------------


@pytest.fixture(scope="module")
def served_db(pg_dsn: str) -> Iterator[str]:
    setup = "CREATE TABLE t (id int PRIMARY KEY, label text); INSERT INTO t VALUES (1, 'one')"
    with scratch_database(pg_dsn, setup, "auth") as name:
        yield name


@pytest.fixture
def base_env(settings, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "PG_MCP_DSN": str(settings.dsn),
        "PG_MCP_HOME": str(tmp_path / "home"),
        "PG_MCP_LOG_LEVEL": "INFO",
        "PATH": os.environ.get("PATH", ""),
    }


class Servers:
    """Starts servers in their own folders (a pg-mcp.toml each); stops them all at the end."""

    def __init__(self, root: Path, env: dict[str, str], db: str, stack: ExitStack) -> None:
        self.root, self.env, self.db, self.stack = root, env, db, stack
        self.n = 0

    def folder(self, toml: str = "") -> Path:
        self.n += 1
        cwd = self.root / f"server{self.n}"
        cwd.mkdir()
        (cwd / "pg-mcp.toml").write_text(f'[databases]\ninclude = ["{self.db}"]\n{toml}')
        return cwd

    def start(
        self,
        env: dict[str, str] | None = None,
        toml: str = "",
        port: int | None = None,
        args: tuple[str, ...] = (),
    ) -> serving.Served:
        cwd = self.folder(toml)
        return self.stack.enter_context(
            serving.http_server({**self.env, **(env or {})}, cwd, port, args)
        )

    def refused(self, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> tuple:  # type: ignore[type-arg]
        """Run a server that must refuse to start: (exit status, stderr, port)."""
        port = free_port()
        cwd = self.folder()
        proc = subprocess.run(
            [PGMCP, "serve", "--transport", "http", "--port", str(port), *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.returncode, proc.stderr, port


@pytest.fixture
def servers(tmp_path: Path, base_env: dict[str, str], served_db: str) -> Iterator[Servers]:
    with ExitStack() as stack:
        yield Servers(tmp_path, base_env, served_db, stack)


def stopped_stderr(served: serving.Served) -> str:
    serving.stop_process(served.proc)
    return served.err.read_text()


def not_listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def http(base: str, token: str | None = None) -> Any:
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.Client(base_url=base, headers=headers, timeout=30)


@asynccontextmanager
async def mcp(base: str, token: str | None) -> AsyncIterator[Any]:
    """The SDK's client over streamable HTTP, sending ``Authorization: Bearer <token>``."""
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as client,
        Client(streamable_http_client(f"{base}/mcp", http_client=client)) as session,
    ):
        yield session


async def check_tools(base: str, token: str) -> None:
    """initialize (entering the client), tools/list and a validate_sql call, authenticated."""
    async with mcp(base, token) as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        verdict = await client.call_tool("validate_sql", {"sql": "SELECT 1"})
    assert tools == ["ask", "run_readonly", "validate_sql"]
    assert not verdict.is_error and verdict.structured_content["ok"] is True


def assert_401(resp: Any) -> None:
    assert resp.status_code == 401, (resp.status_code, resp.text)
    challenge = resp.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


# --- static tokens ------------------------------------------------------------------------------


async def test_static_token_locks_mcp_and_metrics(servers: Servers) -> None:
    token = new_token("static")
    served = servers.start({"PG_MCP_HTTP_TOKEN": token})
    with http(served.base) as anon, http(served.base, token) as authed:
        assert_401(anon.post("/mcp", json=INIT, headers=MCP_HEADERS))
        with http(served.base, new_token("wrong")) as wrong:
            assert_401(wrong.post("/mcp", json=INIT, headers=MCP_HEADERS))
            assert_401(wrong.get("/metrics"))
        basic = anon.post(
            "/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": f"Basic {token}"}
        )
        assert_401(basic)
        assert_401(anon.get("/metrics"))
        health = anon.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        # static tokens only: no authorization server, so no protected-resource metadata
        assert anon.get("/.well-known/oauth-protected-resource/mcp").status_code == 404
        assert authed.post("/mcp", json=INIT, headers=MCP_HEADERS).status_code == 200
        await check_tools(served.base, token)
        metrics = authed.get("/metrics")
        assert metrics.status_code == 200
        assert 'pg_mcp_tool_calls_total{tool="validate_sql",outcome="ok"} 1' in metrics.text
    # `pg-mcp stats` sends the configured token; without one it gets the 401
    env = {"PATH": os.environ.get("PATH", ""), "PG_MCP_HTTP_TOKEN": token}
    stats = [PGMCP, "stats", "--url", served.base]
    run = {"capture_output": True, "text": True, "timeout": 60, "cwd": served.out.parent}
    with_token = subprocess.run(stats, env=env, **run)  # type: ignore[call-overload]
    assert with_token.returncode == 0, with_token.stderr
    assert 'tool="validate_sql",outcome="ok"} 1' in with_token.stdout
    without = subprocess.run(stats, env={"PATH": env["PATH"]}, **run)  # type: ignore[call-overload]
    assert without.returncode == 1 and "HTTP 401" in without.stderr
    assert token not in with_token.stderr + with_token.stdout

    stderr = stopped_stderr(served)
    assert token not in stderr
    lines = json_lines(stderr)
    auth = next(x for x in lines if x["event"] == "http_auth")
    assert auth["kinds"] == ["static"] and auth["static_tokens"] == 1
    assert auth["token_hashes"] == [short(token)]
    calls = [x for x in lines if x["event"] == "tool_call"]
    assert calls and all(c["client"] == f"token:{short(token)}" for c in calls)


async def test_tokens_file_with_two_tokens(servers: Servers, tmp_path: Path) -> None:
    one, two = new_token("first"), new_token("second")
    path = tmp_path / "tokens"
    path.write_text(f"# pg-mcp clients\n\n{one}\n   \n# the other one\n{two}\n")
    path.chmod(0o600)
    served = servers.start({"PG_MCP_HTTP_TOKENS_FILE": str(path)})
    await check_tools(served.base, one)
    await check_tools(served.base, two)
    with http(served.base, new_token("third")) as wrong:
        assert_401(wrong.post("/mcp", json=INIT, headers=MCP_HEADERS))
    stderr = stopped_stderr(served)
    assert one not in stderr and two not in stderr
    auth = next(x for x in json_lines(stderr) if x["event"] == "http_auth")
    assert auth["static_tokens"] == 2 and auth["token_hashes"] == [short(one), short(two)]


@pytest.mark.parametrize("case", ["missing", "empty", "world_readable", "short_token"])
def test_bad_token_configuration_refuses_to_start(
    servers: Servers, tmp_path: Path, case: str
) -> None:
    token = new_token("leak")
    path = tmp_path / "tokens"
    env = {"PG_MCP_HTTP_TOKENS_FILE": str(path)}
    if case == "empty":
        path.write_text("# nothing yet\n\n")
        path.chmod(0o600)
    elif case == "world_readable":
        path.write_text(f"{token}\n")
        path.chmod(0o644)
    elif case == "short_token":
        env = {"PG_MCP_HTTP_TOKEN": "tooshort"}
    rc, stderr, port = servers.refused(env)
    assert rc == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error CONFIG_ERROR: "), stderr
    assert token not in stderr and "tooshort" not in stderr
    assert not_listening(port)


# --- the host guard -----------------------------------------------------------------------------


def test_public_host_without_auth_refuses_to_start(servers: Servers) -> None:
    rc, stderr, port = servers.refused(args=("--host", "0.0.0.0"))
    assert rc == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error CONFIG_ERROR: refusing to serve HTTP on 0.0.0.0")
    assert "--insecure-no-auth" in lines[0]
    assert not_listening(port)


async def test_insecure_no_auth_starts_with_a_loud_warning(servers: Servers) -> None:
    served = servers.start(args=("--host", "0.0.0.0", "--insecure-no-auth"))
    async with mcp(served.base, None) as client:
        assert len((await client.list_tools()).tools) == 3
    lines = json_lines(stopped_stderr(served))
    warning = next(x for x in lines if x["event"] == "http_auth_off_insecure")
    assert warning["level"] == "warning" and "ANYONE" in warning["message"]


def test_loopback_without_auth_warns(servers: Servers) -> None:
    served = servers.start()
    with http(served.base) as anon:
        assert anon.get("/metrics").status_code == 200  # no auth configured: open, as before
    lines = json_lines(stopped_stderr(served))
    warning = next(x for x in lines if x["event"] == "http_auth_off")
    assert warning["level"] == "warning"
    assert not any(x["event"] == "http_auth" for x in lines)


def test_auth_on_a_public_host_needs_no_flag(servers: Servers) -> None:
    token = new_token("public")
    served = servers.start({"PG_MCP_HTTP_TOKEN": token}, args=("--host", "0.0.0.0"))
    with http(served.base) as anon, http(served.base, token) as authed:
        assert_401(anon.get("/metrics"))
        assert authed.get("/metrics").status_code == 200
    assert token not in stopped_stderr(served)


# --- JWTs ------------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An RSA signing key and a local HTTP server serving its JWKS (request count kept)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks: dict[str, Any] = {"keys": [self.jwk(self.key, "k1")]}
        self.status = 200
        self.hits = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                issuer.hits += 1
                body = json.dumps(issuer.jwks).encode()
                self.send_response(issuer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    @staticmethod
    def jwk(key: Any, kid: str) -> dict[str, Any]:
        from jwt.algorithms import RSAAlgorithm

        data = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**data, "kid": kid, "alg": "RS256", "use": "sig"}

    def sign(self, audience: str, key: Any = None, kid: str = "k1", **claims: Any) -> str:
        import jwt

        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": audience,
            "sub": "alice",
            "iat": now,
            "exp": now + 600,
            "scope": SCOPE,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    made = Issuer()
    try:
        yield made
    finally:
        made.stop()


def unsigned(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None) -> str:
    """A token built by hand: alg none (no signature) or HS256 with ``key``."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = b""
    if key is not None:
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


async def test_jwt_resource_server(servers: Servers, issuer: Issuer) -> None:
    from cryptography.hazmat.primitives import serialization

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    static = new_token("static")
    toml = (
        f'[http]\njwks_url = "{issuer.url}"\nissuer = "{ISSUER}"\n'
        f'resource_url = "{resource}"\nrequired_scopes = ["{SCOPE}"]\n'
    )
    served = servers.start({"PG_MCP_HTTP_TOKEN": static}, toml=toml, port=port)
    valid = issuer.sign(resource)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": resource, "sub": "mallory", "exp": now + 600, "scope": SCOPE}
    pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    refused = {
        "expired": issuer.sign(resource, exp=now - 3600, iat=now - 7200),
        "not yet valid": issuer.sign(resource, nbf=now + 3600),
        "no exp": issuer.sign(resource, exp=None),
        "wrong audience": issuer.sign("https://other.example/mcp"),
        "wrong issuer": issuer.sign(resource, iss="https://evil.example"),
        "wrong key": issuer.sign(resource, key=issuer.other),
        "unknown kid": issuer.sign(resource, key=issuer.other, kid="k-unknown"),
        "alg none": unsigned({"alg": "none", "kid": "k1"}, claims),
        "HS256 with the public key": unsigned({"alg": "HS256", "kid": "k1"}, claims, pem),
        "garbage": "not-a-jwt-at-all-but-long-enough",
    }
    metadata_url = f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
    with http(served.base) as anon:
        resp = anon.post("/mcp", json=INIT, headers=MCP_HEADERS)
        assert_401(resp)
        assert f'resource_metadata="{metadata_url}"' in resp.headers["www-authenticate"]
        for why, token in refused.items():
            with http(served.base, token) as bad:
                resp = bad.post("/mcp", json=INIT, headers=MCP_HEADERS)
                assert resp.status_code == 401, why
                assert_401(resp)
        with http(served.base, issuer.sign(resource, scope="other:scope")) as unscoped:
            resp = unscoped.post("/mcp", json=INIT, headers=MCP_HEADERS)
            assert resp.status_code == 403  # the SDK: insufficient_scope
            assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
            assert unscoped.get("/metrics").status_code == 403
        assert_401(anon.get("/metrics"))
        meta = anon.get("/.well-known/oauth-protected-resource/mcp")
        assert meta.status_code == 200
        doc = meta.json()
        assert doc["resource"] == resource
        assert [s.rstrip("/") for s in doc["authorization_servers"]] == [ISSUER]
        assert doc["scopes_supported"] == [SCOPE]
        assert anon.get("/healthz").json() == {"status": "ok"}
    with http(served.base, valid) as authed:
        assert authed.get("/metrics").status_code == 200
    await check_tools(served.base, valid)
    await check_tools(served.base, static)  # static tokens first, then JWTs

    stderr = stopped_stderr(served)
    for token in (valid, static, *refused.values()):
        assert token not in stderr
    lines = json_lines(stderr)
    auth = next(x for x in lines if x["event"] == "http_auth")
    assert auth["kinds"] == ["static", "jwt"] and auth["static_tokens"] == 1
    assert auth["issuer"] == ISSUER and auth["audience"] == resource
    clients = {x.get("client") for x in lines if x["event"] == "tool_call"}
    assert clients == {"jwt:alice", f"token:{short(static)}"}


# --- per-client ask rate limit ------------------------------------------------------------------


async def test_ask_rate_limit_is_per_token(servers: Servers, tmp_path: Path) -> None:
    from standin_model import StandinModel, gen, is_judge_request, judge

    one, two = new_token("asker-one"), new_token("asker-two")
    path = tmp_path / "tokens"
    path.write_text(f"{one}\n{two}\n")
    path.chmod(0o600)
    model = StandinModel().start()
    model.default = lambda body: (
        judge(9) if is_judge_request(body) else gen("SELECT count(*) AS n FROM t", "", ["public.t"])
    )
    try:
        served = servers.start(
            {
                "PG_MCP_HTTP_TOKENS_FILE": str(path),
                "OPENAI_BASE_URL": model.base_url,
                "OPENAI_API_KEY": "sk-standin-not-a-real-key",
                "OPENAI_MODEL": "standin-1",
            },
            toml="[ask]\nrate = 0.0001\nburst = 1\n",  # one call, then a refill every ~3 h
        )
        question = {"question": "How many rows are in t?", "database": servers.db}
        async with mcp(served.base, one) as first:
            answered = await first.call_tool("ask", question)
            limited = await first.call_tool("ask", question)
        async with mcp(served.base, two) as second:
            other = await second.call_tool("ask", question)
        async with mcp(served.base, one) as again:  # a new session, the same token
            still = await again.call_tool("ask", question)
    finally:
        model.stop()
    assert not answered.is_error, text_of(answered)
    assert answered.structured_content["result"]["rows"] == [[1]]
    assert limited.is_error and "RATE_LIMITED: " in text_of(limited)
    assert not other.is_error, text_of(other)
    assert still.is_error and "RATE_LIMITED: " in text_of(still)
    stderr = stopped_stderr(served)
    assert one not in stderr and two not in stderr


# --- the parts, in process ----------------------------------------------------------------------


def test_is_loopback() -> None:
    from pg_mcp.server.auth import is_loopback

    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "192.168.1.1", "example.com", "::ffff:1.2.3.4"):
        assert not is_loopback(host), host


def test_static_tokens_match_by_digest() -> None:
    from pg_mcp.server.auth import StaticTokens

    one, two = new_token("a"), new_token("b")
    tokens = StaticTokens([one, two, one], scopes=["s"])
    assert tokens.hashes == [short(one), short(two)]  # duplicates collapse
    assert tokens.match(one) == short(one) and tokens.match(two) == short(two)
    assert tokens.match(one[:-1]) is None and tokens.match("") is None
    assert all(one not in repr(entry) for entry in tokens.entries)  # only digests are kept
    access = tokens.verify(two)
    assert access.client_id == f"token:{short(two)}" and access.scopes == ["s"]


def test_tokens_file_rules(tmp_path: Path) -> None:
    from pg_mcp.core.errors import PgMcpError
    from pg_mcp.server.auth import read_tokens_file

    one, two = new_token("a"), new_token("b")
    path = tmp_path / "tokens"
    path.write_text(f"\n# comment {new_token('c')}\n  {one}  \n\n{two}\n")
    path.chmod(0o640)  # group-readable is allowed
    assert read_tokens_file(path) == [one, two]

    def refused(why: str) -> str:
        with pytest.raises(PgMcpError) as err:
            read_tokens_file(path)
        assert err.value.code == "CONFIG_ERROR" and "\n" not in err.value.message
        assert why in err.value.message, err.value.message
        return err.value.message

    path.chmod(0o644)
    assert one not in refused("chmod 600")
    path.chmod(0o602)
    refused("accessible to every user")
    path.chmod(0o600)
    path.write_text("# only a comment\n")
    refused("has no tokens")
    path.write_text(f"{one}\nshort\n")
    assert "short" not in refused("line 2").split(": ", 1)[1]
    path.unlink()
    refused("not found")


def test_keyed_buckets_are_per_client_and_bounded() -> None:
    from pg_mcp.ask.ratelimit import KeyedBuckets

    now = [0.0]
    buckets = KeyedBuckets(rate=1.0, burst=2, max_keys=3, clock=lambda: now[0])
    assert buckets.try_acquire("a")[0] and buckets.try_acquire("a")[0]
    ok, wait = buckets.try_acquire("a")
    assert not ok and wait == pytest.approx(1.0)
    assert buckets.try_acquire("b")[0] and buckets.try_acquire(None)[0]  # others unaffected
    assert len(buckets) == 3
    buckets.try_acquire("c")  # a fourth client: the least recently used ("a") goes
    assert len(buckets) == 3
    assert buckets.try_acquire("a")[0]  # back with a full bucket
    now[0] += 1.0
    assert buckets.try_acquire("b")[0]


def test_client_key() -> None:
    from mcp.server.auth.provider import AccessToken

    from pg_mcp.server.auth import client_key

    assert client_key(None) is None
    static = AccessToken(token="x", client_id="token:abc", scopes=[])
    assert client_key(static) == "token:abc"
    jwt_token = AccessToken(
        token="y", client_id="app", scopes=[], subject="alice", claims={"iss": ISSUER}
    )
    assert client_key(jwt_token) == "jwt:alice"
    no_sub = AccessToken(token="z", client_id="app", scopes=[], claims={"iss": ISSUER})
    assert client_key(no_sub) == "jwt:app"


def test_jwks_cache_refetches_at_most_once_a_minute(issuer: Issuer) -> None:
    from pg_mcp.server.auth import JwksCache

    now = [1000.0]
    cache = JwksCache(issuer.url, clock=lambda: now[0])
    assert cache.peek("k1") is None  # nothing fetched yet
    assert cache.get_sync("k1") is not None and issuer.hits == 1
    assert cache.peek("k1") is not None  # fresh: no fetch, no thread
    for _ in range(5):  # forged kids: no fetch within the minute
        assert cache.get_sync("forged") is None
    assert issuer.hits == 1
    now[0] += 61
    assert cache.get_sync("forged") is None and issuer.hits == 2
    assert cache.get_sync("forged") is None and issuer.hits == 2
    issuer.jwks["keys"].append(issuer.jwk(issuer.other, "k2"))  # rotation
    assert cache.get_sync("k2") is None and issuer.hits == 2  # still within the minute
    now[0] += 61
    assert cache.get_sync("k2") is not None and issuer.hits == 3
    assert cache.get_sync("") is None  # no kid and two keys: ambiguous
    now[0] += 601  # past the TTL: the set is refetched
    assert cache.peek("k1") is None
    issuer.status = 500
    assert cache.get_sync("k1") is not None  # a failed fetch keeps the known keys
    assert issuer.hits == 4 and cache.fetches == 4
    assert cache.get_sync("k1") is not None and issuer.hits == 4


async def test_jwt_rejections_name_their_reason(
    issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    """Each refused token of test_jwt_resource_server is refused for the reason it is about."""
    import logging

    from pg_mcp.server.auth import JwksCache, JwtVerifier

    resource = "https://pg.example/mcp"
    verifier = JwtVerifier(JwksCache(issuer.url), ISSUER, resource)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": resource, "sub": "m", "exp": now + 600}
    cases = {
        "ExpiredSignatureError": issuer.sign(resource, exp=now - 3600, iat=now - 7200),
        "ImmatureSignatureError": issuer.sign(resource, nbf=now + 3600),
        "MissingRequiredClaimError": issuer.sign(resource, exp=None),
        "InvalidAudienceError": issuer.sign("https://other.example/mcp"),
        "InvalidIssuerError": issuer.sign(resource, iss="https://evil.example"),
        "InvalidSignatureError": issuer.sign(resource, key=issuer.other),
        "unknown_key": issuer.sign(resource, key=issuer.other, kid="k-unknown"),
        "algorithm": unsigned({"alg": "none", "kid": "k1"}, claims),
        "DecodeError": "not-a-jwt-at-all-but-long-enough",
    }
    caplog.set_level(logging.INFO, logger="pg_mcp")
    good = await verifier.verify(issuer.sign(resource, sub="bob", scope="a b"))
    assert good.subject == "bob" and good.scopes == ["a", "b"] and good.resource == resource
    for reason, token in cases.items():
        caplog.clear()
        assert await verifier.verify(token) is None, reason
        fields = [getattr(r, "pg_mcp_fields", {}) for r in caplog.records]
        assert [f.get("reason") for f in fields] == [reason]
        assert fields[0]["token_hash"] == short(token) and token not in caplog.text


def test_settings_http_section_and_secrets(tmp_path: Path) -> None:
    from pg_mcp.core.settings import load_settings

    token, in_file = new_token("env"), new_token("file")
    path = tmp_path / "tokens"
    path.write_text(f"# c\n{in_file}\n")
    config = tmp_path / "pg-mcp.toml"
    config.write_text(
        '[http]\njwks_url = "https://idp.example/jwks"\nissuer = "https://idp.example"\n'
        'audience = "api://pg"\nrequired_scopes = ["a", "b"]\n'
        'resource_url = "https://pg.example/mcp"\ntokens_file = "ignored"\n'
    )
    s = load_settings(
        env={"PG_MCP_HTTP_TOKEN": token, "PG_MCP_HTTP_TOKENS_FILE": str(path)}, config_path=config
    )
    assert s.http_tokens_file == path  # the environment wins over the file
    assert s.http_required_scopes == ("a", "b") and s.http_audience == "api://pg"
    assert token in s.secrets() and in_file in s.secrets()


def test_incomplete_jwt_configuration_is_a_config_error() -> None:
    from pg_mcp.core.errors import PgMcpError
    from pg_mcp.core.settings import Settings
    from pg_mcp.server.auth import load_http_auth

    assert load_http_auth(Settings()) is None
    bad = {
        "only apply to JWTs": Settings(http_issuer=ISSUER),
        "needs issuer and resource_url": Settings(http_jwks_url="https://idp.example/jwks"),
        "must be https": Settings(
            http_jwks_url="http://idp.example/jwks",
            http_issuer=ISSUER,
            http_resource_url="https://pg.example/mcp",
        ),
    }
    for why, settings in bad.items():
        with pytest.raises(PgMcpError) as err:
            load_http_auth(settings)
        assert err.value.code == "CONFIG_ERROR" and why in err.value.message
    auth = load_http_auth(
        Settings(
            http_jwks_url="https://idp.example/jwks",
            http_issuer=ISSUER,
            http_resource_url="https://pg.example/mcp",
        )
    )
    assert auth is not None and auth.kinds == ("jwt",)
    assert auth.audience == "https://pg.example/mcp"  # the default audience: resource_url
