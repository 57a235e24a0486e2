"""Development tools, not shipped in the wheel: the fixture databases and sample-database
loader, the TEST_QUERIES parser and the eval scorer. May import any pg_mcp layer; pg_mcp imports
it only from the CLI commands that exist for development (fixtures, sample-dbs, eval).
"""
