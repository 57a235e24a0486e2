"""Stage 2, statements: exactly one, and its first keyword a query's.

PostgreSQL's splitting (``lexer.statement_starts``) must find one statement, under the
standard reading of strings and, when a plain string holds a backslash, under the
standard_conforming_strings-off reading too. The first keyword must be SELECT / WITH /
VALUES / TABLE / EXPLAIN / ``(``; anything else is NOT_READ_ONLY before any parsing (so
sqlglot's Command fallbacks for SAVEPOINT, LISTEN, DISCARD ... never matter). EXPLAIN's
option list is read here (sqlglot turns EXPLAIN into an opaque Command): ANALYZE is refused,
and the inner query is what gets parsed.
"""

from __future__ import annotations

from typing import NamedTuple, NoReturn

from pg_mcp.core.validation.lexer import WORD_RX, Lex, LexError, Tokens, iter_lex, statement_starts
from pg_mcp.core.validation.text import fragment
from pg_mcp.core.validation.verdict import ALLOWED, refuse

QUERY_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_STATEMENT_WORDS = frozenset(
    [
        "ABORT",
        "ALTER",
        "ANALYZE",
        "ANALYSE",
        "BEGIN",
        "CALL",
        "CHECKPOINT",
        "CLOSE",
        "CLUSTER",
        "COMMENT",
        "COMMIT",
        "COPY",
        "CREATE",
        "DEALLOCATE",
        "DECLARE",
        "DELETE",
        "DISCARD",
        "DO",
        "DROP",
        "END",
        "EXECUTE",
        "EXPLAIN",
        "FETCH",
        "GRANT",
        "IMPORT",
        "INSERT",
        "LISTEN",
        "LOAD",
        "LOCK",
        "MERGE",
        "MOVE",
        "NOTIFY",
        "PREPARE",
        "REASSIGN",
        "REFRESH",
        "REINDEX",
        "RELEASE",
        "RESET",
        "REVOKE",
        "ROLLBACK",
        "SAVEPOINT",
        "SECURITY",
        "SET",
        "SHOW",
        "START",
        "TRUNCATE",
        "UNLISTEN",
        "UPDATE",
        "VACUUM",
    ]
)
_TWO_WORD = frozenset(
    {
        "CREATE",
        "ALTER",
        "DROP",
        "SET",
        "RESET",
        "SECURITY",
        "IMPORT",
        "REFRESH",
        "START",
        "COMMENT",
        "PREPARE",
        "REASSIGN",
    }
)
_THIRD_WORD = frozenset(
    {
        "OR",
        "MATERIALIZED",
        "FOREIGN",
        "SESSION",
        "LOCAL",
        "UNIQUE",
        "TEMP",
        "TEMPORARY",
        "UNLOGGED",
        "GLOBAL",
        "DEFAULT",
        "TRANSACTION",
    }
)
_TXN_WORDS = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"}
)
_SESSION_WORDS = frozenset({"SET", "RESET", "SHOW", "DISCARD"})


class Statement(NamedTuple):
    start: int  # offset where the query sqlglot parses starts (after EXPLAIN and its options)
    kind: str  # select | values | table | explain


def one_statement(sql: str) -> Statement:
    """The one statement of ``sql`` and where its query starts, or a refusal."""
    try:
        starts, backslash = statement_starts(sql)
    except LexError as e:
        refuse(
            "PARSE_ERROR",
            f"syntax error: {e} (starting at: {fragment(sql[e.position :])})",
            position=e.position + 1,
        )
    if not starts:
        refuse("EMPTY", f"no SQL statement found (only whitespace or comments); {ALLOWED}")
    if len(starts) > 1:
        multiple(sql, len(starts), starts[1])
    if backslash:
        _backslash_reading(sql)
    first = starts[0]
    if "&" in sql and '"' in sql:
        stmt = Tokens(iter_lex(sql, first))
        _unicode_identifiers(sql, stmt)
        return _first_keyword(sql, stmt)
    plain = _plain_first_keyword(sql, first)
    return plain if plain is not None else _first_keyword(sql, Tokens(iter_lex(sql, first)))


