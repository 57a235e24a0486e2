"""pg-mcp ask [--db NAME] [--return sql|result|both] [--json] QUESTION

Runs the same loop as the MCP ``ask`` tool. Without --json: the SQL, a table of the
result, then score, attempts and tokens (a low-confidence answer is flagged on stderr).
With --json: exactly one JSON object. Exit 0 with an answer, 1 on errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pg_mcp.core.settings import Settings

MAX_CELL = 40
MAX_PRINT_ROWS = 50


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.ask.loop import Asker

    asker = Asker(settings)
    answer = asker.ask_sync(args.question, args.db, args.return_type)
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, default=str))
        return 0
    print(format_answer(answer))
    if answer.get("low_confidence"):
        print(
            f"warning: low confidence (best score {answer.get('score')}/10 after {answer.get('attempts')} attempts)"
            + (f"; {answer['warning']}" if answer.get("warning") else ""),
            file=sys.stderr,
        )
    return 0


def format_answer(answer: dict[str, Any]) -> str:
    lines: list[str] = []
    db = answer.get("database")
    lines.append(
        f"-- database: {db}"
        + (" (chosen from the question)" if answer.get("database_chosen") else "")
    )
    if answer.get("explanation"):
        lines.append(f"-- {answer['explanation']}")
    lines.append(str(answer.get("sql", "")).rstrip())
    result = answer.get("result")
    if result is not None:
        lines.append("")
        lines.append(format_table(result.get("columns", []), result.get("rows", [])))
        n = result.get("row_count", 0)
        more = " (truncated by the row cap)" if result.get("truncated") else ""
        lines.append(f"({n} row{'s' if n != 1 else ''}{more})")
    lines.append("")
    tokens = answer.get("tokens") or {}
    score = answer.get("score")
    lines.append(
        f"score: {score if score is not None else '-'}/10"
        f"  attempts: {answer.get('attempts')}"
        f"  tokens: {tokens.get('total', 0)} (prompt {tokens.get('prompt', 0)}, completion {tokens.get('completion', 0)})"
        f"  {answer.get('elapsed_ms', 0):.0f} ms"
    )
    if answer.get("reasoning"):
        lines.append(f"judge: {answer['reasoning']}")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        s = "NULL"
    elif isinstance(v, dict | list):
        s = json.dumps(v, ensure_ascii=False, default=str)
    else:
        s = str(v)
    s = " ".join(s.split())
    return s if len(s) <= MAX_CELL else s[: MAX_CELL - 3] + "..."


def _width(s: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def _pad(s: str, w: int) -> str:
    return s + " " * (w - _width(s))


def format_table(columns: list[dict[str, Any]], rows: list[list[Any]]) -> str:
    names = [str(c.get("name", "")) for c in columns]
    body = [[_cell(v) for v in row] for row in rows[:MAX_PRINT_ROWS]]
    widths = [_width(n) for n in names]
    for r in body:
        for i, c in enumerate(r[: len(widths)]):
            widths[i] = max(widths[i], _width(c))
    out = [" | ".join(_pad(n, w) for n, w in zip(names, widths, strict=False))]
    out.append("-+-".join("-" * w for w in widths))
    for r in body:
        out.append(" | ".join(_pad(c, w) for c, w in zip(r, widths, strict=False)))
    if len(rows) > MAX_PRINT_ROWS:
        out.append(f"... {len(rows) - MAX_PRINT_ROWS} more rows (use --json for all)")
    return "\n".join(out)
