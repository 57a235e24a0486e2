"""The MCP server: ``build_server(settings)`` with lifespan-owned state, its tools and
resources, HTTP bearer auth and metrics. May import ask, refs, db and core; nothing imports it
except the CLI.
"""
