"""Calling one validation rule alone: the SQL through the stages up to the walk
(``context_for``), the rule, and what it reported. Used by the test_rule_*.py tables."""

from __future__ import annotations

from collections.abc import Callable

from pg_mcp.core.model import Column, DatabaseSchema, Function, Table
from pg_mcp.core.settings import Policy
from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.rules import names
from pg_mcp.core.validation.validate import context_for

Rule = Callable[[Context], object]


def _table(schema: str, name: str, cols: list[str], kind: str = "table") -> Table:
    return Table(schema=schema, name=name, kind=kind, columns=[Column(c, "text") for c in cols])


def shop() -> DatabaseSchema:
    """A small catalog: public tables, hr.employees, a materialized view, user functions."""
    return DatabaseSchema(
        name="shop",
        schemas=["public", "hr", "analytics"],
        search_path=["public"],
        tables=[
            _table("public", "customers", ["id", "name", "email", "country"]),
            _table("public", "orders", ["id", "customer_id", "status", "total"]),
            _table("public", "users", ["id", "login", "password_hash"]),
            _table("hr", "employees", ["id", "name", "dept", "salary"]),
            _table("analytics", "daily", ["day", "revenue"], kind="materialized view"),
        ],
        functions=[
            Function("public", "slugify", "t text", "text", "sql", "immutable"),
            Function("public", "log_visit", "id integer", "void", "plpgsql", "volatile"),
            Function("public", "lower", "x integer", "integer", "plpgsql", "volatile"),
            Function("analytics", "refresh_all", "", "void", "plpgsql", "volatile"),
        ],
    )


def context(
    sql: str, *, schema: DatabaseSchema | None = None, bind: bool = False, **policy: object
) -> Context:
    """A Context on ``sql``; ``bind``: its relations bound to ``schema`` first (as validate
    does before the access and name rules)."""
    ctx = context_for(sql, schema=schema, policy=Policy(**policy))  # type: ignore[arg-type]
    if bind:
        for ref in ctx.facts.tables:
            names.resolve(ctx, ref)
    return ctx


def reported(
    rule: Rule,
    sql: str,
    *,
    schema: DatabaseSchema | None = None,
    bind: bool = False,
    **policy: object,
) -> list[tuple[str, str]]:
    """(code, message) of every problem ``rule`` reports on ``sql``."""
    ctx = context(sql, schema=schema, bind=bind, **policy)
    rule(ctx)
    return [(p.code, p.message) for p in ctx.problems]


def codes(rule: Rule, sql: str, **kw: object) -> list[str]:
    return [code for code, _ in reported(rule, sql, **kw)]  # type: ignore[arg-type]
