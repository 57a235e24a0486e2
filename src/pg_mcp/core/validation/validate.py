"""validate_sql: the pipeline, stage by stage, and the rules in order.

text -> statements -> parse -> walk -> rules on the walk's facts -> verdict. The stages up
to the walk refuse at once (a ``Refusal``); the rules report problems, and the most
fundamental one is the verdict (``verdict.RANK``). Names (the access policy, the schema) are
looked at only when no write and no denied function was found.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from pg_mcp.core.validation import statements
from pg_mcp.core.validation.calls import is_call
from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.parse import Tools, norm, parse
from pg_mcp.core.validation.parse import tools as thread_tools
from pg_mcp.core.validation.rules import access, budget, functions, names, secrets, writes
from pg_mcp.core.validation.text import MAX_SQL_CHARS, check_text
from pg_mcp.core.validation.verdict import ALLOWED, Refusal, Verdict, refuse, refused, verdict_of
from pg_mcp.core.validation.walk import Scope, walk

if TYPE_CHECKING:
    from pg_mcp.core.model import DatabaseSchema
    from pg_mcp.core.settings import Policy, Settings

_LOG = logging.getLogger("pg_mcp.validator")


def validate_sql(
    sql: Any,
    database: str | None = None,
    *,
    schema: DatabaseSchema | None = None,
    settings: Settings | None = None,
    clock: Callable[[], float] | None = None,
    load_schema: Callable[[], DatabaseSchema] | None = None,
    tools: Tools | None = None,
) -> Verdict:
    """Decide whether ``sql`` is exactly one read-only query pg-mcp may run. Never raises.

    The work is bounded: ``settings.max_sql_chars``, ``max_identifiers`` and a time budget of
    ``validation_budget`` seconds on ``clock`` (``time.monotonic`` unless given) (TOO_COMPLEX).

    With a ``schema`` (or, when none is given, the one ``load_schema()`` returns: it is called
    only once a query needs its names checked, and a PgMcpError it raises becomes the refusal),
    names and user-function volatility are checked against it; ``database`` names it in
    messages. The access policy comes from ``settings.policy`` (defaults when None).
    ``tools``: sqlglot's tokenizer and parser to use (this thread's unless given).
    """
    try:
        if settings is None:
            from pg_mcp.core.settings import Settings

            settings = Settings()
        return _validate(sql, database, schema, settings, clock, load_schema, tools)
    except Refusal as r:
        return r.verdict
    except RecursionError:
        return refused(
            "PARSE_ERROR", "the query is too deeply nested to analyse", hint="simplify the query"
        )
    except Exception as exc:  # an internal failure is a refusal, never an acceptance
        _LOG.warning("validator failure: %s", type(exc).__name__, exc_info=True)
        return refused(
            "PARSE_ERROR",
            f"the query could not be analysed ({type(exc).__name__}); {ALLOWED}",
            hint="simplify the query or report this as a pg-mcp bug",
        )


def _validate(
    raw: Any,
    database: str | None,
    schema: DatabaseSchema | None,
    settings: Settings,
    clock: Callable[[], float] | None,
    load_schema: Callable[[], DatabaseSchema] | None,
    tools: Tools | None,
) -> Verdict:
    policy = settings.policy
    deadline = budget.Deadline(settings.validation_budget, clock or time.monotonic)
    sql = check_text(raw, settings.max_sql_chars)
    stmt = statements.one_statement(sql)
    tools = tools or thread_tools()
    parsed = parse(sql, stmt.start, tools)
    budget.count_identifiers(parsed.tokens, settings.max_identifiers)
    deadline.check()
    # scopes' sources and aliases, columns and stars: only read to check column names
    # (a database schema) or column denials, or a secret view's * or whole row
    want_names = bool(load_schema is not None or schema is not None or policy.deny_columns)
    if not want_names:
        low = sql.lower()
        want_names = "u&" in low or any(v in low for v in secrets.SECRET_VIEWS)
    facts = walk(parsed, tools, names=want_names, in_budget=deadline.check)
    ctx = Context(parsed, facts, policy, schema, database)
    # the rules on what the walk met (their problems rank in walk order)
    writes.nested_statements(ctx)
    writes.select_clauses(ctx)
    secrets.secret_columns(ctx)
    secrets.secret_calls(ctx)
    functions.denied_calls(ctx)
    functions.explicit_operators(ctx)
    deadline.check()
    if not ctx.problems.fundamental():
        if ctx.schema is None and load_schema is not None:
            ctx.schema = _load(load_schema, database, settings)
        _check_names(ctx)
    tables = list(dict.fromkeys(ref.qualified for ref in facts.tables))
    funcs = list(dict.fromkeys(c.name for c in facts.calls if is_call(c.node, tools)))
    return verdict_of(ctx.problems, stmt.kind, tables, funcs)


def _check_names(ctx: Context) -> None:
    """The rules on names: relations, stars, columns, user functions, secret views, column
    alias lists."""
    facts, policy = ctx.facts, ctx.policy
    restrictive = access.restrictive(ctx)
    for ref in facts.tables:
        if secrets.secret_relation(ctx, ref):
            continue
        names.resolve(ctx, ref)
        if ref.system:
            continue
        if restrictive and access.table_denied(ctx, ref):
            continue
        names.unknown_table(ctx, ref)
    if policy.deny_columns:
        access.stars(ctx)
    if policy.deny_columns or ctx.schema is not None:
        for node, scope in facts.columns:
            _check_column(ctx, node, scope)
    functions.user_functions(ctx)
    functions.field_calls(ctx)
    secrets.secret_views(ctx)
    for ref, n in facts.renamed:  # FROM t AS x(a, b): columns renamed by position
        if not secrets.renamed_view(ctx, ref):
            access.renamed_columns(ctx, ref, n)
    access.renamed_groups(ctx)


def _check_column(ctx: Context, node: exp.Column, scope: Scope | None) -> None:
    name = norm(node.this)
    table = node.args.get("table")
    if table is not None:
        qualifier = norm(table)
        db = node.args.get("db")
        schema = (norm(db) or None) if db is not None else None
        src = access.qualified_column(ctx, node, name, qualifier, schema, scope)
        if src is not None:
            names.qualified_column(ctx, node, name, qualifier, src)
    elif scope is not None and not access.unqualified_column(ctx, node, name, scope):
        names.unqualified_column(ctx, node, name, scope)


def _load(
    load_schema: Callable[[], DatabaseSchema], database: str | None, settings: Settings
) -> DatabaseSchema:
    from pg_mcp.core.errors import PgMcpError
    from pg_mcp.core.secrets import Redactor

    redact = Redactor(settings.secrets())
    try:
        return load_schema()
    except PgMcpError as e:
        refuse(e.code, redact(e.message), hint=redact(e.hint) if e.hint else None)
    except Exception as e:
        refuse(
            "CONNECTION_ERROR",
            f"the schema of database {database!r} could not be loaded ({type(e).__name__})",
            hint="check that the database is reachable, or validate without a database",
        )


def context_for(
    sql: str,
    *,
    schema: DatabaseSchema | None = None,
    policy: Policy | None = None,
    database: str | None = None,
    tools: Tools | None = None,
) -> Context:
    """``sql`` through the stages up to the walk (scopes always collected), and a Context on
    it: to call one rule alone, as the rule tests do. Raises Refusal where a stage refuses."""
    if policy is None:
        from pg_mcp.core.settings import Policy

        policy = Policy()
    text = check_text(sql, MAX_SQL_CHARS)
    stmt = statements.one_statement(text)
    tools = tools or thread_tools()
    parsed = parse(text, stmt.start, tools)
    return Context(parsed, walk(parsed, tools, names=True), policy, schema, database)
