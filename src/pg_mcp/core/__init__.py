"""The safety core, pure: validation rules, function and access policy, the schema model,
value conversion, redaction and quoting of database text, settings and error codes.

No I/O here: nothing in ``pg_mcp.core`` opens a connection, a socket or a subprocess, and it imports
no other ``pg_mcp`` layer (checked by import-linter in ``make test``). The schema is passed in.
"""
