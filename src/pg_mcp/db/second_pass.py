"""After the catalog (pure: no I/O): sample values from ``pg_stats``, the second-pass plan for
never-analysed tables (a bounded exact count, a DISTINCT over their first rows; one
statement per table from ``pg_mcp.db.catalog_sql.second_pass_sql``) and what its results
fill in, and the inputs of the data pass's column profiles (``pg_mcp.db.profiles``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pg_mcp.core.model import Column, Table
from pg_mcp.core.settings import Settings
from pg_mcp.db.catalog_sql import SCAN_ROWS, is_sensitive, second_pass_sql
from pg_mcp.db.profiles import ColumnInput, TableInput

if TYPE_CHECKING:  # only annotations: build imports this module
    from pg_mcp.db.build import Rel

# A second-pass statement and what its result fills in: (table, count?, sampled columns).
Plan = list[tuple[str, tuple[Table, bool, list[Column]]]]

SAMPLE_MAX_CHARS = 60


def profile_inputs(rels: dict[int, Rel], stats: list[list[Any]]) -> list[TableInput]:
    """What the column profiles may look at: readable columns of populated tables."""
    by_name: dict[tuple[str, str], tuple[Rel, TableInput]] = {}
    out = []
    for rel in rels.values():
        t = rel.table
        if t is None or t.partition_of is not None or rel.relkind not in ("r", "p", "m"):
            continue
        if not t.populated:
            continue
        cols = [
            ColumnInput(c, rel.category.get(c.name, ""), not is_sensitive(c.name))
            for c in t.columns
            if rel.col_readable.get(c.name)
        ]
        leading = {i.columns[0] for i in t.indexes if i.method == "btree" and i.columns}
        inp = TableInput(t, cols, btree_leading=leading)
        by_name[(t.schema, t.name)] = (rel, inp)
        out.append(inp)
    for nsp, tbl, att, inherited, null_frac, n_distinct, lo, hi in stats:
        found = by_name.get((nsp, tbl))
        if found is None:
            continue
        rel, inp = found
        if bool(inherited) != (rel.relkind == "p") and att in inp.stats:
            continue  # a partitioned parent has inherited stats; others prefer their own
        inp.stats[att] = (float(null_frac or 0), float(n_distinct or 0), lo, hi)
    return out


def plan_samples(rels: dict[int, Rel], stats: list[list[Any]], settings: Settings) -> Plan:
    n = settings.max_samples
    by_name = {(r.table.schema, r.table.name): r for r in rels.values() if r.table is not None}
    chosen: dict[tuple[str, str, str], tuple[float, list[str] | None]] = {}
    for nsp, tbl, att, inherited, n_distinct, mcv in stats:
        rel = by_name.get((nsp, tbl))
        if rel is None:
            continue
        rel.has_stats = True
        # a partitioned parent only has inherited stats; other tables prefer their own
        if bool(inherited) != (rel.relkind == "p") and (nsp, tbl, att) in chosen:
            continue
        chosen[(nsp, tbl, att)] = (float(n_distinct or 0), mcv)

    plan: Plan = []
    for rel in rels.values():
        t = rel.table
        if t is None or t.partition_of is not None:
            continue  # partitions are sampled through their parent
        if rel.relkind not in ("r", "p", "m") or (rel.relkind == "m" and not t.populated):
            continue
        wanted = []
        for col in t.columns:
            if rel.category.get(col.name) not in ("S", "B") or col.enum_labels is not None:
                continue
            if is_sensitive(col.name):
                col.samples_withheld = True
            elif rel.col_readable.get(col.name):
                wanted.append(col)
        if not wanted:
            continue
        if rel.has_stats:
            for col in wanted:
                st = chosen.get((t.schema, t.name, col.name))
                if st is None:
                    continue
                n_distinct, values = st  # most common values and histogram bounds
                est = n_distinct if n_distinct >= 0 else -n_distinct * float(t.row_estimate or 0)
                col.distinct_estimate = round(est, 1)
                if values:
                    # the first N in sorted order, not the N most frequent: frequencies move
                    # with every ANALYZE, the set of values of an enum-like column does not
                    distinct = _clean(values, col)
                    col.samples = distinct[:n]
                    # statistics miss values seen rarely ('oncology' once in 10,000 rows): a
                    # list from them is never called complete (the data pass may prove it is)
                    col.samples_complete = False
        elif t.row_estimate != 0:
            count = rel.readable and t.row_estimate is None and rel.relkind != "p"
            plan.append((second_pass_sql(t, count, wanted, n), (t, count, wanted)))
    return plan


def plan_counts(rels: dict[int, Rel], planned: set[int]) -> Plan:
    plan: Plan = []
    for rel in rels.values():
        t = rel.table
        if (
            t is not None
            and id(t) not in planned
            and rel.readable
            and t.row_estimate is None
            and rel.relkind in ("r", "m")
            and t.populated
        ):
            plan.append((second_pass_sql(t, True, [], 0), (t, True, [])))
    return plan


def apply_second_pass(plan: Plan, outputs: list[str | None], settings: Settings) -> None:
    n = settings.max_samples
    for (_, (t, count, cols)), text in zip(plan, outputs, strict=True):
        if not text:
            continue  # unreadable (locked, row-level security error, ...): nothing learnt
        values = json.loads(text)
        if count and values[0] is not None and values[0] <= SCAN_ROWS:
            t.row_estimate = int(values[0])
        counted = values[0] is not None and values[0] <= SCAN_ROWS  # every row was read
        for col, found in zip(cols, values[1:], strict=False):
            if found is not None and len(found) <= n:
                col.samples = _clean(found, col)
                col.samples_complete = counted


def _clean(values: list[Any], col: Column) -> list[str]:
    out = set()
    for v in values:
        s = str(v)
        if col.type == "boolean":
            s = {"t": "true", "f": "false"}.get(s, s)
        if len(s) > SAMPLE_MAX_CHARS:
            s = s[: SAMPLE_MAX_CHARS - 1] + "…"
        out.add(s)
    return sorted(out)
