"""pg-mcp's version (one place; ``pg_mcp.__version__`` re-exports it)."""

VERSION = "0.1.0"
