"""pg-mcp serve [--transport stdio|http] [--host 127.0.0.1] [--port 8000] [--stateless]
[--insecure-no-auth].

stdio: the protocol on stdin/stdout (logs on stderr). http: streamable HTTP at ``/mcp``,
with ``/metrics`` (Prometheus text format) and ``/healthz`` next to it, served by uvicorn.

``--stateless`` (HTTP only) is the SDK's stateless streamable HTTP with JSON responses: no
``Mcp-Session-Id``, no session in memory, every POST answered with one JSON body, so several
replicas behind a load balancer can each answer any request (no sticky sessions). What a
replica does keep (schema cache, ask rate-limit buckets, the model circuit breaker, metrics)
is per process; see the README's "Deploying for a team".

HTTP is locked by default: with ``PG_MCP_HTTP_TOKEN``, ``PG_MCP_HTTP_TOKENS_FILE`` or
``[http] jwks_url`` every ``/mcp`` and ``/metrics`` request needs a bearer token. Without any
of them, a loopback ``--host`` (127.0.0.0/8, ::1, localhost) still serves, with a warning; any
other host is refused (CONFIG_ERROR, exit status 1, one line on stderr, nothing listens)
unless ``--insecure-no-auth`` is given, which serves with a loud warning instead.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings

log = logging.getLogger("pg_mcp.serve")


def http_auth_or_refuse(settings: Settings, host: str, insecure_no_auth: bool):  # type: ignore[no-untyped-def]
    """The HTTP auth to serve with (None: none), or CONFIG_ERROR when the host is reachable
    from other machines and nothing protects it. Runs before anything is logged or bound."""
    from pg_mcp.server.auth import is_loopback, load_http_auth

    auth = load_http_auth(settings)
    if auth is None and not is_loopback(host) and not insecure_no_auth:
        raise PgMcpError(
            "CONFIG_ERROR",
            f"refusing to serve HTTP on {host} without authentication: set PG_MCP_HTTP_TOKEN, "
            "PG_MCP_HTTP_TOKENS_FILE or [http] jwks_url, or pass --insecure-no-auth",
        )
    return auth


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.core.logs import log_event, setup_logging

    auth = None
    stateless = bool(getattr(args, "stateless", False))
    if stateless and args.transport != "http":
        raise PgMcpError(
            "CONFIG_ERROR",
            "--stateless applies to --transport http only",
            hint="pg-mcp serve --transport http --stateless",
        )
    if args.transport == "http":
        auth = http_auth_or_refuse(settings, args.host, args.insecure_no_auth)
    setup_logging(settings.secrets())
    import anyio

    from pg_mcp.server.app import build_server

    server = build_server(settings, auth=auth)
    if args.transport == "http":
        _log_auth(auth, args.host, args.insecure_no_auth)
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn handles the signals itself
            anyio.run(_serve_http, server, args.host, args.port, stateless)
        return 0
    # stdio: SIGINT and SIGTERM interrupt the loop, so the lifespan still closes the pools
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    log_event(log, "serving", transport="stdio")
    try:
        anyio.run(server.run_stdio_async)
    except KeyboardInterrupt:
        # The SDK reads stdin in a worker thread that only ends at EOF: after a signal
        # (the lifespan has run its cleanup by now) exit without waiting for it.
        log_event(log, "interrupted")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _log_auth(auth, host: str, insecure_no_auth: bool) -> None:  # type: ignore[no-untyped-def]
    """One startup line about auth: which kinds are on (token hash prefixes, never values),
    or a warning that there is none."""
    from pg_mcp.core.logs import log_event
    from pg_mcp.server.auth import is_loopback

    if auth is not None:
        log_event(log, "http_auth", **auth.describe())
    elif is_loopback(host):
        log_event(
            log,
            "http_auth_off",
            level=logging.WARNING,
            message=f"no bearer auth on {host}: every local user and process can call every "
            "tool, ask included (set PG_MCP_HTTP_TOKEN to require a token)",
        )
    elif insecure_no_auth:
        log_event(
            log,
            "http_auth_off_insecure",
            level=logging.WARNING,
            message=f"--insecure-no-auth: ANYONE who can reach {host} can call every tool, "
            "ask included (spending the model budget); set PG_MCP_HTTP_TOKEN or [http] jwks_url",
        )


def _interrupt(signum: int, frame: object) -> None:
    """First SIGINT/SIGTERM: interrupt the loop (cleanup runs); a second one: exit now."""
    signal.signal(signal.SIGINT, _exit_now)
    signal.signal(signal.SIGTERM, _exit_now)
    raise KeyboardInterrupt


def _exit_now(signum: int, frame: object) -> None:
    os._exit(128 + signum)


async def _serve_http(server, host: str, port: int, stateless: bool = False) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from pg_mcp.core.logs import log_event

    app = server.streamable_http_app(  # DNS-rebinding protection on localhost hosts
        host=host, stateless_http=stateless, json_response=stateless
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # uvicorn logs through the root JSON handler (stderr)
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    log_event(
        log,
        "serving",
        transport="http",
        url=f"{base}/mcp",
        metrics=f"{base}/metrics",
        stateless=stateless,
    )
    await uvicorn.Server(config).serve()
