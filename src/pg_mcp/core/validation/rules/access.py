"""The access policy (``[policy]`` deny_schemas, deny_tables, deny_columns): ACCESS_DENIED.

- ``table_denied``: a relation the policy hides (an unqualified one not in the schema is
  matched in every schema of the search path, ``public`` without a schema, then any);
- ``stars``: ``*`` (or ``t.*``) over a table with a denied column, or one that might have one
  (no schema, or a model filtered by the policy without a record of what it hid);
- ``qualified_column`` / ``unqualified_column``: a denied column, and whole-row references
  (``SELECT t FROM t``) that would read one. They return whether the column is decided;
  ``rules/names.py`` checks the rest against the schema. The sources of an aliased
  parenthesised join (``FROM (a JOIN b) AS j``: ``j.col``, ``j.*``, ``j``) are its tables';
- ``renamed_columns``: a column alias list (``FROM t AS x(a, b)``) that renames a hidden
  column (by position), or could (the positions unknown); ``renamed_groups``: one over an
  aliased join of a secret view or a table with hidden columns.
"""

from __future__ import annotations

from sqlglot import exp

from pg_mcp.core import policy as pol
from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.walk import Scope, Source, TableRef


def restrictive(ctx: Context) -> bool:
    """Whether the policy denies anything at all."""
    p = ctx.policy
    return bool(p.deny_schemas or p.deny_tables or p.deny_columns)


def table_denied(ctx: Context, ref: TableRef) -> bool:
    """Whether ``ref`` (bound to the schema already) is hidden (reported)."""
    pattern = _table_denial(ctx, ref)
    if pattern is None:
        return False
    ctx.problem(
        "ACCESS_DENIED",
        f"{ref.qualified} is hidden by the access policy (pattern {pattern!r}): "
        f"{ctx.text(ref.node, ref.qualified)}",
        ref.node,
        hint="query only tables the policy allows",
    )
    return True


def _table_denial(ctx: Context, ref: TableRef) -> str | None:
    policy = ctx.policy
    if ref.resolved_schema is not None:
        return pol.table_denial(policy, ref.resolved_schema, ref.name)
    # unqualified and not found: every schema it could come from, then any schema
    candidates = list(ctx.schema.search_path) if ctx.schema is not None else ["public"]
    for s in candidates:
        found = pol.table_denial(policy, s, ref.name)
        if found:
            return found
    return pol.table_denial(policy, None, ref.name)


def star_denial(ctx: Context, source: Source) -> tuple[str, str, bool] | None:
    """(column, pattern, certain) of a column a * over ``source`` would, or might, read
    although the policy denies it."""
    ref = source.ref
    if ref is None or ref.system or source.kind != "table":
        return None
    s = ref.resolved_schema  # None: not known, any schema counts
    model = ref.model
    if model is not None:
        for c in model.columns:
            pattern = pol.column_denial(ctx.policy, s, ref.name, c.name)
            if pattern:
                return c.name, pattern, True
        # A model from introspect has the denied columns removed already: then only a
        # record of what was removed, or a model known to be unfiltered, clears the *.
        hidden = getattr(model, "hidden_columns", None)
        if isinstance(hidden, int | list | tuple):
            if not hidden:
                return None
            first = hidden[0] if isinstance(hidden, list | tuple) else "(a hidden column)"
            return str(first), "the access policy", True
        if model_is_unfiltered(ctx):
            return None
    patterns = pol.column_patterns_for(ctx.policy, s, ref.name)
    if patterns:
        col = patterns[0].split(".")[-1]
        return (
            (col if not any(ch in col for ch in "*?[") else "a hidden column"),
            patterns[0],
            False,
        )
    return None


def model_is_unfiltered(ctx: Context) -> bool:
    """Whether the schema still shows some column the policy denies (so it was not
    filtered by the policy, and its column lists are complete)."""
    db = ctx.schema
    if db is None:
        return False
    if ctx.unfiltered is None:  # once per validation (only * under deny_columns needs it)
        ctx.unfiltered = any(
            pol.column_denial(ctx.policy, t.schema, t.name, c.name)
            for t in db.tables
            for c in t.columns
        )
    return ctx.unfiltered


def stars(ctx: Context) -> None:
    if not ctx.policy.deny_columns:
        return
    for node, qualifier, scope in ctx.facts.stars:
        if scope is None or (scope.exists and qualifier is None):
            continue
        sources = scope.named(qualifier) if qualifier else scope.sources
        for src in sources:
            found = star_denial(ctx, src)
            if found:
                col, pattern, certain = found
                what = f"column {col}" if col != "a hidden column" else col
                ctx.problem(
                    "ACCESS_DENIED",
                    f"{ctx.text(node, '*')} over {src.ref.qualified if src.ref else src.alias} "
                    f"{'would' if certain else 'might'} read {what}, hidden by the access policy "
                    f"(pattern {pattern!r})",
                    node,
                    hint="list the columns you need instead of *",
                )
                break


def column_denied(ctx: Context, node: exp.Column, ref: TableRef, column: str) -> bool:
    """Whether ``column`` of ``ref`` is hidden (reported)."""
    if ref.resolved_schema is not None:
        schemas: list[str | None] = [ref.resolved_schema]
    elif ctx.schema is not None:
        schemas = [*ctx.schema.search_path, None]
    else:
        schemas = [None]
    for sch in schemas:
        pattern = pol.column_denial(ctx.policy, sch, ref.name, column)
        if pattern:
            ctx.problem(
                "ACCESS_DENIED",
                f"column {column} of {ref.qualified} is hidden by the access policy (pattern {pattern!r}): "
                f"{ctx.text(node, column)}",
                node,
                hint="leave that column out",
            )
            return True
    return False


