"""validate_sql and the lexer, as they were imported before the validator became a package.

The validator lives in ``pg_mcp.core.validation`` (one module per stage, ``rules/`` one per
rule family; its docstring is the map). This module re-exports its public names.
"""

from pg_mcp.core.validation import (
    ALLOWED,
    FRAGMENT_CHARS,
    MAX_NESTING,
    MAX_SQL_CHARS,
    Lex,
    LexError,
    Tools,
    Verdict,
    iter_lex,
    pg_lex,
    split_statements,
    statement_starts,
    validate_sql,
)

__all__ = [
    "ALLOWED",
    "FRAGMENT_CHARS",
    "MAX_NESTING",
    "MAX_SQL_CHARS",
    "Lex",
    "LexError",
    "Tools",
    "Verdict",
    "iter_lex",
    "pg_lex",
    "split_statements",
    "statement_starts",
    "validate_sql",
]
