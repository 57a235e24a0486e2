"""pg-mcp sample-dbs [--shared DIR] [--force]: load pagila and northwind when the folder exists."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pg_mcp.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    shared = Path(args.shared)
    if not shared.is_dir():
        print(f"skipped: no sample databases folder at {shared}")
        return 0
    from pg_mcp.db.discovery import admin_dsn
    from pg_mcp_dev.fixtures import ensure_sample_dbs

    start = time.monotonic()
    for db, status in ensure_sample_dbs(admin_dsn(settings), shared, force=args.force).items():
        print(f"{db:<18} {status}")
    print(f"{'total':<18} {time.monotonic() - start:.1f}s")
    return 0
