"""Parse fixtures/TEST_QUERIES.md into cases (pure: text in, dataclasses out).

Format::

    ## db_pg_mcp_small              <- database
    ### Simple                      <- level: Simple, Medium, Complex or Advanced
    * 12: revenue by month          <- case id (unique in the file) and title
        自然语言：2024 年每个月的销售额是多少？
        期望 SQL：SELECT date_trunc('month', o.ordered_at) AS month, sum(o.total)
            FROM shop.orders o GROUP BY 1    <- the SQL may continue on indented lines

A blank line ends a case. Lines of prose (not starting with ``*``, ``-`` or indentation) and
fenced code blocks are allowed between cases. Anything else malformed raises :class:`QueryFileError` with the line number.

Whether the expected result is *ordered* (compared row by row rather than as a multiset): the
title may say so explicitly with ``[ordered]`` or ``[unordered]``; otherwise a case is ordered
when its SQL has a top-level ORDER BY *and* the question asks for an order ("top 5", "highest",
"sorted", "in order", "按……排序", "前 10", "最", ...). "order" alone is not enough: in a shop it
usually means a purchase.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LEVELS = ("simple", "medium", "complex", "advanced")
Q_PREFIX = "自然语言："
SQL_PREFIX = "期望 SQL："

_DB_RE = re.compile(r"^##\s+(\S+)\s*$")
_LEVEL_RE = re.compile(r"^###\s+(\S+)\s*$")
_CASE_RE = re.compile(r"^\*\s+(\d+):\s+(\S.*?)\s*$")
_MARKER_RE = re.compile(r"\s*\[(ordered|unordered)\]\s*", re.IGNORECASE)

_ORDER_WORDS = re.compile(
    r"\b(top|first|last|bottom) \d+|\b(highest|lowest|largest|smallest|biggest|most|least|best|worst|"
    r"latest|earliest|newest|oldest|rank(ed|ing)?|sort(ed)?|ascending|descending|chronological(ly)?)\b"
    r"|\border(ed)? by\b|\bin (\w+ )?order\b"
    r"|排序|排名|排列|前\s*\d+|前[一二三四五六七八九十]+|最|依次|由高到低|从高到低|由低到高|从低到高|"
    r"升序|降序|倒序|顺序",
    re.IGNORECASE,
)


class QueryFileError(ValueError):
    """A malformed TEST_QUERIES.md; the message starts with ``path:line:``."""


@dataclass(frozen=True)
class QueryCase:
    id: int
    title: str
    database: str
    level: str  # one of LEVELS
    question: str
    sql: str
    ordered: bool
    line: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def question_implies_order(question: str) -> bool:
    return bool(_ORDER_WORDS.search(question))


def has_top_level_order_by(sql: str) -> bool:
    """True when the outermost query (or set operation) has ORDER BY."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except Exception:
        return _top_level_order_by_text(sql)
    while isinstance(tree, exp.Subquery | exp.Paren):
        tree = tree.this
    return tree is not None and tree.args.get("order") is not None


def _top_level_order_by_text(sql: str) -> bool:
    """Fallback when sqlglot cannot parse: ORDER BY outside parentheses and quotes."""
    depth, i, n = 0, 0, len(sql)
    low = sql.lower()
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            j = sql.find(ch, i + 1)
            i = n if j < 0 else j + 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif (
            depth == 0
            and re.match(r"order\s+by\b", low[i:])
            and (i == 0 or not low[i - 1].isalnum())
        ):
            return True
        i += 1
    return False


