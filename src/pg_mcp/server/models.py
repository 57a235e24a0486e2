"""What the MCP tools return: the pydantic models of their structured output (the SDK derives
each tool's output schema from them).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SqlVerdict(BaseModel):
    """What validate_sql decided about one piece of SQL."""

    ok: bool = Field(
        description="True when the SQL is exactly one read-only query pg-mcp would run."
    )
    code: str | None = Field(
        None, description="Stable refusal code when ok is false (NOT_READ_ONLY, ...)."
    )
    message: str = Field("", description="One-line explanation.")
    hint: str | None = Field(None, description="How to fix the query, when there is a useful hint.")
    position: int | None = Field(
        None, description="Character offset of the problem in the SQL, if known."
    )
    kind: str | None = Field(
        None, description="Statement kind (select, values, show, explain, ...)."
    )
    tables: list[str] = Field(default_factory=list, description="Relations read, as schema.table.")
    functions: list[str] = Field(default_factory=list, description="Functions called.")
    suggestions: list[str] = Field(
        default_factory=list, description="Close matches for an unknown table or column name."
    )
    database: str | None = Field(
        None,
        description="Database whose schema the names were checked against (None: not checked).",
    )


class ResultColumn(BaseModel):
    name: str
    type: str = Field(description="PostgreSQL type name.")


class QueryResult(BaseModel):
    """Rows of one read-only query."""

    database: str = Field(description="Database the query ran on.")
    columns: list[ResultColumn]
    rows: list[list[Any]] = Field(description="One JSON array per row, values in column order.")
    row_count: int = Field(description="Rows returned (after the cap).")
    truncated: bool = Field(description="True when the row or byte cap cut the result short.")
    truncated_reason: str | None = Field(None, description="max_rows or max_bytes, when truncated.")
    elapsed_ms: float = Field(description="Execution time in milliseconds.")


class AskRows(BaseModel):
    """The rows ask's SQL returned (capped)."""

    columns: list[ResultColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool


class AskAnswer(BaseModel):
    """ask's answer: the SQL it settled on and, when asked for, the result."""

    model_config = ConfigDict(extra="allow")

    database: str = Field(description="Database the question was answered on.")
    database_chosen: bool = Field(
        False, description="True when ask chose the database itself (none was given)."
    )
    sql: str = Field(description="The validated, read-only SQL.")
    explanation: str | None = Field(None, description="A short explanation of the SQL.")
    tables: list[str] = Field(default_factory=list, description="Tables the SQL uses.")
    result: AskRows | None = Field(
        None, description="The rows (return_type result or both; absent for sql)."
    )
    score: int | None = Field(None, description="The judge's score, 0-10.")
    reasoning: str | None = Field(None, description="The judge's reasoning.")
    attempts: int = Field(description="Generation attempts used.")
    low_confidence: bool = Field(
        False, description="True when no attempt reached the minimum score (best attempt returned)."
    )
    warning: str | None = Field(None, description="Why the loop stopped early, if it did.")
    tokens: dict[str, int] = Field(
        default_factory=dict, description="Model tokens used: prompt, completion, total."
    )
    elapsed_ms: float | None = None
