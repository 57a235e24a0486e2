"""pg-mcp serve [--transport stdio|http] [--host 127.0.0.1] [--port 8000]: run the MCP server.

stdio: the protocol on stdin/stdout (logs on stderr). http: streamable HTTP at ``/mcp``,
with ``/metrics`` (Prometheus text format) and ``/healthz`` next to it, served by uvicorn.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys

from pg_mcp.settings import Settings

log = logging.getLogger("pg_mcp.serve")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.logs import log_event, setup_logging

    setup_logging(settings.secrets())
    import anyio

    from pg_mcp.server import build_server

    server = build_server(settings)
    if args.transport == "http":
        with contextlib.suppress(KeyboardInterrupt):  # uvicorn handles the signals itself
            anyio.run(_serve_http, server, args.host, args.port)
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


def _interrupt(signum: int, frame: object) -> None:
    """First SIGINT/SIGTERM: interrupt the loop (cleanup runs); a second one: exit now."""
    signal.signal(signal.SIGINT, _exit_now)
    signal.signal(signal.SIGTERM, _exit_now)
    raise KeyboardInterrupt


def _exit_now(signum: int, frame: object) -> None:
    os._exit(128 + signum)


async def _serve_http(server, host: str, port: int) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from pg_mcp.logs import log_event

    app = server.streamable_http_app(host=host)  # DNS-rebinding protection on localhost hosts
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
    log_event(log, "serving", transport="http", url=f"{base}/mcp", metrics=f"{base}/metrics")
    await uvicorn.Server(config).serve()