def parse_test_queries(text: str, source: str = "TEST_QUERIES.md") -> list[QueryCase]:
    """Parse the whole file; raise QueryFileError on the first malformed line."""
    cases: list[QueryCase] = []
    database: str | None = None
    level: str | None = None
    current: dict[str, Any] | None = None
    seen: dict[int, int] = {}

    def fail(lineno: int, msg: str) -> QueryFileError:
        return QueryFileError(f"{source}:{lineno}: {msg}")

    def finish() -> None:
        nonlocal current
        if current is None:
            return
        c = current
        current = None
        if c["question"] is None:
            raise fail(c["line"], f"case {c['id']}: missing the '{Q_PREFIX}' line")
        if not c["sql"]:
            raise fail(c["line"], f"case {c['id']}: missing the '{SQL_PREFIX}' line")
        sql = "\n".join(c["sql"]).strip()
        title = c["title"]
        marker = _MARKER_RE.search(title)
        if marker:
            title = _MARKER_RE.sub(" ", title).strip()
            ordered = marker.group(1).lower() == "ordered"
        else:
            ordered = has_top_level_order_by(sql) and question_implies_order(c["question"])
        cases.append(
            QueryCase(
                id=c["id"],
                title=title,
                database=c["database"],
                level=c["level"],
                question=c["question"],
                sql=sql,
                ordered=ordered,
                line=c["line"],
            )
        )

    fence: int | None = None  # line of an open ``` fence
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if line.startswith("```"):
            finish()
            fence = None if fence is not None else lineno
            continue
        if fence is not None:
            continue
        if not stripped:
            finish()
            continue
        if line.startswith("#"):
            finish()
            if line.startswith("###"):
                m = _LEVEL_RE.match(line)
                if not m or m.group(1).lower() not in LEVELS:
                    raise fail(
                        lineno,
                        f"level heading must be one of: {', '.join(s.title() for s in LEVELS)}",
                    )
                if database is None:
                    raise fail(lineno, "level heading before any '## <database>' heading")
                level = m.group(1).lower()
            elif line.startswith("## "):
                m = _DB_RE.match(line)
                if not m:
                    raise fail(lineno, "database heading must be '## <database name>'")
                database, level = m.group(1), None
            # a '# title' heading is fine
            continue
        if line.startswith(("*", "-")):
            finish()
            m = _CASE_RE.match(line)
            if not m:
                raise fail(lineno, "case line must be '* <id>: <title>'")
            if database is None or level is None:
                raise fail(lineno, "case outside a '## <database>' / '### <level>' section")
            cid = int(m.group(1))
            if cid in seen:
                raise fail(lineno, f"duplicate case id {cid} (first on line {seen[cid]})")
            seen[cid] = lineno
            current = {
                "id": cid,
                "title": m.group(2),
                "database": database,
                "level": level,
                "question": None,
                "sql": [],
                "line": lineno,
            }
            continue
        if line[0] in " \t":
            if current is None:
                raise fail(lineno, "indented line outside a case")
            if stripped.startswith(Q_PREFIX):
                if current["question"] is not None:
                    raise fail(lineno, f"case {current['id']}: second '{Q_PREFIX}' line")
                if current["sql"]:
                    raise fail(
                        lineno,
                        f"case {current['id']}: '{Q_PREFIX}' must come before '{SQL_PREFIX}'",
                    )
                q = stripped[len(Q_PREFIX) :].strip()
                if not q:
                    raise fail(lineno, f"case {current['id']}: empty question")
                current["question"] = q
            elif stripped.startswith(SQL_PREFIX):
                if current["sql"]:
                    raise fail(lineno, f"case {current['id']}: second '{SQL_PREFIX}' line")
                if current["question"] is None:
                    raise fail(lineno, f"case {current['id']}: '{SQL_PREFIX}' before '{Q_PREFIX}'")
                s = stripped[len(SQL_PREFIX) :].strip()
                if not s:
                    raise fail(
                        lineno,
                        f"case {current['id']}: the SQL must start on the '{SQL_PREFIX}' line",
                    )
                current["sql"].append(s)
            elif current["sql"]:
                current["sql"].append(stripped)  # continuation of the SQL
            else:
                hint = ""
                if stripped.startswith(("自然语言", "期望")):
                    hint = (
                        f" (use exactly '{Q_PREFIX}' and '{SQL_PREFIX}' with the full-width colon)"
                    )
                raise fail(lineno, f"case {current['id']}: unexpected line{hint}")
            continue
        # prose between cases
        finish()
    if fence is not None:
        raise fail(fence, "unclosed ``` code fence")
    finish()
    return cases


def load_test_queries(path: str | Path) -> list[QueryCase]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise QueryFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_test_queries(text, source=str(p))


def select_cases(
    cases: list[QueryCase], databases: list[str] | None = None, levels: list[str] | None = None
) -> list[QueryCase]:
    """Filter by database names and level names (case-insensitive); unknown levels raise."""
    if levels:
        wanted = {lv.lower() for lv in levels}
        bad = wanted - set(LEVELS)
        if bad:
            raise QueryFileError(f"unknown level {sorted(bad)[0]!r}: use {', '.join(LEVELS)}")
        cases = [c for c in cases if c.level in wanted]
    if databases:
        cases = [c for c in cases if c.database in set(databases)]
    return cases
