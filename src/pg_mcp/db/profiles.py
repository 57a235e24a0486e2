"""Column profiles: null share, distinct count, observed uniqueness, ranges, formats, domains.

Part of the data pass (``pg_mcp.db.inference.data_pass``), within its time budget, read-only:

- **small tables** (at most ``SMALL_ROWS`` rows): one statement per table over all its rows:
  per column the non-null and distinct counts, min and max of numbers, dates and times,
  the detected format of text that holds dates or numbers (checked on ``FORMAT_ROWS``
  values), and for text and boolean columns with at most ``max_samples`` distinct values
  the exact ``SELECT DISTINCT`` list, marked complete (``values:``);
- **big tables**: the planner statistics when the table was analysed (``pg_stats``: null
  share, distinct estimate, first and last histogram bound as an approximate range), plus
  the exact min and max of date/time columns that lead a btree index (an index lookup);
  never analysed: the same statement as a small table over its first ``SMALL_ROWS`` rows.
  Either way the table's ``profile_basis`` says which.

Integers whose range lies in the Unix-epoch range (seconds or milliseconds between
2001-09-09 and 2039) are marked ``epoch_unit`` and shown as the dates they stand for.
Columns whose names look sensitive, and columns the role cannot read, are not profiled
beyond their null share and distinct count.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pg_mcp.core.model import Column, Table

SMALL_ROWS = 10_000  # tables up to this many rows are profiled exactly
CHEAP_ROWS = 1_000  # up to this many rows every distinct count is exact, whatever it costs
UNIQUE_MIN = 20  # non-null values needed before "unique (observed)" means anything
FORMAT_ROWS = 1_000  # text values checked for a format
VALUE_CHARS = 60  # sample values are cut here (as introspection does)
EPOCH_SECONDS = (1_000_000_000, 2_200_000_000)  # 2001-09-09 .. 2039-09-18
EPOCH_MILLIS = (EPOCH_SECONDS[0] * 1000, EPOCH_SECONDS[1] * 1000)

# (label, regular expression): the first format every checked value matches
FORMATS = (
    ("YYYY-MM-DD", r"^\d{4}-\d{2}-\d{2}$"),
    (
        "YYYY-MM-DD HH:MM[:SS]",
        r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?$",
    ),
    ("DD/MM/YYYY or MM/DD/YYYY", r"^\d{1,2}/\d{1,2}/\d{4}$"),
    ("YYYYMMDD", r"^(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$"),
    ("HH:MM[:SS]", r"^\d{1,2}:\d{2}(:\d{2})?$"),
    ("integer", r"^[+-]?\d+$"),
    ("decimal", r"^[+-]?(\d+\.\d*|\.\d+)$"),
)
_ISO = ("YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]", "YYYYMMDD", "HH:MM[:SS]")  # min/max by text order

_INT_TYPES = frozenset({"smallint", "integer", "bigint"})


@dataclass
class ColumnInput:
    column: Column
    category: str  # pg_type.typcategory: N numeric, D date/time, S string, B boolean, ...
    profilable: bool  # readable and not sensitive-looking: its values may be looked at


@dataclass
class TableInput:
    table: Table
    columns: list[ColumnInput]
    # pg_stats per column: (null_frac, n_distinct, first bound, last bound) when analysed
    stats: dict[str, tuple[float, float, str | None, str | None]] = field(default_factory=dict)
    btree_leading: set[str] = field(default_factory=set)
    counted: int | None = None  # the exact row count, when every row was read


def apply_counts(inputs: list[TableInput]) -> None:
    """The exact row counts the profiles found, onto their tables (after the inference ran
    on the estimates it started with, so its choices do not depend on timing)."""
    for inp in inputs:
        if inp.counted is not None:
            inp.table.row_estimate = inp.counted


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _rows(t: Table) -> int | None:
    return t.row_estimate if t.row_estimate is not None and t.row_estimate >= 0 else None


def _comparable(ci: ColumnInput) -> bool:
    typ = (ci.column.base_type or ci.column.type).lower()
    if typ.endswith("[]") or typ in ("json", "xml", "point", "line", "polygon", "box", "path"):
        return False
    return ci.category in ("N", "D", "S", "B", "E", "U", "I", "V", "T")


def profile_sql(inp: TableInput, n_values: int, limit: int | None) -> str:
    """One statement profiling every column of a table (its first ``limit`` rows, or all)."""
    t = inp.table
    rel = f"{_ident(t.schema)}.{_ident(t.name)}"
    cols = [ci for ci in inp.columns]
    select = ", ".join(_ident(ci.column.name) for ci in cols) or "1"
    source = f"SELECT {select} FROM {rel}" + (f" LIMIT {limit}" if limit else "")
    parts = []
    for ci in cols:
        c = _ident(ci.column.name)
        bits = [f"count({c})"]
        exact = _comparable(ci) and _worth_counting(inp, ci, n_values)
        bits.append(f"count(DISTINCT {c})" if exact else "NULL")
        if ci.profilable and ci.category in ("N", "D"):
            bits += [f"min({c})::text", f"max({c})::text"]
        elif ci.profilable and ci.category == "S":
            bits += [f'min({c}::text COLLATE "C")', f'max({c}::text COLLATE "C")']
        else:
            bits += ["NULL", "NULL"]
        # the subqueries below are init plans: run only when the CASE needs them
        if ci.profilable and ci.category == "S":
            checks = ", ".join(f"count(*) FILTER (WHERE v ~ {_lit(rx)})" for _, rx in FORMATS)
            bits.append(
                f"CASE WHEN min({c}::text COLLATE \"C\") ~ '^[-+.0-9]' THEN"
                f" (SELECT json_build_array(count(*), {checks}) FROM"
                f" (SELECT {c}::text AS v FROM s WHERE {c} IS NOT NULL LIMIT {FORMAT_ROWS}) f) END"
            )
        else:
            bits.append("NULL")
        if ci.profilable and ci.category in ("S", "B") and n_values > 0 and exact:
            bits.append(
                f"CASE WHEN count(DISTINCT {c}) <= {n_values} THEN"
                f" (SELECT json_agg(v) FROM (SELECT DISTINCT {c}::text AS v FROM s"
                f" WHERE {c} IS NOT NULL ORDER BY 1 LIMIT {n_values + 1}) d) END"
            )
        else:
            bits.append("NULL")
        parts.append("json_build_array(" + ", ".join(bits) + ")")
    body = ", ".join(parts)
    return (
        f"WITH s AS MATERIALIZED ({source}) "
        f"SELECT json_build_array(count(*), json_build_array({body}))::text FROM s"
    )


def _worth_counting(inp: TableInput, ci: ColumnInput, n_values: int) -> bool:
    """Count distinct values exactly, unless the statistics already say there are many of
    them in a text column that is no key (long descriptions: the costliest sort)."""
    if ci.category != "S":
        return True
    st = inp.stats.get(ci.column.name)
    if st is None:
        return True
    name = ci.column.name.lower()
    if name.endswith(("id", "code", "key", "no", "num", "number", "sku", "ref")):
        return True
    rows = _rows(inp.table) or 0
    if rows <= CHEAP_ROWS:
        return True
    est = st[1] if st[1] >= 0 else -st[1] * rows
    return est <= max(2 * n_values, 20)


def apply_profile(inp: TableInput, text: str, n_values: int, basis: str) -> None:
    total, per_column = json.loads(text)
    t = inp.table
    t.profile_basis = basis
    if basis == "all rows":
        inp.counted = int(total)  # set on the table by apply_counts, once inference is done
    for ci, row in zip(inp.columns, per_column, strict=True):
        nonnull, distinct, lo, hi, fmt, values = row
        col = ci.column
        col.null_share = round(1.0 - nonnull / total, 4) if total else None
        col.distinct_count = int(distinct) if distinct is not None else None
        st = inp.stats.get(col.name)
        if distinct is None and st is not None and nonnull:
            est = st[1] if st[1] >= 0 else -st[1] * nonnull
            col.distinct_count = min(nonnull, round(est))
        col.unique_observed = (
            bool(  # a handful of rows being distinct says nothing
                distinct is not None and nonnull >= UNIQUE_MIN and distinct == nonnull
            )
            and basis == "all rows"
        )
        if fmt and fmt[0]:
            checked = fmt[0]
            for (label, _), hits in zip(FORMATS, fmt[1:], strict=True):
                if hits == checked:
                    col.value_format = label
                    break
        if ci.category in ("N", "D") or col.value_format in _ISO:
            col.min_value, col.max_value = _cut(lo), _cut(hi)
        _epoch(col)
        if values is not None and col.enum_labels is None:
            found = sorted({_clean(v, col) for v in values})
            if len(values) <= n_values:
                col.samples = found
                col.samples_complete = basis == "all rows"
            elif not col.samples:
                col.samples = found[:n_values]
                col.samples_complete = False


def apply_stats(inp: TableInput) -> None:
    """A big, analysed table: the planner's statistics (approximate, and said so)."""
    t = inp.table
    rows = _rows(t) or 0
    used = False
    for ci in inp.columns:
        st = inp.stats.get(ci.column.name)
        if st is None:
            continue
        used = True
        null_frac, n_distinct, lo, hi = st
        col = ci.column
        col.null_share = round(float(null_frac), 4)
        est = n_distinct if n_distinct >= 0 else -n_distinct * rows * (1 - null_frac)
        col.distinct_count = round(est)
        col.unique_observed = n_distinct == -1
        if ci.profilable and ci.category in ("N", "D"):
            col.min_value, col.max_value = _cut(lo), _cut(hi)
            _epoch(col)
    if used:
        t.profile_basis = "statistics"


