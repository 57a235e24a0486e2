"""A lexer that follows PostgreSQL's own rules, for statement splitting and keywords.

Standard strings, E'' escapes, dollar quoting with identifier-like tags, quoted identifiers,
nested block comments, ``$`` inside identifiers. It is a second opinion next to sqlglot's
tokenizer (``parse.py``). ``backslash_strings`` reads '...' as if standard_conforming_strings
were off.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple


class Lex(NamedTuple):
    kind: str  # word qid str estr dollar param num semi punct
    start: int
    end: int  # exclusive


class LexError(Exception):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position


_WS = " \t\n\r\f\v"
_NON_ASCII = "\x80-\U0010ffff"
_W = "A-Za-z_" + _NON_ASCII  # identifier start (every non-ASCII character counts, as in PostgreSQL)
_DOLLAR = rf"\$(?:[{_W}][0-9{_W}]*)?\$"
_STD_STR = r"'(?:[^']++|'')*+'"
_ESC_STR = r"'(?:[^'\\]++|\\.|'')*+'"

# One token at a time (used for the first keywords, EXPLAIN's options, U& checks).
_LEX_RX = re.compile(
    rf"""
    (?P<ws>[{_WS}]+)
  | (?P<line>--[^\n\r]*)
  | (?P<block>/\*)
  | (?P<estr>[eE]')
  | (?P<str>')
  | (?P<qid>")
  | (?P<dollar>{_DOLLAR})
  | (?P<param>\$[0-9]+)
  | (?P<word>[{_W}][0-9${_W}]*)
  | (?P<num>[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?)
  | (?P<semi>;)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
WORD_RX = re.compile(rf"[{_W}][0-9${_W}]*")  # iter_lex's word, where no other token starts
_STD_BODY = re.compile(r"(?:[^']++|'')*+'", re.DOTALL)
_ESC_BODY = re.compile(r"(?:[^'\\]++|\\.|'')*+'", re.DOTALL)
_QID_BODY = re.compile(r'(?:[^"]++|"")*+"', re.DOTALL)
_COMMENT_MARK = re.compile(r"/\*|\*/")


def _block_end(sql: str, pos: int) -> int:
    """End of the (nested) block comment starting at pos."""
    depth, i = 1, pos + 2
    while depth:
        c = _COMMENT_MARK.search(sql, i)
        if c is None:
            raise LexError(pos, "unterminated /* comment")
        depth += 1 if c.group() == "/*" else -1
        i = c.end()
    return i


def iter_lex(sql: str, pos: int = 0, *, backslash_strings: bool = False) -> Iterator[Lex]:
    """Tokens of ``sql`` from ``pos`` as PostgreSQL's scanner splits them (whitespace and
    comments dropped). ``backslash_strings`` reads '...' as if standard_conforming_strings
    were off. Raises LexError on unterminated input."""
    n = len(sql)
    match = _LEX_RX.match
    while pos < n:
        m = match(sql, pos)
        if m is None:  # cannot happen (punct matches any character), but stay total
            raise LexError(pos, "unexpected character")
        kind = m.lastgroup or "punct"
        end = m.end()
        if kind == "ws" or kind == "line":
            pass
        elif kind == "block":
            end = _block_end(sql, pos)
        elif kind == "str" or kind == "estr":
            body = _ESC_BODY if (kind == "estr" or backslash_strings) else _STD_BODY
            b = body.match(sql, end)
            if b is None:
                raise LexError(pos, "unterminated quoted string")
            end = b.end()
            yield Lex("estr" if body is _ESC_BODY else "str", pos, end)
        elif kind == "qid":
            b = _QID_BODY.match(sql, end)
            if b is None:
                raise LexError(pos, "unterminated quoted identifier")
            end = b.end()
            yield Lex(kind, pos, end)
        elif kind == "dollar":
            close = sql.find(m.group(), end)
            if close < 0:
                raise LexError(pos, "unterminated dollar-quoted string")
            end = close + len(m.group())
            yield Lex(kind, pos, end)
        else:
            yield Lex(kind, pos, end)
        pos = end


def pg_lex(sql: str, *, backslash_strings: bool = False) -> list[Lex]:
    return list(iter_lex(sql, backslash_strings=backslash_strings))


def _scanner(string: str) -> re.Pattern[str]:
    # Runs of "plain" text (words with their $, digits, whitespace, operators) are consumed in
    # one match; only quotes, comments, dollar quotes and semicolons stop a run. Kept exactly in
    # step with iter_lex (tests compare the two on random input).
    return re.compile(
        rf"""
        (?P<plain>(?:
            [A-DF-Za-df-z_][0-9$A-Za-z_]*+
          | [ \n]++
          | (?:[0-9][0-9_]*+(?:\.[0-9_]*+)?+|\.[0-9][0-9_]*+)(?:[eE][+-]?[0-9]++)?+
          | [(),.=<>*+:@|&~!%^#?\[\]{{}}]++
          | [eE](?!')[0-9${_W}]*+
          | [A-DF-Za-df-z_{_NON_ASCII}][0-9${_W}]*+
          | [{_WS}]++
          | \$[0-9]++
          | \$(?!(?:[{_W}][0-9{_W}]*)?\$)
          | /(?!\*) | -(?!-)
          | [^'"$;/\-0-9{_W}{_WS}]++
        )++)
      | (?P<line>--[^\n\r]*)
      | (?P<block>/\*)
      | (?P<estr>[eE]{_ESC_STR})
      | (?P<str>{string})
      | (?P<qid>"(?:[^"]++|"")*+")
      | (?P<dollar>{_DOLLAR})
      | (?P<semi>;)
      | (?P<bad>['"eE])
        """,
        re.VERBOSE | re.DOTALL,
    )


_SCAN_STD = _scanner(_STD_STR)
_SCAN_BACKSLASH = _scanner(_ESC_STR)


def statement_starts(sql: str, *, backslash_strings: bool = False) -> tuple[list[int], bool]:
    """Start offsets of the non-empty statements in ``sql`` (PostgreSQL's splitting), and
    whether a standard '...' string holds a backslash. Raises LexError."""
    rx = _SCAN_BACKSLASH if backslash_strings else _SCAN_STD
    match = rx.match
    starts: list[int] = []
    in_stmt = False
    backslash = False
    pos, n = 0, len(sql)
    while pos < n:
        m = match(sql, pos)
        if m is None:
            raise LexError(pos, "unexpected character")
        kind = m.lastgroup
        end = m.end()
        if kind == "plain":
            if not in_stmt:
                text = m.group()
                lead = len(text) - len(text.lstrip(_WS))
                if lead < len(text):
                    starts.append(pos + lead)
                    in_stmt = True
        elif kind == "semi":
            in_stmt = False
        elif kind == "line":
            pass
        elif kind == "block":
            end = _block_end(sql, pos)
        elif kind == "bad":
            what = {"'": "quoted string", '"': "quoted identifier"}.get(sql[pos], "quoted string")
            raise LexError(pos, f"unterminated {what}")
        else:
            if kind == "dollar":
                close = sql.find(m.group(), end)
                if close < 0:
                    raise LexError(pos, "unterminated dollar-quoted string")
                end = close + len(m.group())
            elif kind == "str" and not backslash and "\\" in m.group():
                backslash = True
            if not in_stmt:
                starts.append(pos)
                in_stmt = True
        pos = end
    return starts, backslash


def split_statements(tokens: list[Lex]) -> list[list[Lex]]:
    """Non-empty statements (lists of tokens), split at semicolons."""
    stmts: list[list[Lex]] = []
    cur: list[Lex] = []
    for t in tokens:
        if t.kind == "semi":
            if cur:
                stmts.append(cur)
                cur = []
        else:
            cur.append(t)
    if cur:
        stmts.append(cur)
    return stmts


class Tokens:
    """The tokens of one statement, lexed only as far as they are looked at."""

    __slots__ = ("_buf", "_done", "_it")

    def __init__(self, it: Iterator[Lex]) -> None:
        self._it = it
        self._buf: list[Lex] = []
        self._done = False

    def get(self, i: int) -> Lex | None:
        buf = self._buf
        while len(buf) <= i and not self._done:
            t = next(self._it, None)
            if t is None or t.kind == "semi":
                self._done = True
            else:
                buf.append(t)
        return buf[i] if i < len(buf) else None


def keyword_position(
    sql: str, base: int, word: str, require_next: tuple[str, ...] = ()
) -> int | None:
    """1-based position of the first keyword ``word`` from offset ``base`` (followed by one of
    ``require_next`` when given), or None."""
    toks = iter_lex(sql, base)  # lazily: the keyword is usually near the start
    try:
        t = next(toks, None)
        while t is not None:
            nxt = next(toks, None)
            if (
                t.kind == "word"
                and sql[t.start : t.end].upper() == word
                and (
                    not require_next
                    or (nxt is not None and sql[nxt.start : nxt.end].upper() in require_next)
                )
            ):
                return t.start + 1
            t = nxt
    except LexError:
        pass
    return None
