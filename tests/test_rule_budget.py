"""rules/budget.py alone: the identifier count and the deadline on an injected clock."""

from __future__ import annotations

import itertools

import pytest

from pg_mcp.core.validation.parse import tools
from pg_mcp.core.validation.rules import budget
from pg_mcp.core.validation.verdict import Refusal
from pg_mcp.core.validation.walk import BUDGET_EVERY, walk
from rulekit import context

# (sql, limit, refused)
IDENTIFIERS = [
    ("SELECT a, b, c FROM t", 4, False),
    ("SELECT a, b, c FROM t", 3, True),
    ("SELECT 1, 2, 3, 4, 5, 6", 2, False),  # numbers are not names
    ("SELECT 'a', 'b', 'c'", 1, False),
    ('SELECT "a", "b" FROM "t"', 2, True),
]


@pytest.mark.parametrize(("sql", "limit", "refused"), IDENTIFIERS)
def test_count_identifiers(sql: str, limit: int, refused: bool) -> None:
    tokens = context(sql).parsed.tokens
    if not refused:
        budget.count_identifiers(tokens, limit)
        return
    with pytest.raises(Refusal) as caught:
        budget.count_identifiers(tokens, limit)
    verdict = caught.value.verdict
    assert verdict.code == "TOO_COMPLEX" and "max_identifiers" in (verdict.hint or "")


def test_the_deadline_runs_on_its_clock() -> None:
    now = [0.0]
    deadline = budget.Deadline(2.0, lambda: now[0])
    deadline.check()
    now[0] = 2.0
    deadline.check()  # not past it yet
    now[0] = 2.5
    with pytest.raises(Refusal) as caught:
        deadline.check()
    assert caught.value.verdict.code == "TOO_COMPLEX"
    assert "validation budget (2 s)" in caught.value.verdict.message


def test_the_walk_looks_at_the_clock_every_few_hundred_steps() -> None:
    ctx = context("SELECT " + " + ".join(f"c{i}" for i in range(2_000)) + " FROM t")
    looks = itertools.count()
    walk(ctx.parsed, tools(), names=False, in_budget=lambda: next(looks))
    assert next(looks) >= 2_000 // BUDGET_EVERY
