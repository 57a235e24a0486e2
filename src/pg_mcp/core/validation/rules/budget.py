"""Bounds on the validator's own work (TOO_COMPLEX): identifiers counted, and a time budget on
an injected clock, looked at after parsing, every few hundred walk steps, and at the end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlglot.tokens import TokenType

from pg_mcp.core.validation.verdict import refuse

_NAMES = (TokenType.VAR, TokenType.IDENTIFIER)


def count_identifiers(tokens: list[Any], limit: int) -> None:
    """Refuse when sqlglot's tokens name more than ``limit`` identifiers."""
    limit = int(limit)
    if len(tokens) <= limit:
        return
    count = sum(1 for t in tokens if t.token_type in _NAMES)
    if count > limit:
        refuse(
            "TOO_COMPLEX",
            f"the SQL names {count:,} identifiers; at most {limit:,} are checked",
            hint="send a smaller query, or raise [limits] max_identifiers",
        )


class Deadline:
    """``budget`` seconds on ``clock`` from now; ``check()`` refuses once they are spent."""

    def __init__(self, budget: float, clock: Callable[[], float]) -> None:
        self.budget = float(budget)
        self.clock = clock
        self.deadline = clock() + self.budget

    def check(self) -> None:
        if self.clock() > self.deadline:
            refuse(
                "TOO_COMPLEX",
                f"the query took longer than the validation budget ({self.budget:g} s) to check",
                hint="send a simpler query, or raise [limits] validation_budget",
            )
