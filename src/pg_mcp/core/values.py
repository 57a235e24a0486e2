"""JSON-safe values: every common PostgreSQL type as something ``json.dumps`` accepts, exactly.

Decisions (stable; clients rely on them):

One JSON type per column: every value of a column has the same JSON type (or is null),
whatever the values, so a client can type a column once.

- **integers** (int2/int4/int8/oid, serial): always JSON numbers, written exactly (``2**63 - 1`` too:
  a JavaScript ``JSON.parse`` rounds integers beyond ``2**53``; parse with a big-integer reader
  if your int8 values go that high).
- **numeric / decimal** (also integral ones, ``count(*)::numeric``, ``avg()``, ``round()``):
  always JSON strings, PostgreSQL's exact text (``"1.50"``, ``"0.33333333333333333333"``,
  ``"5"``, ``"NaN"``, ``"Infinity"``): no digit and no trailing zero (scale) is lost; a client
  that wants numbers converts the column.
- **float4/float8**: JSON numbers; ``NaN``, ``Infinity`` and ``-Infinity`` (no JSON number
  holds them) become null: that much is lost.
- **date / timestamp / timestamptz / time / timetz**: ISO 8601 (``2024-01-02``,
  ``2024-01-02T03:04:05.5+00:00``). Values Python cannot hold (``infinity``, ``-infinity``,
  years after 9999 or BC) come back as PostgreSQL prints them (``"infinity"``, ``"0044-03-15 BC"``).
- **interval**: an ISO 8601 duration computed exactly from PostgreSQL's text
  (``1 year 2 mons 3 days 04:05:06.5`` -> ``P1Y2M3DT4H5M6.5S``; months are never turned into days).
  Negative parts carry their own sign, as PostgreSQL's ``iso_8601`` IntervalStyle prints them.
- **bytea**: PostgreSQL's hex text, ``"\\xdeadbeef"`` (can be pasted back into SQL).
- **uuid, inet, cidr, macaddr, money, tsvector, xml, geometric, bit, pg_lsn, enums**: their text.
- **arrays**: (nested) JSON arrays of the element rule; **json/jsonb**: the JSON value itself
  (its numbers stay numbers when a float holds them exactly, else they become their decimal text);
  **records / composites**: a JSON array of the fields (anonymous records) or the composite's text.
- **ranges**: ``{"lower": .., "upper": .., "bounds": "[)"}`` (bounds ``None`` = unbounded) or
  ``{"empty": true}``; **multiranges**: a JSON array of ranges.
- anything else: ``str(value)``.

``register_loaders(conn)`` installs the loaders that make the above possible (infinity-safe
dates, exact intervals, exact JSON numbers, numerics loaded straight to their JSON value) on a
psycopg connection or adapters context; ``register_loaders(conn, tolerant=False)`` keeps
psycopg's own (C) date/time loaders, which raise on the values Python cannot hold: the caller
loads such a result again with tolerant loaders (pg_mcp.db.executor does).

``rows_jsonable`` converts a batch of rows: one type lookup per value (``_FAST``), the
``to_jsonable`` chain only for the rarer types.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

MAX_SAFE_INT = 2**53

_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _int(value: int) -> int:
    return value  # always a number, written exactly (see the module docstring)


def _float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _decimal(value: Decimal) -> str:
    """A numeric as its exact decimal text (``1.50``, ``NaN``): numeric columns are strings."""
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    return format(value, "f")


def numeric_from_text(text: str) -> str:
    """PostgreSQL's text of a numeric (``-12.50``, ``NaN``, ``Infinity``) is its JSON value:
    already exact, in plain positional notation."""
    return text


def _json_decimal(value: Decimal) -> int | float | str:
    """A number inside a json/jsonb document: a float when one holds it exactly, else text."""
    if value.is_nan() or value.is_infinite():
        return _decimal(value)
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if math.isfinite(as_float) and Decimal(repr(as_float)) == value:
        return as_float
    return format(value, "f")


def json_number(text: str) -> int | float | str:
    """A JSON document's number text as ``_json_decimal`` would give it, mostly without
    building a Decimal (the ``parse_float`` of the json/jsonb loader)."""
    if text[-1:].isdigit():
        if "." not in text:
            return _int(int(text))
        if len(text) <= 16:  # at most 15 digits: the nearest float's shortest text is this value
            as_float = float(text)
            return int(as_float) if as_float.is_integer() else as_float
        trimmed = text.rstrip("0")
        if trimmed[-1] == ".":
            return _int(int(trimmed[:-1]))
        as_float = float(trimmed)
        if repr(as_float) == trimmed:
            return as_float
    return _json_decimal(Decimal(text))


def duration_from_timedelta(value: dt.timedelta) -> str:
    """ISO 8601 duration of a timedelta (days and seconds; a timedelta has no months)."""
    days, seconds, micros = value.days, value.seconds, value.microseconds  # seconds, micros >= 0
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = _trim(f"{secs}.{micros:06d}") if micros else (str(secs) if secs else "")
    return _iso(0, 0, days, hours, minutes, sec_text)


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def _iso(years: int, months: int, days: int, hours: int, minutes: int, seconds: str) -> str:
    date = "".join(f"{v}{u}" for v, u in ((years, "Y"), (months, "M"), (days, "D")) if v)
    time = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M")) if v)
    if seconds and seconds not in ("0", "-0"):
        time += f"{seconds}S"
    if not date and not time:
        return "PT0S"
    return "P" + date + ("T" + time if time else "")


_INTERVAL_PART = re.compile(r"([+-]?\d+) (year|years|mon|mons|day|days)\b")
_INTERVAL_TIME = re.compile(r"([+-])?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def iso_duration(text: str) -> str:
    """Convert PostgreSQL's ``postgres`` IntervalStyle text to an ISO 8601 duration, exactly.

    Text in another style (or anything unexpected) is returned unchanged.
    """
    text = text.strip()
    if text.startswith(("P", "-P")):
        return text  # already iso_8601
    fields = {"year": 0, "mon": 0, "day": 0}
    rest = text
    for m in _INTERVAL_PART.finditer(text):
        fields[m.group(2).rstrip("s")] = int(m.group(1))
        rest = rest.replace(m.group(0), "", 1)
    rest = rest.strip()
    hours = minutes = 0
    seconds = ""
    if rest:
        t = _INTERVAL_TIME.fullmatch(rest)
        if t is None:
            return text
        sign = -1 if t.group(1) == "-" else 1
        hours, minutes = sign * int(t.group(2)), sign * int(t.group(3))
        secs = _trim(t.group(4).lstrip("0") or "0")
        if secs.startswith("."):
            secs = "0" + secs
        seconds = ("-" + secs) if sign < 0 and secs != "0" else secs
    return _iso(fields["year"], fields["mon"], fields["day"], hours, minutes, seconds)


def _range(value: Any) -> dict[str, Any]:
    if value.isempty:
        return {"empty": True}
    return {
        "lower": to_jsonable(value.lower),
        "upper": to_jsonable(value.upper),
        "bounds": value.bounds,
    }


# Exact type -> conversion, for the common types (None: the value is JSON-safe as it is).
# Subclasses (and every other type) go through to_jsonable's isinstance chain.
_FAST: dict[type, Any] = {
    str: None,
    type(None): None,
    bool: None,
    int: _int,
    float: _float,
    Decimal: _decimal,
    dt.datetime: dt.datetime.isoformat,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
}
NoneType = type(None)


def to_jsonable(value: Any) -> Any:
    """One value as a JSON-safe Python object (see the module docstring for the rules)."""
    kind = type(value)
    if kind in _FAST:
        convert = _FAST[kind]
        return value if convert is None else convert(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return duration_from_timedelta(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        full = value.network.max_prefixlen == value.network.prefixlen
        return str(value.ip) if full else str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    kind = type(value).__name__
    if kind == "Range" and hasattr(value, "isempty"):
        return _range(value)
    if kind == "Multirange":
        return [_range(r) for r in value]
    return str(value)


def row_jsonable(
    row: tuple[Any, ...] | list[Any], arrays: Mapping[int, str] | None = None
) -> list[Any]:
    """A row as a list of JSON-safe values.

    ``arrays`` maps column index -> element delimiter for array columns: an array psycopg has no
    loader for (arrays of enums, composites, ...) arrives as PostgreSQL's literal and is parsed
    here into nested lists of element texts.
    """
    return rows_jsonable((row,), arrays)[0]


# Type OIDs whose values, as loaded by register_loaders' loaders (text format), are JSON-safe
# already: bool, "char", name, int2, int4, text, oid, bpchar, varchar, interval (an ISO
# duration), numeric (loaded straight to its JSON value).
JSON_SAFE_OIDS = frozenset((16, 18, 19, 21, 23, 25, 26, 1042, 1043, 1186, 1700))

# Types a result column is best loaded as text for (psycopg's C text loader) and converted from
# its text straight to the JSON value: type OID -> converter (of a non-NULL text).
TEXT_CONVERTERS: dict[int, Callable[[str], Any]] = {1700: numeric_from_text}


def rows_jsonable(
    rows: Sequence[tuple[Any, ...] | list[Any]],
    arrays: Mapping[int, str] | None = None,
    safe: Collection[int] = (),
    converters: Mapping[int, Callable[[str], Any]] | None = None,
) -> list[list[Any]]:
    """``row_jsonable`` of each row: the hot path of every result, so it works column by
    column, mostly in C (``zip``, ``map``): a column whose values are all of one common type
    (NULLs aside) is converted by one function (``_FAST``), a mixed one value by value.

    ``safe``: indexes of columns whose values are JSON-safe as loaded (see JSON_SAFE_OIDS),
    left as they are. ``converters``: column index -> converter of the column's non-NULL
    values, which were loaded as text (see TEXT_CONVERTERS)."""
    if not rows:
        return []
    columns: list[Any] = list(zip(*rows, strict=True))
    for i, column in enumerate(columns):
        if converters and i in converters:
            convert = converters[i]
        elif i in safe:
            continue
        else:
            kinds = set(map(type, column))
            kinds.discard(NoneType)
            if not kinds:
                continue  # all NULL
            convert = _FAST.get(kinds.pop(), to_jsonable) if len(kinds) == 1 else to_jsonable
        if convert is not None:  # (None: JSON-safe as it is)
            if None in column:
                columns[i] = [None if value is None else convert(value) for value in column]
            else:
                columns[i] = list(map(convert, column))
        if arrays and i in arrays:
            delim = arrays[i]
            columns[i] = [
                parse_array_literal(value, delim) if isinstance(value, str) else value
                for value in columns[i]
            ]
    return list(map(list, zip(*columns, strict=True)))


def parse_array_literal(text: str, delim: str = ",") -> Any:
    """Parse PostgreSQL's array output (``{a,"b c",NULL,{1,2}}``) into nested lists of str/None.

    Text that is not an array literal is returned unchanged.
    """
    body = text
    if body.startswith("["):  # explicit bounds: [0:1]={...}
        eq = body.find("=")
        body = body[eq + 1 :] if eq > 0 else body
    if not body.startswith("{"):
        return text
    stack: list[list[Any]] = []
    result: Any = text
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == "{":
            stack.append([])
            i += 1
        elif ch == "}":
            done = stack.pop()
            if stack:
                stack[-1].append(done)
            else:
                result = done
            i += 1
        elif ch == delim or ch.isspace():
            i += 1
        elif ch == '"':
            j, buf = i + 1, []
            while j < n and body[j] != '"':
                if body[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(body[j])
                j += 1
            if not stack:
                return text
            stack[-1].append("".join(buf))
            i = j + 1
        else:
            j = i
            while j < n and body[j] not in (delim, "}"):
                j += 1
            token = body[i:j].strip()
            if not stack:
                return text
            stack[-1].append(None if token.upper() == "NULL" else token)
            i = j
    return result if not stack else text


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """Compact JSON text (UTF-8, no ASCII escaping) of an already JSON-safe value."""
    return _ENCODER.encode(value)


def json_size(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON serialisation of a JSON-safe value."""
    text = _ENCODER.encode(value)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


# --- psycopg loaders -----------------------------------------------------------------------
