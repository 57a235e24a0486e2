"""pg-mcp doctor [--json]: server version, role, risky privileges, a least-privilege role."""

from __future__ import annotations

import argparse
import json

from pg_mcp.core.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.db.doctor import build_report, render_text

    report = build_report(settings, getattr(args, "config", None))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, default=str))
    else:
        print(render_text(report))
    return 0
