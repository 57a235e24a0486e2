"""One row of a table's column table (pure): name, type, constraints, and the notes on a
column: its comment, the note people wrote, enum labels, sample values and its profile (nulls,
distinct values, range) in a few words.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pg_mcp.core.datatext import SAMPLE_CAP, quote_text, sql_literal
from pg_mcp.core.model import Column
from pg_mcp.refs.markdown import MAX_CELL, NOTE_CAP, cell, ident, one_line


def column_row(
    col: Column,
    pk: set[str],
    fk_targets: dict[str, str],
    view: bool,
    unique: frozenset[str] = frozenset(),
) -> str:
    """One row of a table's column table: | name | type | [constraints |] notes |."""
    name = col.name
    flags = []
    if name in pk:
        flags.append("PK")
    if name in fk_targets:
        flags.append(fk_targets[name])
    if not col.nullable and name not in pk:
        flags.append("not null")
    if col.identity:
        flags.append(f"identity {col.identity.lower()}")
    if col.generated:
        flags.append("generated " + col.generated)
    elif col.default is not None and not col.identity:
        flags.append("default " + col.default)
    typ = col.type
    if col.base_type:
        typ += f" (domain over {col.base_type})"
    notes = []
    if col.comment:
        notes.append(quote_text(col.comment))
    if col.note:
        notes.append("note: " + quote_text(col.note, NOTE_CAP))
    if col.unit:
        notes.append("unit: " + quote_text(col.unit, 40))
    if col.enum_labels is not None:
        notes.append(_enum_note(tuple(col.enum_labels)))
    if col.samples_withheld:
        notes.append("(samples withheld)")
    elif col.samples:
        vals = ", ".join(_sample(v, col.type) for v in col.samples)
        notes.append(("values: " if col.samples_complete else "e.g. ") + vals)
    notes += profile_notes(col, key=name in pk or name in fk_targets, unique=name in unique)
    note = cell(" · ".join(notes)) if notes else ""
    if view:
        return f"| {_name_cell(name)} | {_type_cell(typ)} | {note} |"
    flag = cell(", ".join(flags), MAX_CELL) if flags else ""
    return f"| {_name_cell(name)} | {_type_cell(typ)} | {flag} | {note} |"


def profile_notes(col: Column, *, key: bool = False, unique: bool = False) -> list[str]:
    """A column's profile in a few words: nulls 12 %, 412 distinct, unique, its range."""
    out = []
    if col.null_share:
        pct = col.null_share * 100
        out.append("all null" if pct >= 100 else f"nulls {_pct(pct)}")
    lo, hi = col.min_value, col.max_value
    if col.distinct_count == 1 and lo is not None and lo == hi and not col.epoch_unit:
        out.append(f"always {_value(lo, col.type)}")
        return out
    if col.samples_withheld:  # a sensitive-looking column: how often it is null, no more
        return out
    if col.unique_observed and not key and not unique and col.enum_labels is None:
        out.append("unique (observed)")
    elif (
        col.distinct_count
        and not key
        and not unique
        and not col.samples_complete
        and col.enum_labels is None
    ):
        out.append(f"{col.distinct_count:,} distinct")
    if col.value_format and (lo is None or hi is None):
        out.append(f"text as {col.value_format}")
    if lo is None or hi is None or key:
        return out
    a, b = profile_range(col)
    if col.epoch_unit:
        out.append(f"Unix epoch {col.epoch_unit}: {a} … {b} (UTC)")
    elif col.value_format:
        out.append(f"text as {col.value_format}: {a} … {b}")
    else:
        out.append(f"range {a} … {b}")
    return out


def profile_range(col: Column) -> tuple[str, str]:
    """A column's min and max as written in the references (epoch integers as dates)."""
    lo, hi = col.min_value or "", col.max_value or ""
    if col.epoch_unit:
        return _epoch_date(lo, col.epoch_unit), _epoch_date(hi, col.epoch_unit)
    typ = "text" if col.value_format else col.type
    return _value(lo, typ), _value(hi, typ)


def _pct(p: float) -> str:
    if p < 1:
        return "<1 %" if p > 0 else "0 %"
    return f"{p:.0f} %"


_FRACTION = re.compile(r"(\d{2}:\d{2}:\d{2})\.\d+")


def _value(v: str, typ: str = "text") -> str:
    """A min/max: numbers and dates as they are (fractions of seconds cut), text quoted."""
    if typ.startswith(("timestamp", "time")):
        return one_line(_FRACTION.sub(r"\1", v))
    if re.fullmatch(r"[0-9:. +-]+", v):
        return v
    return sql_literal(v, SAMPLE_CAP)


def _epoch_date(v: str, unit: str) -> str:
    import datetime as dt

    seconds = int(v) / (1000 if unit == "milliseconds" else 1)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")


@lru_cache(maxsize=1024)
def _enum_note(labels: tuple[str, ...]) -> str:
    return "enum: " + ", ".join(sql_literal(v, None) for v in labels)


def _sample(value: str, typ: str) -> str:
    """A sample value as SQL writes it: a string literal (booleans bare)."""
    if typ == "boolean" and value in ("true", "false"):
        return value
    return sql_literal(value, SAMPLE_CAP)


@lru_cache(maxsize=65536)
def _name_cell(name: str) -> str:
    return cell(ident(name))


@lru_cache(maxsize=4096)
def _type_cell(typ: str) -> str:
    return cell(typ, MAX_CELL)
