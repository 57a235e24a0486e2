"""pg-mcp db start|stop|status|dsn: the embedded PostgreSQL.

``start`` and ``dsn`` print the DSN pg-mcp itself uses: the embedded server's least-privilege
``pgmcp_reader`` role (or, with PG_MCP_DSN set, that DSN with its password masked).
"""

from __future__ import annotations

import argparse

from pg_mcp.core.secrets import redact_dsn
from pg_mcp.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.db import embedded

    if settings.dsn and args.action in ("start", "stop"):
        print(f"PG_MCP_DSN is set ({redact_dsn(settings.dsn)}): the embedded server is not used")
        return 0
    if args.action == "start":
        print(embedded.reader_dsn(settings.home))
    elif args.action == "stop":
        print("stopped" if embedded.stop(settings.home) else "not running")
    elif args.action == "status":
        if settings.dsn:
            print(f"external server: {redact_dsn(settings.dsn)}")
            return 0
        dsn = embedded.running_dsn(settings.home)
        print(f"running: {dsn}" if dsn else "not running")
        return 0 if dsn else 1
    elif args.action == "dsn":
        from pg_mcp.db.discovery import server_dsn

        print(redact_dsn(settings.dsn) if settings.dsn else server_dsn(settings))
    return 0
