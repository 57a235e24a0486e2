"""Function calls.

``denied_calls``: a call the reviewed built-in table denies (``pg_mcp.core.functions``) is
FORBIDDEN_FUNCTION, or ACCESS_DENIED for a function that reads a secret catalog (unless
policy.allow_secret_catalogs). ``user_functions``: a call that is not a built-in passes only
as a user or extension function of the schema model that policy.allow_functions names and
that is IMMUTABLE or STABLE (FUNCTION_NOT_ALLOWED, or FORBIDDEN_FUNCTION when named but
VOLATILE; without a schema none passes); a call in a schema the policy hides is
ACCESS_DENIED; an unqualified built-in that a VOLATILE user function overloads is
FORBIDDEN_FUNCTION.

Functions called without a call: ``explicit_operators``: ``a OPERATOR(schema.op) b`` outside
pg_catalog is FUNCTION_NOT_ALLOWED (a user-defined operator runs any function behind it);
``field_calls``: ``(t).f`` and ``(t.*).f`` are f(t) (attribute notation), the user-function
rule as for ``t.f``.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from pg_mcp.core import policy as pol
from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.parse import norm
from pg_mcp.core.validation.text import close


def denied_calls(ctx: Context) -> None:
    for call in ctx.facts.calls:
        fam = call.family
        if fam is None:
            continue
        shown = f"{call.schema}.{call.name}" if call.schema else call.name
        if fam.code == "ACCESS_DENIED":
            if ctx.policy.allow_secret_catalogs:
                continue
            ctx.problem(
                "ACCESS_DENIED",
                f"{shown}() reads a catalog that holds secrets ({fam.reason}): {ctx.text(call.node, shown)}",
                call.node,
                hint="set policy.allow_secret_catalogs to allow it",
                at=call.at,
            )
            continue
        ctx.problem(
            "FORBIDDEN_FUNCTION",
            f"{shown}() is never allowed ({fam.title}): {fam.reason}: {ctx.text(call.node, shown)}",
            call.node,
            hint="remove the call; pg-mcp only runs plain read-only queries",
            at=call.at,
        )


def user_functions(ctx: Context) -> None:
    """Resolve what is not an allowed built-in against the catalog (see the module's doc)."""
    policy = ctx.policy
    for call in ctx.facts.calls:
        if (
            call.schema is not None
            and not call.schema.startswith("pg_")
            and pol.schema_denial(policy, call.schema)
        ):
            ctx.problem(
                "ACCESS_DENIED",
                f"{call.schema}.{call.name}() lives in a schema hidden by the access policy: "
                f"{ctx.text(call.node, call.name)}",
                call.node,
                hint="call only functions of schemas the policy allows",
            )
            continue
        if call.pending:
            check_function(ctx, call.node, call.schema, call.name)
        elif ctx.schema is not None and call.schema is None:
            _check_overloads(ctx, call.node, call.name)


def explicit_operators(ctx: Context) -> None:
    """``a OPERATOR(schema.op) b`` calls the function behind the operator: only
    pg_catalog's operators (built-in functions) pass. An unqualified OPERATOR(op) is
    resolved through search_path, where a user-defined operator can run any function
    (a VOLATILE one that terminates other sessions, say): refused too."""
    for node, at in ctx.facts.operators:
        op = str(node.args.get("operator") or "")
        schema, _, name = op.rpartition(".")
        if schema.strip().strip('"').lower() == "pg_catalog":
            continue
        shown = op if schema else f"OPERATOR({op})"
        ctx.problem(
            "FUNCTION_NOT_ALLOWED",
            f"OPERATOR({op}) calls the function behind an operator that is not pg_catalog's, "
            f"which pg-mcp cannot judge: {ctx.text(node, shown)}",
            node,
            hint=f"write the operator plainly, or OPERATOR(pg_catalog.{name or op})",
            at=at,
        )


def field_calls(ctx: Context) -> None:
    """``(t).f`` and ``(t.*).f`` are f(t) when f is a function of t's row type: the
    user-function rule, as for t.f."""
    db = ctx.schema
    for node, _at in ctx.facts.fields:
        e = node.expression
        if isinstance(e, exp.Identifier):
            name = norm(e)
            if db is not None and db.functions_named(name):
                check_function(ctx, node, None, name)


def _candidates(ctx: Context, schema: str | None, name: str) -> list[Any]:
    db = ctx.schema
    if db is None:
        return []
    if schema is None:
        path = ("pg_catalog", *db.search_path)
        return [f for f in db.functions_named(name) if f.schema in path]
    return [f for f in db.functions_named(name) if f.schema == schema]


def _check_overloads(ctx: Context, node: exp.Expression, name: str) -> None:
    volatile = [f for f in _candidates(ctx, None, name) if f.volatility == "volatile"]
    if volatile:
        f = volatile[0]
        ctx.problem(
            "FORBIDDEN_FUNCTION",
            f"{name}() is a built-in, but {f.schema}.{f.name}() overloads it and is VOLATILE (it "
            f"may change data), and PostgreSQL may call it for these arguments: "
            f"{ctx.text(node, name)}",
            node,
            hint=f"write pg_catalog.{name}(...) to call the built-in",
        )


def check_function(ctx: Context, node: exp.Expression, schema: str | None, name: str) -> None:
    """The user-function rule for one call (or attribute notation: t.f means f(t))."""
    shown = f"{schema}.{name}" if schema else name
    text = ctx.text(node, shown)
    db = ctx.schema
    if db is None:
        ctx.problem(
            "FUNCTION_NOT_ALLOWED",
            f"{shown}() is not a reviewed read-only built-in, and without the database's "
            f"catalog pg-mcp cannot see what it is: {text}",
            node,
            hint="validate against the database (--db) and have an administrator allow it "
            'by name if it only reads: policy.allow_functions = ["schema.function"]',
        )
        return
    found = _candidates(ctx, schema, name)
    if not found:
        where = schema or ", ".join(db.search_path)
        pool = {f.name for f in db.functions}
        sugg = close(name, pool)
        ctx.problem(
            "FUNCTION_NOT_ALLOWED",
            f"{shown}() is neither a reviewed read-only built-in nor a function of the "
            f"catalog (searched: {where}): {text}",
            node,
            hint="call a built-in or an allowed user function"
            + (f"; did you mean {', '.join(sugg)}?" if sugg else ""),
            suggestions=sugg,
        )
        return
    if schema is None:  # the first schema of the path that has it wins
        order = {s: i for i, s in enumerate(("pg_catalog", *db.search_path))}
        first = min(order[f.schema] for f in found)
        found = [f for f in found if order[f.schema] == first]
    f = found[0]
    what = f"extension {f.extension}'s function" if f.extension else "user function"
    if not pol.is_function_allowed(ctx.policy, f.schema, f.name):
        ctx.problem(
            "FUNCTION_NOT_ALLOWED",
            f"{f.schema}.{f.name}() is a {what} that policy.allow_functions does not name: {text}",
            node,
            hint=f'if it only reads, an administrator can allow it: policy.allow_functions = ["{f.schema}.{f.name}"] '
            "(only IMMUTABLE or STABLE functions are accepted)",
        )
        return
    volatile = [g for g in found if g.volatility == "volatile"]
    if volatile and _reviewed_raw_page_reader(ctx, f):
        return  # pageinspect declares its readers VOLATILE; allow_raw_pages vouches for them
    if volatile:
        ctx.problem(
            "FORBIDDEN_FUNCTION",
            f"{f.schema}.{f.name}() is a VOLATILE {what} (it may change data); only IMMUTABLE or "
            f"STABLE functions are accepted, even when policy.allow_functions names them: {text}",
            node,
            hint="call another function, or have its owner declare it STABLE if it only reads",
        )


def _reviewed_raw_page_reader(ctx: Context, f: Any) -> bool:
    """A pageinspect reader (the raw_pages family) of the pageinspect extension, under
    policy.allow_raw_pages: read-only although its SQL declares no volatility."""
    fam = next(x for x in pol.SECRET_FAMILIES if x.key == "raw_pages")
    return bool(
        ctx.policy.allow_raw_pages
        and f.extension == "pageinspect"
        and f.name.lower() in fam.functions
    )
