"""Stage 1, the text itself: a string (or UTF-8 bytes), no NUL, valid Unicode, not too long.
And the text of messages: fragments of SQL, the closest names for "did you mean"."""

from __future__ import annotations

import difflib
from typing import Any

from pg_mcp.core.validation.verdict import ALLOWED, refuse

MAX_SQL_CHARS = 1_000_000  # a hard ceiling whatever [limits] max_sql_chars says
FRAGMENT_CHARS = 80


def fragment(text: str, limit: int = FRAGMENT_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (for messages)."""
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1].rstrip() + "…"


def check_text(raw: Any, max_sql_chars: int) -> str:
    """The SQL as a str, or a refusal (EMPTY, PARSE_ERROR, TOO_COMPLEX)."""
    sql = raw
    if isinstance(sql, bytes | bytearray | memoryview):
        try:
            sql = bytes(sql).decode("utf-8")
        except UnicodeDecodeError as e:
            refuse("PARSE_ERROR", f"the SQL is not valid UTF-8 (byte {e.start})")
    if sql is None:
        refuse("EMPTY", f"no SQL given; {ALLOWED}")
    if not isinstance(sql, str):
        refuse("PARSE_ERROR", f"the SQL must be text, not {type(sql).__name__}")
    limit = min(MAX_SQL_CHARS, int(max_sql_chars))
    if len(sql) > limit:
        refuse(
            "TOO_COMPLEX",
            f"the SQL is too long ({len(sql):,} characters; at most {limit:,})",
            hint="send a shorter query, or raise [limits] max_sql_chars",
        )
    nul = sql.find("\x00")
    if nul >= 0:
        refuse(
            "PARSE_ERROR",
            "the SQL contains a NUL character, which PostgreSQL does not accept",
            position=nul + 1,
        )
    if not sql.isascii():
        try:
            sql.encode("utf-8")
        except UnicodeEncodeError as e:
            refuse(
                "PARSE_ERROR",
                "the SQL is not valid Unicode text (lone surrogate)",
                position=e.start + 1,
            )
    return sql


def close(name: str, pool: list[str] | set[str], n: int = 3) -> list[str]:
    """The closest names (difflib), keeping only those nearly as close as the best one."""
    scored = []
    for cand in pool:
        m = difflib.SequenceMatcher(None, name.lower(), cand.lower())
        if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6:
            r = m.ratio()
            if r >= 0.6:
                scored.append((r, cand))
    if not scored:
        return []
    scored.sort(key=lambda x: (-x[0], x[1]))
    best = scored[0][0]
    return [c for r, c in scored[:n] if r >= best - 0.1]
