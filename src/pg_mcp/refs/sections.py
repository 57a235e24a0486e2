"""One table's or view's Markdown section (pure, the hot path: plain string joins, no
template): heading, meta line, column table, keys, relationships, checks, indexes, partitions
and the view definition.
"""

from __future__ import annotations

import re
from collections import defaultdict

from pg_mcp.core.datatext import quote_text
from pg_mcp.core.model import Constraint, Index, Table
from pg_mcp.refs.columns import column_row
from pg_mcp.refs.markdown import NOTE_CAP, code, ident, one_line, rows_label
from pg_mcp.refs.relations import Context, by_source, column_list, fk_lines, inferred_line

VIEW_LINES = 20  # view definition lines shown (longer ones are cut)

_BASIS = {"statistics": "planner statistics (approximate)"}


def _index_line(i: Index) -> str:
    """`name` method (keys) [INCLUDE (...)] [WHERE ...] and its role, from its definition."""
    using = i.definition.partition(" USING ")[2]
    if using:
        bits = [code(i.name), one_line(using)]
    else:
        bits = [code(i.name), i.method, "(" + ", ".join(i.columns) + ")"]
        if i.predicate:
            bits.append("WHERE " + one_line(i.predicate))
    if i.primary:
        bits.append("(primary key)")
    elif i.unique:
        bits.append("(unique)")
    line = " ".join(bits)
    if i.comment:
        line += " — " + quote_text(i.comment)
    return line


def _constraint_line(c: Constraint) -> str:
    if c.kind in ("primary key", "unique"):
        line = f"{column_list(c.columns)} ({code(c.name)})"
    else:
        line = f"{code(c.name)}: {one_line(c.definition)}"
    if c.comment:
        line += " — " + quote_text(c.comment)
    return line


def _definition(t: Table, max_lines: int) -> str | None:
    if not t.definition:
        return None
    lines = [ln.rstrip() for ln in t.definition.rstrip().rstrip(";").splitlines()]
    lines = [ln if len(ln) <= 200 else ln[:199] + "…" for ln in lines if ln.strip()]
    if len(lines) > max_lines:
        more = len(lines) - max_lines
        lines = [*lines[:max_lines], f"-- … {more} more line{'s' if more > 1 else ''}"]
    return "\n".join(lines).replace("```", "` ` `")


def _kind_label(t: Table) -> str:
    label = t.kind[0].upper() + t.kind[1:]
    if t.kind == "materialized view" and not t.populated:
        label += " (not populated: WITH NO DATA)"
    return label


def _partition_lines(ctx: Context, t: Table) -> list[str]:
    """The bullet lines describing a partitioned table's partitions."""
    if not t.partitions:
        return []
    parts = [ctx.tables[p] for p in t.partitions if p in ctx.tables]
    names = []
    for p in parts:
        name = code(p.name if p.schema == t.schema else p.qualified)
        if p.partitions:
            name += (
                f" (itself partitioned by {one_line(p.partition_key)}: "
                + ", ".join(code(c.split(".", 1)[1]) for c in p.partitions)
                + ")"
            )
        names.append(name)
    bounds = []
    for p in (parts[0], parts[-1]) if len(parts) > 1 else parts[:1]:
        bounds.append(f"{code(p.name)} {one_line(p.partition_bound)}")
    # indexes of the partitions: their own, and copies attached to the parent's indexes
    groups: dict[str, list[str]] = defaultdict(list)
    for p in _descendants(ctx, t):
        for i in p.indexes:
            key = f"{i.method} ({', '.join(i.columns)})"
            if i.primary:
                key += " primary key"
            elif i.unique:
                key += " unique"
            if i.predicate:
                key += " WHERE " + one_line(i.predicate)
            if i.inherited:
                key += ", attached to the parent's index"
            groups[key].append(i.name + (f" — {quote_text(i.comment)}" if i.comment else ""))
    local = [
        f"Indexes on partitions, {k}: " + ", ".join(code(n) for n in sorted(v))
        for k, v in sorted(groups.items())
    ]
    comments = [
        f"{code(p.name)}: {quote_text(p.comment)}" for p in _descendants(ctx, t) if p.comment
    ]
    checks = sorted(
        {
            _constraint_line(c)
            for p in _descendants(ctx, t)
            for c in p.constraints
            if c.kind in ("check", "exclusion", "unique")
        }
    )
    return [
        f"- Partitioned by {one_line(t.partition_key)} into {len(parts)} partitions; "
        + "; ".join(bounds),
        "  - Partitions: " + ", ".join(names),
        *("  - " + i for i in local),
        *("  - Partition constraint " + c for c in checks),
        *("  - Partition " + c for c in comments),
    ]


def _descendants(ctx: Context, t: Table) -> list[Table]:
    out = []
    for p in t.partitions:
        child = ctx.tables.get(p)
        if child is not None:
            out.append(child)
            out.extend(_descendants(ctx, child))
    return out


