"""One root exception with stable codes.

Every refusal pg-mcp makes carries a code from ``CODES`` (stable: clients and
docs rely on it), a one-line message, and optionally a hint and a position.
"""

from __future__ import annotations

from typing import Any

# code -> one-line meaning (the README error table is checked against this).
CODES: dict[str, str] = {
    # validation
    "PARSE_ERROR": "The SQL does not parse as PostgreSQL.",
    "EMPTY": "No statement was given (only whitespace or comments).",
    "MULTIPLE_STATEMENTS": "More than one statement; exactly one query is allowed.",
    "NOT_READ_ONLY": "The statement is not a read-only query (write, DDL, DCL, transaction, session or utility).",
    "DATA_MODIFYING_CTE": "A WITH clause contains INSERT, UPDATE, DELETE or MERGE.",
    "SELECT_INTO": "SELECT ... INTO creates a table.",
    "LOCKING_CLAUSE": "FOR UPDATE / SHARE / NO KEY UPDATE / KEY SHARE takes row locks.",
    "EXPLAIN_ANALYZE": "EXPLAIN ANALYZE executes the statement.",
    "FORBIDDEN_FUNCTION": "The query calls a function that is never allowed (a denied built-in, or a VOLATILE user or extension function).",
    "ACCESS_DENIED": "The query reads a schema, table, column or catalog hidden by the access policy.",
    "FUNCTION_NOT_ALLOWED": "The query calls a function that is neither a reviewed read-only built-in nor a user or extension function that policy.allow_functions names.",
    "UNKNOWN_OBJECT": "A table or column does not exist in the named database.",
    "TOO_COMPLEX": "The SQL is longer, names more identifiers or takes longer to check than the "
    "validator's limits ([limits] max_sql_chars, max_identifiers, validation_budget).",
    # execution
    "TIMEOUT": "The statement ran longer than the statement timeout and was cancelled.",
    "COST_LIMIT": "The planner's estimate exceeds the configured EXPLAIN cost or row limit.",
    "READ_ONLY_VIOLATION": "The database refused a write inside the read-only transaction.",
    "DB_ERROR": "PostgreSQL reported an error (SQLSTATE included).",
    "CONNECTION_ERROR": "The database server could not be reached.",
    "UNKNOWN_DATABASE": "No reachable database has that name.",
    "RESULT_TOO_LARGE": "The serialised result exceeds the byte budget even for a single row.",
    "PRIVILEGED_ROLE": "The role is a superuser or may read or write server files or run programs; "
    "pg-mcp runs no query with it.",
    # configuration / usage
    "CONFIG_ERROR": "The configuration file or environment is invalid.",
    "DATABASE_REQUIRED": "Several databases are reachable; name one.",
    # ask / model
    "LLM_ERROR": "The model endpoint failed (after retries) or returned something unusable.",
    "LLM_TIMEOUT": "The model did not answer within the deadline.",
    "RATE_LIMITED": "Too many ask calls; the token bucket is empty.",
    "LLM_NOT_CONFIGURED": "ask needs OPENAI_API_KEY (or OPENAI_BASE_URL for a local endpoint).",
    "NO_ANSWER": "ask used every attempt without an acceptable query.",
}


class PgMcpError(Exception):
    """Root of every error pg-mcp raises on purpose."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        position: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.position = position
        self.details = details or {}

    @classmethod
    def of(cls, outcome: Any, default_code: str = "DB_ERROR") -> PgMcpError:
        """The error a refused ``Verdict`` or a failed ``RunResult`` stands for: the one
        conversion (``RunResult.failure`` is its inverse: ``sqlstate`` travels in ``details``)."""
        details = dict(getattr(outcome, "details", None) or {})
        sqlstate = getattr(outcome, "sqlstate", None)
        if sqlstate:
            details["sqlstate"] = sqlstate
        return cls(
            getattr(outcome, "code", None) or default_code,
            getattr(outcome, "message", "") or "the query failed",
            hint=getattr(outcome, "hint", None),
            position=getattr(outcome, "position", None),
            details=details or None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": False, "code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.position is not None:
            out["position"] = self.position
        out.update(self.details)
        return out

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
