"""pg-mcp run --db NAME [--max-rows N] [--timeout SECONDS] [--json] SQL.

``--max-rows`` and ``--timeout`` can lower the configured row cap and statement timeout, never
raise them: the configuration (pg-mcp.toml, PG_MCP_MAX_ROWS, PG_MCP_STATEMENT_TIMEOUT) is the
boundary, and a command line an agent may be pre-approved to write must not move it.

Exit 0 on success, 1 on any failure. ``--json`` prints exactly one JSON object on stdout
(``RunResult.to_dict()``), failures included. Without it: an aligned table and a footer
``(N rows, truncated) in X ms``; failures go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from typing import Any

from pg_mcp.core.settings import Settings

CELL_WIDTH = 40
NUMERIC_TYPES = ("numeric", "decimal")  # JSON strings (exact text), right-aligned like numbers


def display_width(text: str) -> int:
    """Terminal columns: East Asian wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cut(text: str, width: int) -> str:
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def cell_text(value: Any, width: int = CELL_WIDTH) -> str:
    """One JSON-safe value as a single-line table cell, cut to ``width`` characters."""
    if value is None:
        text = "NULL"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = str(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r").replace("\t", " ")
    return _cut(text, width)


def render_table(
    columns: list[dict[str, str]], rows: list[list[Any]], width: int = CELL_WIDTH
) -> list[str]:
    """Aligned text table (numbers right-aligned), like psql's."""
    names = [cell_text(c["name"], width) for c in columns]
    cells = [[cell_text(v, width) for v in row] for row in rows]
    widths = [
        max([display_width(n)] + [display_width(r[i]) for r in cells]) for i, n in enumerate(names)
    ]
    numeric = [
        bool(rows)
        and (
            str(columns[i].get("type", "")).startswith(NUMERIC_TYPES)  # numeric: exact text
            or all(
                isinstance(r[i], int | float) and not isinstance(r[i], bool)
                for r in rows
                if r[i] is not None
            )
        )
        for i in range(len(columns))
    ]
    lines = [" | ".join(_pad(n, w) for n, w in zip(names, widths, strict=True)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    for row in cells:
        parts = [_pad(v, w, num) for v, w, num in zip(row, widths, numeric, strict=True)]
        lines.append(" | ".join(parts).rstrip())
    return lines


def footer(row_count: int, truncated: bool, elapsed_ms: float) -> str:
    noun = "row" if row_count == 1 else "rows"
    cut = ", truncated" if truncated else ""
    return f"({row_count} {noun}{cut}) in {elapsed_ms:.0f} ms"


def within_limits(
    max_rows: int | None, timeout: float | None, settings: Settings
) -> tuple[int | None, float | None]:
    """``--max-rows`` / ``--timeout`` capped at the configured limits (None: the configured)."""
    if max_rows is not None:
        max_rows = min(max_rows, settings.max_rows)
    if timeout is not None and timeout > 0:  # <= 0 stays: run_readonly refuses it
        timeout = min(timeout, settings.statement_timeout)
    return max_rows, timeout


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.cli.commands.validate import caret_lines, read_sql
    from pg_mcp.db.executor import run_readonly

    sql = read_sql(args.sql)
    max_rows, timeout = within_limits(args.max_rows, args.timeout, settings)
    result = run_readonly(sql, args.db, settings=settings, max_rows=max_rows, timeout=timeout)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
        return 0 if result.ok else 1
    if not result.ok:
        state = f" (SQLSTATE {result.sqlstate})" if result.sqlstate else ""
        print(f"error {result.code}: {result.message}{state}", file=sys.stderr)
        if result.hint:
            print(f"hint: {result.hint}", file=sys.stderr)
        for line in caret_lines(sql, result.position):
            print(line, file=sys.stderr)
        return 1
    for line in render_table(result.columns, result.rows):
        print(line)
    print(footer(result.row_count, result.truncated, result.elapsed_ms))
    if result.truncated_reason == "max_bytes":
        print(f"(stopped at the byte budget: max_bytes = {settings.max_bytes:,})", file=sys.stderr)
    return 0