_COLUMNS_HEAD = ["| column | type | constraints | notes |", "|---|---|---|---|"]
_VIEW_COLUMNS_HEAD = ["| column | type | notes |", "|---|---|---|"]


def table_section(ctx: Context, t: Table, view_lines: int, hl: str = "###") -> str:
    """One table's or view's Markdown section (plain string building: the hot path).

    Layout: heading, one meta line, the column table, bullets (keys, relationships,
    checks, indexes, partitions), the view definition; no run of blank lines.
    """
    qualified = t.qualified
    pk_con = None
    uniques, checks, exclusions = [], [], []
    for c in t.constraints:
        kind = c.kind
        if kind == "primary key":
            if pk_con is None:
                pk_con = c
        elif kind == "unique":
            uniques.append(c)
        elif kind == "check":
            checks.append(c)
        elif kind == "exclusion":
            exclusions.append(c)
    pk = set(pk_con.columns) if pk_con else set()
    outs = ctx.fks_out.get(qualified, [])
    fk_targets: dict[str, str] = {}
    for c, _declared in outs:
        if len(c.columns) == 1 and c.ref_columns and len(c.ref_columns) == 1:
            target = f"{c.ref_schema}.{c.ref_table}"
            fk_targets.setdefault(
                c.columns[0], f"FK {ctx.display.get(target, target)}.{ident(c.ref_columns[0])}"
            )
    inferred = ctx.inf_out.get(qualified, [])
    for c in inferred:
        target = f"{c.ref_schema}.{c.ref_table}"
        ref = (c.ref_columns or ["?"])[0]
        fk_targets.setdefault(
            c.columns[0], f"inferred FK {ctx.display.get(target, target)}.{ident(ref)}"
        )
    meta = _kind_label(t)
    if t.profile_basis == "all rows" and t.row_estimate is not None:
        meta += f" · {t.row_estimate:,} row{'s' if t.row_estimate != 1 else ''} (counted)"
    elif not t.is_view or (t.kind == "materialized view" and t.populated):
        meta += " · " + rows_label(t.row_estimate)
    if t.partition_of:
        meta += (
            f" · partition of {code(ctx.display.get(t.partition_of, t.partition_of))}"
            f" {one_line(t.partition_bound)}"
        )
    if t.profile_basis and t.profile_basis != "all rows":
        meta += f" · profiled on {_BASIS.get(t.profile_basis, t.profile_basis)}"
    if t.comment:
        meta += f" — {quote_text(t.comment)}"
    if t.note:  # from the notes people keep (references/notes/<db>.toml)
        meta += f" · note: {quote_text(t.note, NOTE_CAP)}"

    out = [f"{hl} {ident(t.schema)}.{ident(t.name)}", "", meta, ""]
    if t.columns:
        view = t.is_view
        out += _VIEW_COLUMNS_HEAD if view else _COLUMNS_HEAD
        single = frozenset(c.columns[0] for c in uniques if len(c.columns) == 1)
        out += [column_row(col, pk, fk_targets, view, single) for col in t.columns]
        out.append("")
    if pk_con:
        out.append("- Primary key: " + _constraint_line(pk_con))
    for c in uniques:
        out.append("- Unique: " + _constraint_line(c))
    if outs:
        out.append("- References:")
        out += ["  - " + f for f in fk_lines(ctx, [(qualified, c, d) for c, d in outs])]
    if inferred:
        out.append(
            "- References, inferred (no foreign key declares them; checked against the data):"
        )
        out += ["  - " + inferred_line(ctx, qualified, c) for c in inferred]
    refby = ctx.fks_in.get(qualified)
    if refby:
        out.append("- Referenced by:")
        out += ["  - " + f for f in fk_lines(ctx, refby)]
    inf_by = ctx.inf_in.get(qualified)
    if inf_by:
        out.append("- Referenced by, inferred:")
        out += ["  - " + inferred_line(ctx, src, c) for src, c in sorted(inf_by, key=by_source)]
    if checks:
        out.append("- Checks:")
        out += ["  - " + _constraint_line(c) for c in checks]
    for c in exclusions:
        out.append("- Exclusion: " + _constraint_line(c))
    if t.indexes:
        out.append("- Indexes:")
        out += ["  - " + _index_line(i) for i in t.indexes]
    if t.partitions:
        out += _partition_lines(ctx, t)
    definition = _definition(t, view_lines)
    if definition:
        if out[-1]:
            out.append("")
        out += ["```sql", definition, "```"]
    text = "\n".join(out)
    if "\n\n\n" in text:  # only from names or text holding blank lines themselves
        text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def table_sections(ctx: Context, tables: list[Table]) -> list[str]:
    """One Markdown section per table (heading level 3)."""
    return [table_section(ctx, t, VIEW_LINES) for t in tables]
