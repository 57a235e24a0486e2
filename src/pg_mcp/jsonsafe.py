"""JSON-safe values: every common PostgreSQL type as something ``json.dumps`` accepts, exactly.

Decisions (stable; clients rely on them):

- **integers** (int2/int4/int8/oid, integral numerics): a JSON number when ``|x| <= 2**53``
  (exact in every JSON parser, JavaScript included), else a string of digits.
- **numeric / Decimal**: a JSON number when the shortest float text denotes exactly the same
  value (``1.50`` -> ``1.5``, ``0.1`` -> ``0.1``), else the decimal string (``"12345678901234567.89"``).
  ``NaN`` / ``Infinity`` / ``-Infinity`` become those strings. Scale (trailing zeros) is not kept.
- **float4/float8**: a JSON number; NaN and infinities as the strings above.
- **date / timestamp / timestamptz / time / timetz**: ISO 8601 (``2024-01-02``,
  ``2024-01-02T03:04:05.5+00:00``). Values Python cannot hold (``infinity``, ``-infinity``,
  years after 9999 or BC) come back as PostgreSQL prints them (``"infinity"``, ``"0044-03-15 BC"``).
- **interval**: an ISO 8601 duration computed exactly from PostgreSQL's text
  (``1 year 2 mons 3 days 04:05:06.5`` -> ``P1Y2M3DT4H5M6.5S``; months are never turned into days).
  Negative parts carry their own sign, as PostgreSQL's ``iso_8601`` IntervalStyle prints them.
- **bytea**: PostgreSQL's hex text, ``"\\xdeadbeef"`` (can be pasted back into SQL).
- **uuid, inet, cidr, macaddr, money, tsvector, xml, geometric, bit, pg_lsn, enums**: their text.
- **arrays**: (nested) JSON arrays; **json/jsonb**: the JSON value itself (numbers by the rules above);
  **records / composites**: a JSON array of the fields (anonymous records) or the composite's text.
- **ranges**: ``{"lower": .., "upper": .., "bounds": "[)"}`` (bounds ``None`` = unbounded) or
  ``{"empty": true}``; **multiranges**: a JSON array of ranges.
- anything else: ``str(value)``.

``register_loaders(conn)`` installs the loaders that make the above possible (infinity-safe
dates, exact intervals, exact JSON numbers) on a psycopg connection or adapters context.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import json
import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from functools import partial
from typing import Any

MAX_SAFE_INT = 2**53

_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _int(value: int) -> int | str:
    return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return _SPECIAL_FLOATS[repr(value)]


def _decimal(value: Decimal) -> int | float | str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    if value == value.to_integral_value():
        return _int(int(value))
    as_float = float(value)
    if math.isfinite(as_float) and Decimal(repr(as_float)) == value:
        return as_float
    return format(value, "f")


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


def to_jsonable(value: Any) -> Any:
    """One value as a JSON-safe Python object (see the module docstring for the rules)."""
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
    out = [to_jsonable(v) for v in row]
    if arrays:
        for i, delim in arrays.items():
            if isinstance(out[i], str):
                out[i] = parse_array_literal(out[i], delim)
    return out


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


def dumps(value: Any) -> str:
    """Compact JSON text (UTF-8, no ASCII escaping) of an already JSON-safe value."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def json_size(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON serialisation of a JSON-safe value."""
    return len(dumps(value).encode("utf-8"))


# --- psycopg loaders -----------------------------------------------------------------------


def register_loaders(context: Any) -> None:
    """Install infinity-safe date/time loaders, exact interval and JSON-number loaders.

    ``context`` is a psycopg connection (or cursor / AdaptersMap owner). Text format only:
    the executor always fetches text.
    """
    from psycopg import errors
    from psycopg.adapt import Loader
    from psycopg.types import datetime as pgdt
    from psycopg.types.json import set_json_loads

    def tolerant(base: type[Loader]) -> type[Loader]:
        class Tolerant(base):  # type: ignore[valid-type,misc]
            def load(self, data: Any) -> Any:
                try:
                    return super().load(data)
                except (errors.DataError, ValueError, OverflowError):
                    return bytes(data).decode("utf-8", "replace")

        Tolerant.__name__ = f"Tolerant{base.__name__}"
        return Tolerant

    class IsoIntervalLoader(Loader):
        def load(self, data: Any) -> str:
            return iso_duration(bytes(data).decode("utf-8", "replace"))

    adapters = context.adapters
    adapters.register_loader("date", tolerant(pgdt.DateLoader))
    adapters.register_loader("timestamp", tolerant(pgdt.TimestampLoader))
    adapters.register_loader("timestamptz", tolerant(pgdt.TimestamptzLoader))
    adapters.register_loader("time", tolerant(pgdt.TimeLoader))
    adapters.register_loader("timetz", tolerant(pgdt.TimetzLoader))
    adapters.register_loader("interval", IsoIntervalLoader)
    set_json_loads(partial(json.loads, parse_float=Decimal), context)
