"""What every rule is handed: the parsed query, the walk's facts, the schema and policy, and
the problems found so far (rules add to them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlglot import exp

from pg_mcp.core.validation.parse import Parsed
from pg_mcp.core.validation.verdict import AFTER_WALK, Problems
from pg_mcp.core.validation.walk import Facts

if TYPE_CHECKING:
    from pg_mcp.core.model import DatabaseSchema
    from pg_mcp.core.settings import Policy


class Context:
    def __init__(
        self,
        parsed: Parsed,
        facts: Facts,
        policy: Policy,
        schema: DatabaseSchema | None = None,
        database: str | None = None,
        problems: Problems | None = None,
    ) -> None:
        self.parsed = parsed
        self.facts = facts
        self.policy = policy
        self.schema = schema
        self.database = database  # names the database in messages
        self.problems = Problems() if problems is None else problems
        self.unfiltered: bool | None = None  # memo of rules.access.model_is_unfiltered

    @property
    def sql(self) -> str:
        return self.parsed.sql

    def text(self, node: exp.Expression, fallback: str = "") -> str:
        """The node's text, for a message."""
        return self.parsed.text(node, fallback)

    def problem(
        self,
        code: str,
        message: str,
        node: exp.Expression | None = None,
        *,
        hint: str | None = None,
        suggestions: list[str] | None = None,
        position: int | None = None,
        lazy: Callable[[], list[str]] | None = None,
        at: int = AFTER_WALK,
    ) -> None:
        """Report a problem at ``node`` (or ``position``); ``at``: the walk step of the fact."""
        if position is None and node is not None:
            position = self.parsed.position(node)
        self.problems.add(
            code, message, position, hint=hint, suggestions=suggestions, lazy=lazy, at=at
        )
