"""Names against the schema model: relations are bound to it (``resolve``), and an unknown
relation, schema or column is UNKNOWN_OBJECT, conservatively (only clear cases: a column only
when every source in reach is a known table). Only the first unknown name is reported, and its
"did you mean" suggestions are computed only if it is the problem shown."""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.rules.functions import check_function
from pg_mcp.core.validation.text import close
from pg_mcp.core.validation.walk import SYSTEM_SCHEMAS, Scope, Source, TableRef

# Column-like names that are really SQL value functions or keywords.
VALUE_KEYWORDS = frozenset(
    {
        "user",
        "current_user",
        "current_role",
        "session_user",
        "system_user",
        "current_catalog",
        "current_schema",
        "current_date",
        "current_time",
        "current_timestamp",
        "localtime",
        "localtimestamp",
        "default",
        "true",
        "false",
        "null",
    }
)
SYSTEM_COLUMNS = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"})


def resolve(ctx: Context, ref: TableRef) -> None:
    """Bind ``ref`` to its table in the schema model (and an unqualified pg_ name to pg_catalog)."""
    db = ctx.schema
    if db is not None and ref.catalog is None:
        ref.model = db.table(ref.name, ref.schema)
        if ref.model is not None:
            ref.resolved_schema = ref.model.schema
    if ref.schema is None and ref.model is None and ref.name.startswith("pg_"):
        ref.resolved_schema = "pg_catalog"


def unknown(
    ctx: Context, what: str, node: exp.Expression, text: str, sugg: Callable[[], list[str]]
) -> None:
    """An UNKNOWN_OBJECT problem; its suggestions are computed only if it is the one
    reported (thousands of unknown names must not cost thousands of difflib passes)."""
    if ctx.problems.has("UNKNOWN_OBJECT"):
        return  # the first one is the one reported
    name = ctx.database or (ctx.schema.name if ctx.schema is not None else "")
    where = f" in database {name}" if name else ""
    ctx.problem(
        "UNKNOWN_OBJECT",
        f"{what}{where}: {text}",
        node,
        hint="check the name against the schema reference",
        lazy=sugg,
    )


def unknown_table(ctx: Context, ref: TableRef) -> None:
    """``ref`` is not in the schema model (extension schemas are not judged)."""
    db = ctx.schema
    if db is None or ref.model is not None or ref.catalog is not None:
        return
    text = ctx.text(ref.node, ref.qualified)
    ext = {e.schema for e in db.extensions if e.schema not in SYSTEM_SCHEMAS}
    if ref.schema is not None:
        known = set(db.schemas)
        known.update(t.schema for t in db.tables)
        known.update(f.schema for f in db.functions)
        known.update(s.schema for s in db.sequences)
        if ref.schema not in known:
            if ref.schema in ext or not known:
                return
            schema = ref.schema
            unknown(
                ctx,
                f'schema "{schema}" does not exist',
                ref.node,
                text,
                lambda: close(schema, known),
            )
            return
        if ref.schema in ext:
            return  # extension relations are not in the schema model
    elif any(s in ext for s in db.search_path):
        return
    unknown(
        ctx,
        f'relation "{ref.qualified}" does not exist',
        ref.node,
        text,
        lambda: _table_suggestions(ctx, ref),
    )


def _table_suggestions(ctx: Context, ref: TableRef) -> list[str]:
    db = ctx.schema
    assert db is not None
    if ref.schema is not None:
        pool = [t.name for t in db.tables if t.schema == ref.schema]
        return [f"{ref.schema}.{n}" for n in close(ref.name, pool)]
    names = {t.name: t.qualified for t in db.tables if t.schema in db.search_path}
    names.update({t.qualified: t.qualified for t in db.tables})
    sugg: list[str] = []
    for n in close(ref.name, list(names)):
        if names[n] not in sugg:
            sugg.append(names[n])
    if not sugg:
        sugg = [t.qualified for t in db.tables if t.name.lower() == ref.name.lower()][:3]
    return sugg


def _user_function_named(ctx: Context, name: str) -> bool:
    return bool(ctx.schema and ctx.schema.functions_named(name))


def qualified_column(
    ctx: Context, node: exp.Column, name: str, qualifier: str, src: Source
) -> None:
    """``qualifier.name`` against the model of the table ``src`` (access allowed it)."""
    assert src.ref is not None
    model = src.ref.model
    if model is None or src.renamed or name in SYSTEM_COLUMNS:
        return
    if model.column(name) is not None:
        return
    if _user_function_named(ctx, name):  # attribute notation: t.f means f(t)
        check_function(ctx, node, None, name)
        return
    unknown(
        ctx,
        f'column "{name}" does not exist in {model.qualified}',
        node,
        ctx.text(node, f"{qualifier}.{name}"),
        lambda: [f"{qualifier}.{c}" for c in close(name, [c.name for c in model.columns])],
    )


def unqualified_column(ctx: Context, node: exp.Column, name: str, scope: Scope) -> None:
    """An unqualified ``name``: unknown only when every source in reach is a known table."""
    if ctx.schema is None or name in VALUE_KEYWORDS or name in SYSTEM_COLUMNS:
        return
    if scope.opaque or isinstance(node.parent, exp.Dot):
        return
    for s in scope.chain():
        if name in s.aliases:
            return
        for src in s.sources:
            if src.kind != "table" or src.ref is None or src.ref.model is None or src.renamed:
                return
    if not scope.sources:
        return
    if _user_function_named(ctx, name):
        return

    def suggestions() -> list[str]:
        pool = {
            c.name
            for src in scope.sources
            if src.ref and src.ref.model
            for c in src.ref.model.columns
        }
        return close(name, pool)

    tables = ", ".join(src.ref.qualified for src in scope.sources if src.ref is not None)
    unknown(
        ctx,
        f'column "{name}" does not exist in {tables}',
        node,
        ctx.text(node, name),
        suggestions,
    )
