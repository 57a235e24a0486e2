"""validate_sql and the lexer, as they were imported before the validator became a package.

The validator lives in ``pg_mcp.core.validation`` (one module per stage, ``rules/`` one per
rule family; its docstring is the map). This module re-exports its public names.
"""

from pg_mcp.core import validation as _validation
from pg_mcp.core.validation import *  # noqa: F403  (the package's public names, listed once there)

__all__ = _validation.__all__