def multiple(sql: str, count: int, second_start: int) -> NoReturn:
    refuse(
        "MULTIPLE_STATEMENTS",
        f"found {count} statements; {ALLOWED} (one trailing semicolon is fine); "
        f"the second one starts with: {fragment(sql[second_start:])}",
        hint="send a single statement, without anything after its semicolon",
        position=second_start + 1,
    )


def _backslash_reading(sql: str) -> None:
    """With standard_conforming_strings off, '\\'' would quote differently: the text
    must be one statement under that reading as well."""
    try:
        other, _ = statement_starts(sql, backslash_strings=True)
    except LexError:
        return  # not even valid under that reading: nothing can be smuggled through it
    if len(other) > 1:
        refuse(
            "MULTIPLE_STATEMENTS",
            "the text reads as several statements if backslashes escape quotes in strings "
            f"(standard_conforming_strings off); {ALLOWED}",
            hint="avoid backslashes before quotes in '...' strings, or use E'...' or dollar quoting",
            position=other[1] + 1,
        )


def _unicode_identifiers(sql: str, stmt: Tokens) -> None:
    i = 0
    while (c := stmt.get(i + 2)) is not None:
        a, b = stmt.get(i), stmt.get(i + 1)
        assert a is not None and b is not None
        if (
            a.kind == "word"
            and sql[a.start : a.end] in ("U", "u")
            and sql[b.start : b.end] == "&"
            and c.kind == "qid"
            and a.end == b.start
            and b.end == c.start
        ):
            refuse(
                "PARSE_ERROR",
                f'Unicode-escaped identifiers (U&"...") are not supported: {fragment(sql[a.start : c.end])}',
                hint="write the name plainly, or as an ordinary quoted identifier",
                position=a.start + 1,
            )
        i += 1


def _word(sql: str, t: Lex | None) -> str:
    return sql[t.start : t.end].upper() if t is not None and t.kind == "word" else ""


def _text_of(sql: str, t: Lex | None) -> str:
    return sql[t.start : t.end] if t is not None else ""


def _plain_first_keyword(sql: str, first: int) -> Statement | None:
    """_first_keyword for the usual case, a statement that starts with the word SELECT,
    WITH, TABLE or VALUES (iter_lex reads a word there exactly so); None otherwise."""
    m = WORD_RX.match(sql, first)
    if m is None:
        return None
    word = m.group().upper()
    if word == "SELECT" or word == "WITH":
        return Statement(first, "select")
    if word == "TABLE" or word == "VALUES":
        return Statement(first, word.lower())
    return None


def _first_keyword(sql: str, stmt: Tokens) -> Statement:
    """Check the statement's leading keyword(s)."""
    i = 0
    while _text_of(sql, stmt.get(i)) == "(":
        i += 1
    first = stmt.get(i)
    if first is None:
        _syntax_error(sql, stmt.get(0))
    word = _word(sql, first)
    if word == "EXPLAIN" and i == 0:
        j = _explain_options(sql, stmt, 1)
        inner_tok = stmt.get(j)
        if inner_tok is None:
            refuse("PARSE_ERROR", "EXPLAIN needs a query to explain", position=first.start + 1)
        if _word(sql, inner_tok) in QUERY_STARTS or _text_of(sql, inner_tok) == "(":
            return Statement(inner_tok.start, "explain")
        _not_read_only(sql, stmt, j, explained=True)
    if word in QUERY_STARTS:
        kind = "select"
        if word == "TABLE" and i == 0:
            kind = "table"
        elif word == "VALUES" and i == 0:
            kind = "values"
        return Statement(stmt.get(0).start, kind)  # type: ignore[union-attr]
    if word in _STATEMENT_WORDS:
        _not_read_only(sql, stmt, i)
    _syntax_error(sql, first)


def _syntax_error(sql: str, t: Lex | None) -> NoReturn:
    near = fragment(_text_of(sql, t), 40)
    refuse(
        "PARSE_ERROR",
        f"syntax error at or near {near!r}; {ALLOWED}",
        position=t.start + 1 if t is not None else None,
    )


