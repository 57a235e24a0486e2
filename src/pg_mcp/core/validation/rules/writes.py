"""Writes inside a query: a statement node (NOT_READ_ONLY), INSERT/UPDATE/DELETE/MERGE in a
CTE (DATA_MODIFYING_CTE), SELECT ... INTO (SELECT_INTO), FOR UPDATE/SHARE (LOCKING_CLAUSE)."""

from __future__ import annotations

from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.lexer import keyword_position
from pg_mcp.core.validation.parse import DML_NODES
from pg_mcp.core.validation.text import fragment
from pg_mcp.core.validation.verdict import ALLOWED


def nested_statements(ctx: Context) -> None:
    for st in ctx.facts.statements:
        node = st.node
        shown = st.where or node
        name = node.key.upper()
        text = ctx.text(shown, name)
        if st.in_cte and isinstance(node, DML_NODES):
            ctx.problem(
                "DATA_MODIFYING_CTE",
                f"the WITH clause contains {name} (a data-modifying CTE); every WITH query must be a SELECT: {text}",
                shown,
                hint="keep only SELECT queries in WITH",
                at=st.at,
            )
        else:
            ctx.problem(
                "NOT_READ_ONLY",
                f"{name} is not a read-only query; {ALLOWED}: {text}",
                shown,
                hint="pg-mcp only reads data: rewrite the request as a SELECT",
                at=st.at,
            )


def select_clauses(ctx: Context) -> None:
    """SELECT ... INTO and locking clauses (positions: the first INTO / FOR keyword)."""
    sql, base = ctx.sql, ctx.parsed.base
    for node, at in ctx.facts.selects:
        into = node.args.get("into")
        if into is not None:
            ctx.problem(
                "SELECT_INTO",
                f"SELECT ... INTO creates a table ({ctx.text(into, 'INTO')}); {ALLOWED}",
                into,
                hint="remove the INTO clause to get the rows back",
                position=keyword_position(sql, base, "INTO"),
                at=at,
            )
        locks = node.args.get("locks")
        if locks:
            lock = locks[0]
            if lock.args.get("update"):
                what = "FOR NO KEY UPDATE" if lock.args.get("key") else "FOR UPDATE"
            else:
                what = "FOR KEY SHARE" if lock.args.get("key") else "FOR SHARE"
            pos = keyword_position(sql, base, "FOR", require_next=("UPDATE", "SHARE", "NO", "KEY"))
            shown = fragment(sql[pos - 1 :]) if pos else what
            ctx.problem(
                "LOCKING_CLAUSE",
                f"{what} takes row locks; a read-only query may not: {shown}",
                hint="remove the FOR UPDATE / FOR SHARE clause",
                position=pos,
                at=at,
            )
