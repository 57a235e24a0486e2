"""The verdict, refusals and problems.

A *refusal* (``refuse``) stops validation at once: the text, the statement or the parse is
wrong. A *problem* (``Problems.add``) is what a rule finds in a parsed query; all rules run,
and the most fundamental problem is reported (``RANK``, then where it was found).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, NoReturn

ALLOWED = "only one read-only query is allowed: SELECT, WITH ... SELECT, VALUES, TABLE or EXPLAIN without ANALYZE"

# problem ranks: the most fundamental problem wins
RANK: Mapping[str, int] = MappingProxyType(
    {
        "NOT_READ_ONLY": 0,
        "DATA_MODIFYING_CTE": 1,
        "SELECT_INTO": 2,
        "LOCKING_CLAUSE": 3,
        "FORBIDDEN_FUNCTION": 4,
        "ACCESS_DENIED": 5,
        "FUNCTION_NOT_ALLOWED": 6,
        "UNKNOWN_OBJECT": 7,
        "TOO_COMPLEX": 8,
    }
)
AFTER_WALK = 1 << 62  # the ``at`` of problems found after the walk (they rank after its own)


@dataclass
class Verdict:
    """What validate_sql decided.

    ``position`` is a 1-based character position in the SQL (like PostgreSQL's),
    ``kind`` one of select / values / table / explain, ``tables`` the relations
    read as "schema.table" (schema resolved when a database schema is known),
    ``functions`` the functions called (lower case, unqualified).
    """

    ok: bool
    code: str | None = None
    message: str = ""
    hint: str | None = None
    position: int | None = None
    kind: str | None = None
    tables: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.position is not None:
            out["position"] = self.position
        out["kind"] = self.kind
        out["tables"] = list(self.tables)
        out["functions"] = list(self.functions)
        if self.suggestions:
            out["suggestions"] = list(self.suggestions)
        return out


class Refusal(Exception):
    """Raised to stop validation with ``verdict``; validate_sql returns it."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


def refused(
    code: str, message: str, *, hint: str | None = None, position: int | None = None
) -> Verdict:
    return Verdict(ok=False, code=code, message=message, hint=hint, position=position)


def refuse(
    code: str, message: str, *, hint: str | None = None, position: int | None = None
) -> NoReturn:
    raise Refusal(refused(code, message, hint=hint, position=position))


class Problem(NamedTuple):
    rank: int
    at: int  # the walk step it was found at (AFTER_WALK for the checks after the walk)
    seq: int
    code: str
    message: str
    hint: str | None
    position: int | None
    suggestions: list[str]
    lazy: Callable[[], list[str]] | None = None  # suggestions, computed only if this one is shown


class Problems(list[Problem]):
    """The problems the rules found, in the order they found them."""

    def add(
        self,
        code: str,
        message: str,
        position: int | None,
        *,
        hint: str | None = None,
        suggestions: list[str] | None = None,
        lazy: Callable[[], list[str]] | None = None,
        at: int = AFTER_WALK,
    ) -> None:
        self.append(
            Problem(
                RANK[code], at, len(self), code, message, hint, position, suggestions or [], lazy
            )
        )

    def fundamental(self) -> bool:
        """Whether a problem makes looking at names pointless (a write or a denied function)."""
        limit = RANK["FORBIDDEN_FUNCTION"]
        return any(p.rank <= limit for p in self)

    def has(self, code: str) -> bool:
        return any(p.code == code for p in self)

    def best(self) -> Problem | None:
        """The one reported: the lowest rank; then the earliest in the walk, then found first."""
        return min(self, key=lambda p: (p.rank, p.at, p.seq)) if self else None


def verdict_of(problems: Problems, kind: str, tables: list[str], functions: list[str]) -> Verdict:
    verdict = Verdict(ok=True, kind=kind, tables=tables, functions=functions)
    best = problems.best()
    if best is not None:
        verdict.ok = False
        verdict.code = best.code
        verdict.message = best.message
        verdict.hint = best.hint
        verdict.position = best.position
        verdict.suggestions = best.suggestions
        if best.lazy is not None:  # the "did you mean" of the one problem reported
            sugg = best.lazy()
            verdict.suggestions = sugg
            if sugg:
                verdict.hint = f"did you mean {' or '.join(sugg)}?"
    else:
        what = {
            "explain": "EXPLAIN of a read-only query",
            "values": "VALUES list",
            "table": "TABLE query",
        }
        verdict.message = f"accepted: one {what.get(kind, 'read-only SELECT query')}"
    return verdict
