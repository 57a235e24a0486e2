"""How the tables of one database relate, for the references (pure): the ``Context`` every
section reads (tables by name, how to write each name in SQL, foreign keys in and out, merged
over partitions, and the relationships ``pg_mcp.db.inference`` inferred), the relationship
lines, the note for a database that declares no keys, and a table's one-line purpose.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from pg_mcp.core.datatext import quote_text
from pg_mcp.core.model import INFERRED, Constraint, DatabaseSchema, Table
from pg_mcp.refs.markdown import code, ident, one_line


@dataclass
class Context:
    db: DatabaseSchema
    tables: dict[str, Table]  # qualified -> table
    display: dict[str, str]  # qualified -> how to write it in SQL (unqualified on search_path)
    fks_out: dict[str, list[tuple[Constraint, str]]]  # table -> [(fk, declared on)]
    fks_in: dict[str, list[tuple[str, Constraint, str]]]  # target -> [(source, fk, declared on)]
    # relationships no foreign key declares (pg_mcp.db.inference), the same shapes
    inf_out: dict[str, list[Constraint]]
    inf_in: dict[str, list[tuple[str, Constraint]]]


def build_context(db: DatabaseSchema) -> Context:
    tables = {t.qualified: t for t in db.tables}
    first_schema: dict[str, str] = {}
    for s in db.search_path:
        for t in db.tables:
            if t.schema == s:
                first_schema.setdefault(t.name, s)
    display = {}
    for q, t in tables.items():
        if first_schema.get(t.name) == t.schema:
            display[q] = ident(t.name)
        else:
            display[q] = f"{ident(t.schema)}.{ident(t.name)}"

    fks_out: dict[str, list[tuple[Constraint, str]]] = defaultdict(list)
    fks_in: dict[str, list[tuple[str, Constraint, str]]] = defaultdict(list)
    inf_out: dict[str, list[Constraint]] = defaultdict(list)
    inf_in: dict[str, list[tuple[str, Constraint]]] = defaultdict(list)
    for t in db.tables:
        owner = _top_parent(t, tables)
        for c in t.constraints:
            if c.kind == INFERRED and c.ref_table is not None:
                inf_out[t.qualified].append(c)
                inf_in[f"{c.ref_schema}.{c.ref_table}"].append((t.qualified, c))
                continue
            if c.kind != "foreign key" or c.ref_table is None:
                continue
            target = f"{c.ref_schema}.{c.ref_table}"
            target = _top_parent(tables[target], tables) if target in tables else target
            fks_out[owner].append((c, t.qualified))
            fks_in[target].append((owner, c, t.qualified))
    return Context(db, tables, display, fks_out, fks_in, inf_out, inf_in)


def _top_parent(t: Table, tables: dict[str, Table]) -> str:
    seen = 0
    while t.partition_of and t.partition_of in tables and seen < 32:
        t = tables[t.partition_of]
        seen += 1
    return t.qualified


def column_list(cols: list[str] | None) -> str:
    cols = cols or []
    if len(cols) == 1:
        return ident(cols[0])
    return "(" + ", ".join(ident(c) for c in cols) + ")"


def _fk_line(ctx: Context, source: str, c: Constraint) -> str:
    target = f"{c.ref_schema}.{c.ref_table}"
    tdisp = ctx.display.get(target, f"{ident(c.ref_schema or '')}.{ident(c.ref_table or '')}")
    return f"{ctx.display[source]}.{column_list(c.columns)} -> {tdisp}.{column_list(c.ref_columns)}"


def fk_lines(ctx: Context, items: list[tuple[str, Constraint, str]]) -> list[str]:
    """FK lines, merging identical ones declared on each partition of one parent."""
    if len(items) == 1:  # the common case, spelled out
        source, c, declared = items[0]
        line = code(_fk_line(ctx, source, c))
        if declared == source:
            line += f" ({code(c.name)})"
        else:
            line += " (declared on 1 partition)"
        if c.comment:
            line += " — " + quote_text(c.comment)
        return [line]
    groups: dict[str, list[tuple[Constraint, str, str]]] = defaultdict(list)
    for source, c, declared in items:
        groups[_fk_line(ctx, source, c)].append((c, source, declared))
    lines = []
    for line in sorted(groups):
        members = groups[line]
        direct = [c for c, source, declared in members if declared == source]
        parts = [code(line)]
        if direct:
            parts.append(
                "(" + ", ".join(code(c.name) for c in sorted(direct, key=lambda c: c.name)) + ")"
            )
        on_parts = [c for c, source, declared in members if declared != source]
        if on_parts:
            n = len(on_parts)
            parts.append(f"(declared on {n} partition{'s' if n > 1 else ''})")
        comments = sorted({quote_text(c.comment) for c, _, _ in members if c.comment})
        if comments:
            parts.append("— " + "; ".join(comments))
        lines.append(" ".join(parts))
    return lines


def inferred_line(ctx: Context, source: str, c: Constraint) -> str:
    """`a.col -> b.key` (inferred: 100 % of 412 values match, target unique)."""
    return f"{code(_fk_line(ctx, source, c))} (inferred: {one_line(c.definition)})"


def by_source(item: tuple[str, Constraint]) -> tuple[str, list[str]]:
    return item[0], item[1].columns


def keys_note(db: DatabaseSchema) -> str:
    """Plain words when a database declares no keys (and what the references do instead)."""
    kinds = {c.kind for t in db.tables for c in t.constraints}
    inferred = INFERRED in kinds
    tables = [t for t in db.tables if t.kind in ("table", "partitioned table")]
    if not tables or "foreign key" in kinds:
        return ""
    if not kinds & {"primary key", "unique", "foreign key"}:
        text = "This database declares no keys: no primary key, unique constraint or foreign key."
    else:
        text = "This database declares no foreign keys."
    if inferred:
        text += (
            " The relationships marked inferred were found from column names and checked against"
            " the data (the share of values that match, and whether the target is unique): joins"
            " to verify, not guarantees."
        )
    else:
        text += " No relationship could be inferred from column names and data: join with care."
    return text


_SENTENCE_END = re.compile(r"(?<=[.!?。])\s|\n")


def purpose(ctx: Context, t: Table) -> str:
    """One line saying what a table is for: its comment, else inferred from its shape."""
    if t.comment:
        first = _SENTENCE_END.split(t.comment.strip(), maxsplit=1)[0]
        return quote_text(first, 140)
    if t.is_view:
        used = _tables_named_in(ctx, t)
        kind = "materialized view" if t.kind == "materialized view" else "view"
        return (
            f"{kind} over " + ", ".join(used[:5]) + (" …" if len(used) > 5 else "")
            if used
            else kind
        )
    if t.partitions:
        return f"partitioned by {one_line(t.partition_key)} into {len(t.partitions)} partitions"
    outs = ctx.fks_out.get(t.qualified, [])
    targets = sorted(
        {ctx.display.get(f"{c.ref_schema}.{c.ref_table}", c.ref_table or "") for c, _ in outs}
    )
    pk = next((c for c in t.constraints if c.kind == "primary key"), None)
    fk_cols = {col for c, _ in outs for col in c.columns}
    if pk and len(targets) >= 2 and set(pk.columns) <= fk_cols:
        return "links " + " ↔ ".join(targets[:4])
    refs = sorted({src for src, _, _ in ctx.fks_in.get(t.qualified, []) if src != t.qualified})
    bits = []
    if targets:
        bits.append("refers to " + ", ".join(targets[:4]) + (" …" if len(targets) > 4 else ""))
    if refs:
        names = [ctx.display[r] for r in refs]
        bits.append("referenced by " + ", ".join(names[:4]) + (" …" if len(names) > 4 else ""))
    return "; ".join(bits)


def _tables_named_in(ctx: Context, t: Table) -> list[str]:
    words = set(re.findall(r"[\w$]+", t.definition or ""))
    return sorted(
        ctx.display[q]
        for q, o in ctx.tables.items()
        if o.name in words and q != t.qualified and not o.partition_of
    )