def _whole_row(ctx: Context, node: exp.Column, src: Source) -> bool:
    if src.kind == "group":
        return any(_whole_row(ctx, node, m) for m in src.expand())
    found = star_denial(ctx, src)
    if found:
        col, pattern, certain = found
        what = f"column {col}" if col != "a hidden column" else col
        ctx.problem(
            "ACCESS_DENIED",
            f"{ctx.text(node, src.alias or '')} is a whole-row reference to "
            f"{src.ref.qualified if src.ref else src.alias}, which {'would' if certain else 'might'} "
            f"read {what}, hidden by the access policy (pattern {pattern!r})",
            node,
            hint="select the columns you need by name",
        )
        return True
    return False


def qualified_column(
    ctx: Context,
    node: exp.Column,
    name: str,
    qualifier: str,
    schema: str | None,
    scope: Scope | None,
) -> Source | None:
    """The policy for ``[schema.]qualifier.name``: None when decided, else the table source
    whose schema model the column should be looked up in."""
    src = scope.qualified(qualifier, schema) if scope is not None else None
    if src is None:
        if schema is not None and pol.column_denial(ctx.policy, schema, qualifier, name):
            column_denied(ctx, node, TableRef(exp.Table(), schema, qualifier, None), name)
        return None
    if src.kind == "group":  # j.col of (a JOIN b) AS j: the column of a joined table
        for m in src.expand():
            if (
                m.kind == "table"
                and m.ref is not None
                and not m.ref.system
                and column_denied(ctx, node, m.ref, name)
            ):
                return None
        return None
    if src.kind != "table" or src.ref is None or src.ref.system:
        return None
    if column_denied(ctx, node, src.ref, name):
        return None
    return src


def unqualified_column(ctx: Context, node: exp.Column, name: str, scope: Scope) -> bool:
    """The policy for an unqualified ``name``: the column of a table in reach, or a
    whole-row reference. Whether that decided it."""
    for s in scope.chain():
        owner = None
        for src in s.sources:
            if (
                src.kind == "table"
                and src.ref is not None
                and src.ref.model is not None
                and (src.ref.model.column(name) is not None)
            ):
                owner = src
                break
        if owner is not None:
            column_denied(ctx, node, owner.ref, name)  # type: ignore[arg-type]
            return True
        for src in s.sources:
            if (
                src.kind == "table"
                and src.ref is not None
                and not src.ref.system
                and (column_denied(ctx, node, src.ref, name))
            ):
                return True
        for src in s.sources:
            if src.alias == name:
                _whole_row(ctx, node, src)
                return True
    return False


def renamed_columns(ctx: Context, ref: TableRef, n: int) -> None:
    """``FROM t AS x(a, b, ...)`` renames the first ``n`` columns of ``ref`` by position, so
    a name check cannot see which column ``b`` is: refused when it reaches a column the access
    policy hides (or, the columns unknown, when any could be hidden). A secret view's alias
    list is ``rules/secrets.py``'s ``renamed_view``."""
    policy = ctx.policy
    if not policy.deny_columns or ref.system:
        return
    if not pol.column_patterns_for(policy, ref.resolved_schema, ref.name):
        return
    model = ref.model
    hidden: str | None = None
    if model is None:
        hidden = "a hidden column"
    else:
        for col in model.columns[:n]:
            if pol.column_denial(policy, model.schema, ref.name, col.name):
                hidden = f"column {col.name}"
                break
        # a model with the denied columns removed (introspect) no longer tells which
        # column is at which position: then any hidden column may be renamed
        removed = getattr(model, "hidden_columns", None)
        if hidden is None and (
            bool(removed)
            if isinstance(removed, int | list | tuple)
            else not model_is_unfiltered(ctx)
        ):
            hidden = "a hidden column"
    if hidden is not None:
        ctx.problem(
            "ACCESS_DENIED",
            f"a column alias list over {ref.qualified} would rename {hidden}, hidden by "
            f"the access policy: {ctx.text(ref.node, ref.qualified)}",
            ref.node,
            hint="leave the column alias list out and select the columns you need by name",
        )


def renamed_groups(ctx: Context) -> None:
    """``(a JOIN b) AS j(x, y)``: the list renames the joined tables' columns by position;
    refused when one of them is a secret view or has columns the policy hides (the first
    such group only)."""
    policy = ctx.policy
    for group, _scope in ctx.facts.groups:
        if not group.renamed:
            continue
        for m in group.expand():
            ref = m.ref
            if ref is None:
                continue
            view = None
            if ref.catalog is None and ref.schema in (None, "pg_catalog"):
                view = pol.secret_view(policy, ref.name)
            hides = (
                bool(policy.deny_columns)
                and not ref.system
                and bool(pol.column_patterns_for(policy, ref.resolved_schema, ref.name))
            )
            if view is not None or hides:
                why = (
                    f"can show secrets ({view[0].reason})"
                    if view
                    else "has columns the access policy hides"
                )
                node = group.node
                assert node is not None
                ctx.problem(
                    "ACCESS_DENIED",
                    f"a column alias list over a join renames the columns of {ref.qualified}, "
                    f"which {why}: {ctx.text(node, group.alias or '')}",
                    node,
                    hint="leave the column alias list out and select the columns you need by name",
                )
                return
