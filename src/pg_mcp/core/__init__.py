"""The safety core, pure: validation rules, function and access policy, the schema model,
value conversion, redaction and quoting of database text, settings and error codes.

``validation/`` decides whether SQL may run, one module per stage: ``text`` (input checks),
``lexer`` (PostgreSQL's tokens, statement splitting), ``statements`` (one statement, its first
keyword, EXPLAIN's options), ``parse`` (sqlglot, per-thread ``Tools``), ``calls`` (what a call
node names), ``walk`` (the one walk: ``Facts``), ``context``, ``verdict`` (Verdict, problems,
ranking), ``validate`` (``validate_sql``: the stages and rules in order); and ``rules/``, one
module per rule family: ``writes``, ``functions``, ``secrets``, ``access``, ``names``,
``budget``. ``validator`` re-exports its public names. ``functions`` is the reviewed built-in
table, ``policy`` the access policy and the secret families.

No I/O here: nothing in ``pg_mcp.core`` opens a connection, a socket or a subprocess, and it imports
no other ``pg_mcp`` layer (checked by import-linter in ``make test``). The schema is passed in.
"""
