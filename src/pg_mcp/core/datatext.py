"""Text from the database written as data: quoted, on one line, Markdown-inert, capped (pure).

Whoever can ``COMMENT ON`` a table or insert a row writes text that pg-mcp shows to people
and to models: the references, ``pg-mcp describe``, ask's prompts. Written raw, such text can
pass for an instruction or for Markdown structure (a heading, a code fence, a link, an HTML
tag, a table row). Every output that carries it therefore writes it in one of two quoted
forms, so it always reads as a value:

* ``quote_text`` (prose: comments): a JSON string literal on one line. Runs of whitespace
  (newlines included) collapse to one space, the text is cut at a cap, and ``"``, ``\\``,
  control and format characters and the Markdown-active characters (`` ` | < `` and the
  ``]`` of a link's ``](``) are written as escapes (``\\"``, ``\\\\``, ``\\u0060``, ...).
  ``json.loads`` gives the (cut) text back, character for character.
* ``sql_literal`` (values: samples, enum labels, ``describe --column`` values): a PostgreSQL
  string literal the reader can paste into a query: ``'paid'`` when the value is plain, else
  an ``E'...'`` literal whose escapes (``\\n``, ``\\u0060``, ...) PostgreSQL reads back as the
  same value.

A line can then never start with database text (it always follows an opening quote), so a
planted ``## heading`` or a fence cannot take effect; and no backtick, pipe, ``<`` or ``](``
survives to open a code span, a table cell, a tag or a link.
"""

from __future__ import annotations

import json
import re
from typing import Any

COMMENT_CAP = 200  # characters of a comment shown (the rest is cut, marked with "…")
SAMPLE_CAP = 60  # characters of a sample value (introspection cuts them at this length)
VALUE_CAP = 200  # characters of a value listed by `describe --column`
CELL_CAP = 120  # characters of a result cell sent to ask's judge

ELLIPSIS = "…"

# What makes Markdown structure in the middle of a line: a code span, a table cell, an HTML
# tag or autolink (they open with "<"), and the "](" / "][" that close a link's text. A bare
# "[x]" links nothing without a definition; ">" quotes, "#" headings, fences, lists and link
# definitions all need to start a line, which database text never does; "->" stays readable.
MARKDOWN_ACTIVE = "`|<"
_MARKDOWN = re.compile(r"[`|<]|\](?=[(\[])")
_JSON_SPECIAL = re.compile(r'["\\`|<]|\](?=[(\[])')
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\"}
_JSON_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_SQL_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _active(s: str, i: int) -> bool:
    """Is ``s[i]`` a character that must be escaped to keep ``s`` Markdown-inert?"""
    ch = s[i]
    return (
        ch in MARKDOWN_ACTIVE
        or (ch == "]" and s[i + 1 : i + 2] in ("(", "["))
        or not ch.isprintable()
    )


def one_line(text: str | None) -> str:
    """Runs of whitespace (newlines, tabs, Unicode spaces) as one space, no leading/trailing."""
    if not text:
        return ""
    if text.isprintable() and "  " not in text and text[0] != " " and text[-1] != " ":
        return text  # the common case, checked in C
    return " ".join(text.split())


def cap(text: str, limit: int | None) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


def plain(text: str | None, limit: int | None = COMMENT_CAP) -> str | None:
    """One line, capped, unquoted: for JSON outputs, whose encoder does the quoting."""
    if text is None:
        return None
    return cap(one_line(text), limit)


def _u(ch: str, *, big: str | None = None) -> str:
    """``\\uXXXX`` for one character (a surrogate pair, or ``big`` % code point, above U+FFFF)."""
    cp = ord(ch)
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    if big is not None:
        return big % cp
    cp -= 0x10000
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"


def json_string(s: str) -> str:
    """``s`` as a JSON string literal that is one Markdown-inert line (``json.loads`` gives
    ``s`` back): line breaks and the Markdown-active characters are escaped too."""
    if _JSON_SPECIAL.search(s) or not s.isprintable():
        s = "".join(
            _JSON_ESCAPES.get(ch) or _JSON_CONTROL.get(ch) or (_u(ch) if _active(s, i) else ch)
            for i, ch in enumerate(s)
        )
    return '"' + s + '"'


def quote_text(text: str | None, limit: int | None = COMMENT_CAP) -> str:
    """Prose from the database as a one-line, capped, Markdown-inert JSON string literal."""
    return json_string(cap(one_line(text), limit))


def json_value(value: Any) -> str:
    """One value as JSON: strings through ``json_string``, anything else as ``json.dumps``."""
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(json_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{json_string(str(k))}: {json_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return json.dumps(value, default=str)


# Outside its strings a JSON document never holds these (nor "](" or "]["): escaping them
# everywhere is lossless.
_INERT_JSON = str.maketrans({"`": "\\u0060", "|": "\\u007c", "<": "\\u003c"})


def inert_dumps(data: Any) -> str:
    """``json.dumps`` on one line whose strings are Markdown-inert (backticks, pipes, ``<`` and
    a link's ``](`` written as ``\\u`` escapes: ``json.loads`` gives the same
    data back)."""
    text = json.dumps(data, ensure_ascii=False, default=str).translate(_INERT_JSON)
    return text.replace("](", "\\u005d(").replace("][", "\\u005d[")


def sql_literal(value: Any, limit: int | None = SAMPLE_CAP) -> str:
    """A value from the database as a PostgreSQL string literal that is one Markdown-inert line.

    Plain values stay ``'as they are'`` (quotes doubled); a value holding a line break,
    another control or format character or a Markdown-active character becomes an
    ``E'...'`` literal with backslash escapes, which PostgreSQL reads as the same value."""
    s = cap(str(value), limit)
    if s.isprintable() and not _MARKDOWN.search(s):
        return "'" + s.replace("'", "''") + "'"
    out = []
    for i, ch in enumerate(s):
        esc = _SQL_ESCAPES.get(ch)
        if esc is None and _active(s, i):
            esc = _u(ch, big="\\U%08x")
        out.append(esc or ch)
    return "E'" + "".join(out) + "'"


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier on one Markdown-inert line: ``U&"..."`` with
    ``\\XXXX`` escapes when it holds a control, format or Markdown-active character."""
    if name.isprintable() and not _MARKDOWN.search(name):
        return '"' + name.replace('"', '""') + '"'
    out = []
    for i, ch in enumerate(name):
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('""')
        elif _active(name, i):
            cp = ord(ch)
            out.append(f"\\{cp:04x}" if cp <= 0xFFFF else f"\\+{cp:06x}")
        else:
            out.append(ch)
    return 'U&"' + "".join(out) + '"'


def json_cell(value: Any, limit: int = CELL_CAP) -> Any:
    """A result cell for a prompt: strings and nested values cut to ``limit`` characters
    (the caller JSON-encodes the row, which quotes and escapes them)."""
    if isinstance(value, str):
        return cap(value, limit)
    if isinstance(value, list | dict):
        return cap(json.dumps(value, ensure_ascii=False, default=str), limit)
    return value