def range_sql(inp: TableInput, ci: ColumnInput) -> str:
    c, t = _ident(ci.column.name), inp.table
    return f"SELECT min({c})::text, max({c})::text FROM {_ident(t.schema)}.{_ident(t.name)}"


def _cut(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v)
    return s if len(s) <= VALUE_CHARS else s[: VALUE_CHARS - 1] + "…"


def _clean(v: Any, col: Column) -> str:
    s = str(v)
    if col.type == "boolean":
        s = {"t": "true", "f": "false"}.get(s, s)
    return s if len(s) <= VALUE_CHARS else s[: VALUE_CHARS - 1] + "…"


def _epoch(col: Column) -> None:
    typ = (col.base_type or col.type).lower()
    if typ not in _INT_TYPES and not re.fullmatch(r"numeric(\(\d+(,\s*0)?\))?", typ):
        return
    try:
        lo, hi = int(col.min_value or ""), int(col.max_value or "")
    except ValueError:
        return
    for unit, (a, b) in (("seconds", EPOCH_SECONDS), ("milliseconds", EPOCH_MILLIS)):
        if a <= lo <= hi <= b:
            col.epoch_unit = unit
            return


Query = Callable[[str], "str | None"]


def profile(
    inputs: list[TableInput],
    query: Callable[[str], tuple[Any, ...] | None],
    *,
    n_values: int,
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Profile the tables, smallest first, until ``deadline``; returns how many were done."""
    done = 0
    order = sorted(inputs, key=lambda i: (_rows(i.table) is None, _rows(i.table) or 0))
    for inp in order:
        if clock() > deadline:
            break
        rows = _rows(inp.table)
        if rows == 0 or not inp.columns:
            continue
        if rows is not None and rows <= SMALL_ROWS:
            row = query(profile_sql(inp, n_values, None))
            if row and row[0]:
                apply_profile(inp, row[0], n_values, "all rows")
        elif inp.stats:
            apply_stats(inp)
            for ci in inp.columns:
                if ci.category == "D" and ci.profilable and ci.column.name in inp.btree_leading:
                    if clock() > deadline:
                        break
                    got = query(range_sql(inp, ci))
                    if got:
                        ci.column.min_value, ci.column.max_value = _cut(got[0]), _cut(got[1])
        else:
            row = query(profile_sql(inp, n_values, SMALL_ROWS))
            if row and row[0]:
                apply_profile(inp, row[0], n_values, f"first {SMALL_ROWS:,} rows")
        done += 1
    return done