def _statement_name(sql: str, stmt: Tokens, i: int) -> str:
    words = [_word(sql, stmt.get(i + k)) for k in range(3)]
    name = [words[0]]
    if words[0] in _TWO_WORD and words[1]:
        name.append(words[1])
        if words[1] in _THIRD_WORD and words[2]:
            name.append(words[2])
    return " ".join(name)


def _not_read_only(sql: str, stmt: Tokens, i: int, *, explained: bool = False) -> NoReturn:
    name = _statement_name(sql, stmt, i)
    first = name.split()[0] if name else ""
    if first in _TXN_WORDS or name.startswith("PREPARE TRANSACTION"):
        hint = "pg-mcp runs every query in its own read-only transaction: send the query alone"
    elif first in _SESSION_WORDS:
        hint = "pg-mcp manages the session itself; to read a setting use SELECT current_setting('name')"
    elif name.startswith(("CREATE TABLE", "CREATE MATERIALIZED", "CREATE TEMP", "CREATE UNLOGGED")):
        hint = "to get the rows back, send only the SELECT part"
    elif explained:
        hint = "EXPLAIN is only allowed for a query (SELECT, WITH ... SELECT, VALUES, TABLE)"
    else:
        hint = "pg-mcp only reads data: rewrite the request as a SELECT"
    what = f"EXPLAIN of {name}" if explained else name
    at = stmt.get(i)
    start = at.start if at is not None else 0
    refuse(
        "NOT_READ_ONLY",
        f"{what} is not a read-only query; {ALLOWED}: {fragment(sql[start:])}",
        hint=hint,
        position=start + 1,
    )


def _explain_options(sql: str, stmt: Tokens, j: int) -> int:
    """Read EXPLAIN's options from token j; refuse ANALYZE; return the inner query's index."""
    if _text_of(sql, stmt.get(j)) == "(":
        opened = stmt.get(j)
        depth, k = 1, j + 1
        entry: list[Lex] = []
        entries: list[list[Lex]] = []
        while depth and (t := stmt.get(k)) is not None:
            tk = _text_of(sql, t)
            if tk == "(":
                depth += 1
            elif tk == ")":
                depth -= 1
                if depth == 0:
                    entries.append(entry)
                    k += 1
                    break
            if depth == 1 and tk == ",":
                entries.append(entry)
                entry = []
            else:
                entry.append(t)
            k += 1
        if depth:
            refuse(
                "PARSE_ERROR",
                "unbalanced parentheses in EXPLAIN's option list",
                position=opened.start + 1 if opened else None,
            )
        for e in entries:
            if (
                e
                and _option_text(sql, e[0]) in ("analyze", "analyse")
                and not _false_option(sql, e[1:])
            ):
                _explain_analyze(sql, stmt)
        j = k
    while _word(sql, stmt.get(j)) in ("ANALYZE", "ANALYSE", "VERBOSE"):
        if _word(sql, stmt.get(j)) in ("ANALYZE", "ANALYSE"):
            _explain_analyze(sql, stmt)
        j += 1
    return j


def _option_text(sql: str, t: Lex) -> str:
    raw = sql[t.start : t.end]
    if t.kind == "qid":
        raw = raw[1:-1].replace('""', '"')
    elif t.kind in ("str", "estr"):
        raw = raw[raw.index("'") + 1 : -1].replace("''", "'")
    return raw.lower()


def _false_option(sql: str, value: list[Lex]) -> bool:
    """Whether an EXPLAIN option value is exactly false/off/0 (anything else counts as on)."""
    return len(value) == 1 and _option_text(sql, value[0]) in ("false", "off", "0")


def _explain_analyze(sql: str, stmt: Tokens) -> NoReturn:
    first = stmt.get(0)
    start = first.start if first is not None else 0
    refuse(
        "EXPLAIN_ANALYZE",
        "EXPLAIN ANALYZE executes the statement; only EXPLAIN without ANALYZE is allowed: "
        f"{fragment(sql[start:])}",
        hint="use plain EXPLAIN (estimated plan), or EXPLAIN (ANALYZE false, ...)",
        position=start + 1,
    )
