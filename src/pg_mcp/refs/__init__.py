"""References: Markdown rendered with Jinja2 from the schema model (``templates/``), and the
``describe`` exploration built on the executor. May import ``pg_mcp.db`` and ``pg_mcp.core``.
"""
