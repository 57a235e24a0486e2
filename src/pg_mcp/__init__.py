"""pg-mcp: ask PostgreSQL questions in plain language; get back safe SQL or its result.

The public API is imported lazily so that ``pg-mcp --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pg_mcp.core.version import VERSION as __version__

__all__ = [
    "PgMcpError",
    "__version__",
    "build_server",
    "load_settings",
    "run_readonly",
    "validate_sql",
]

_LAZY = {
    "validate_sql": "pg_mcp.db.checker",
    "run_readonly": "pg_mcp.db.executor",
    "PgMcpError": "pg_mcp.core.errors",
    "load_settings": "pg_mcp.core.settings",
    "build_server": "pg_mcp.server.app",
}

if TYPE_CHECKING:
    from pg_mcp.core.errors import PgMcpError
    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.checker import validate_sql
    from pg_mcp.db.executor import run_readonly
    from pg_mcp.server.app import build_server


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pg_mcp' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
