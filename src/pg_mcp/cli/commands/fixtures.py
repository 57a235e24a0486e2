"""pg-mcp fixtures [--only small|medium|large ...] [--force]: (re)create the fixture databases."""

from __future__ import annotations

import argparse
import time

from pg_mcp.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.db.discovery import admin_dsn
    from pg_mcp_dev.fixtures import database_name, ensure_loaded

    names = [database_name(n) for n in args.only] if args.only else None
    dsn = admin_dsn(settings)
    start = time.monotonic()

    def show(db: str, status: str, seconds: float) -> None:
        print(f"{db:<18} {status:<11} {seconds:6.1f}s", flush=True)

    ensure_loaded(dsn, names, force=args.force, progress=show)
    print(f"{'total':<18} {'':<11} {time.monotonic() - start:6.1f}s")
    return 0
