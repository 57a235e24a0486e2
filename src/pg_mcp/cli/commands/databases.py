"""pg-mcp databases [--json]: the databases reachable through the configured server.

``--json`` prints one object: ``{"ok": true, "databases": [{"name", "size_bytes", "size",
"comment"}, ...]}`` (failures: ``{"ok": false, "code", "message"}`` from cli.main).
"""

from __future__ import annotations

import argparse

from pg_mcp.core.settings import Settings


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # unreachable


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.cli.commands.run import render_table
    from pg_mcp.core.datatext import inert_dumps, plain, quote_text
    from pg_mcp.db.discovery import list_databases

    dbs = list_databases(settings)
    items = [
        {
            "name": d.name,
            "size_bytes": d.size_bytes,
            "size": human_size(d.size_bytes),
            "comment": plain(d.comment),  # database text: one line, capped
        }
        for d in dbs
    ]
    if args.json:
        print(inert_dumps({"ok": True, "databases": items}))
        return 0
    columns = [{"name": "name"}, {"name": "size"}, {"name": "comment"}]
    rows = [[i["name"], i["size"], quote_text(i["comment"]) if i["comment"] else ""] for i in items]
    for line in render_table(columns, rows, width=60):  # type: ignore[arg-type]
        print(line)
    print(f"({len(items)} database{'s' if len(items) != 1 else ''})")
    return 0
