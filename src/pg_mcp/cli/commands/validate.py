"""pg-mcp validate [--db NAME] [--json] SQL: exit 0 accepted, 1 rejected.

Without --json: ``ok`` or ``CODE: message``, then the hint and, when the verdict has a
position, the offending line with a caret under it.
"""

from __future__ import annotations

import argparse
import json
import sys

from pg_mcp.core.settings import Settings


def read_sql(arg: str) -> str:
    """The SQL argument, or standard input when it is ``-``, read as bytes and decoded as
    strict UTF-8 whatever the locale: invalid input is a one-line PARSE_ERROR naming the
    first bad byte (1-based), never a traceback. (Arguments are checked in ``cli.main``.)"""
    if arg != "-":
        return arg
    return decode_utf8(sys.stdin.buffer.read(), "standard input")


def decode_utf8(data: bytes, what: str) -> str:
    """``data`` as UTF-8, else PARSE_ERROR "<what> is not valid UTF-8 (byte N)"."""
    from pg_mcp.core.errors import PgMcpError

    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PgMcpError(
            "PARSE_ERROR",
            f"{what} is not valid UTF-8 (byte {exc.start + 1})",
            hint="send the text as UTF-8",
        ) from None


def caret_lines(sql: str, position: int | None) -> list[str]:
    """The SQL line holding 1-based character ``position``, and a caret under that character."""
    if position is None or not 1 <= position <= len(sql) + 1:
        return []
    index = position - 1
    start = sql.rfind("\n", 0, index) + 1
    end = sql.find("\n", index)
    line = sql[start : len(sql) if end < 0 else end]
    column = index - start
    if len(line) > 120:  # keep a window around the caret
        lo = max(0, column - 60)
        line, column = line[lo : lo + 120], column - lo
    line = line.replace("\t", " ")
    return [f"  {line}", "  " + " " * column + "^"]


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.core.secrets import Redactor
    from pg_mcp.db.checker import validate_sql

    sql = read_sql(args.sql)
    verdict = validate_sql(sql, args.db, settings=settings)
    redact = Redactor(settings.secrets())
    if args.json:
        payload = verdict.to_dict()
        for key in ("message", "hint"):
            if isinstance(payload.get(key), str):
                payload[key] = redact(payload[key])
        print(json.dumps(payload, ensure_ascii=False, default=str))
        return 0 if verdict.ok else 1
    if verdict.ok:
        print("ok")
        return 0
    print(f"{verdict.code}: {redact(verdict.message)}")
    if verdict.hint:
        print(f"hint: {redact(verdict.hint)}")
    for line in caret_lines(sql, verdict.position):
        print(line)
    return 1
