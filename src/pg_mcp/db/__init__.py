"""Database I/O on psycopg's public API: the embedded server, discovery, connection pools,
the read-only executor and its watchdog, introspection into the core's schema model, the schema
cache, the audit log and ``doctor``. May import ``pg_mcp.core`` only.
"""
