"""validate_sql: decide, without running anything, whether SQL may run.

The modules, in pipeline order (each read alone; ``validate.py`` runs them):

- ``text``: the input checks; ``lexer``: PostgreSQL's tokens and statement splitting;
  ``statements``: one statement, its first keyword, EXPLAIN's options;
  ``parse``: sqlglot (per-thread ``Tools``), parse errors, node positions and texts;
  ``calls``: what a call node names; ``walk``: the one walk, producing ``Facts``;
  ``context``: what rules are handed; ``verdict``: Verdict, refusals, problems, ranking;
- ``rules/``: ``writes``, ``functions``, ``secrets``, ``access``, ``names``, ``budget``;
- ``validate``: ``validate_sql``, the stages and the rules in order.

Pure core: no I/O. The schema is passed in, or a loader for it is (``load_schema``, called
only when a query got far enough to need names checked); caching verdicts and schemas is the
caller's business (``pg_mcp.db.checker``). The decision is an
**allowlist**: exactly one statement, and that statement a query (SELECT with
set operations, WITH whose every CTE is a query, VALUES, TABLE, or EXPLAIN of
such a query without ANALYZE). Everything else is refused with a stable code.

How it decides, in order (cheapest and most fundamental first):

1. The text itself (``text``): a string, no NUL, valid UTF-8, not absurdly long.
2. Statement splitting (``lexer``, ``statements``) with a small lexer that follows
   PostgreSQL's own rules (standard strings, E'' escapes, dollar quoting with identifier-like tags,
   quoted identifiers, nested block comments, ``$`` inside identifiers). It is a
   second opinion next to sqlglot's tokenizer: if either sees more than one
   statement, the answer is MULTIPLE_STATEMENTS. When a plain string holds a
   backslash, the text is also split as if standard_conforming_strings were off,
   so ``'\\'`` tricks cannot smuggle a second statement past either reading.
3. The first keyword (``statements``): anything but SELECT / WITH / VALUES / TABLE /
   EXPLAIN / ``(`` is NOT_READ_ONLY before any parsing (so sqlglot's Command/Alias fallbacks for
   SAVEPOINT, LISTEN, DISCARD ... never matter). EXPLAIN's option list is read
   by hand (sqlglot turns EXPLAIN into an opaque Command) and the inner query is
   validated like any other.
4. sqlglot (``parse``; postgres dialect, errors raised) parses the one statement; the root
   must be a query node.
5. One iterative walk (``walk``) over the tree finds nested data-modifying statements,
   SELECT INTO, locking clauses, every function call wherever it stands (select
   list, WHERE, FROM, LATERAL, ROWS FROM, CTEs, windows, ...), every relation,
   column and ``*``, with CTE visibility and SELECT scopes tracked. Each call is
   looked up in the reviewed built-in table (``pg_mcp.core.functions``). The rules on what
   the walk met run next (``rules/writes``, ``rules/secrets``, ``rules/functions``): a denied
   function is FORBIDDEN_FUNCTION; one that is not a built-in waits for step 6.
6. Names are then resolved (``rules/secrets``, ``rules/access``, ``rules/functions``,
   ``rules/names``), unless a write or a denied function was found: secret catalogs and
   the access policy (ACCESS_DENIED); calls that are not built-ins, which pass only as user or
   extension functions of the schema model that policy.allow_functions names and
   that are IMMUTABLE or STABLE (FUNCTION_NOT_ALLOWED, or FORBIDDEN_FUNCTION when
   named but VOLATILE; without a schema none passes); and unknown tables/columns
   (UNKNOWN_OBJECT, with "did you mean" suggestions; conservative: only clear cases).
   The most fundamental problem is the verdict (``verdict.RANK``, then source order).

``validate_sql`` never raises: any internal failure is a refusal (PARSE_ERROR),
never an acceptance. Positions are 1-based character positions, as PostgreSQL
reports them.

Known limits (the executor's read-only transaction is the backstop for all of them):

- The access policy covers direct references. A view, or a STABLE function, that reads
  a denied table or column is not traced; PostgreSQL privileges are the hard guarantee.
- Without a database schema, only reviewed built-in functions pass; unknown names are
  not judged, an unqualified table is matched against the policy as if in ``public`` (and
  against any deny_tables pattern naming it), and ``SELECT *`` over a table a
  deny_columns pattern could cover is refused because its columns are unknown.
- A model produced by introspection has denied columns removed: ``SELECT *`` over a
  table that a deny_columns pattern could cover is then refused unless the model says
  nothing was hidden there (``Table.hidden_columns``, when present).
- User-defined operators and casts run functions the walk cannot see (an explicit
  ``OPERATOR(schema.op)`` is refused unless the schema is pg_catalog; a plain operator
  symbol, a cast to a user type and a domain's CHECK are not traced).
- sqlglot cannot parse a few valid PostgreSQL forms (``WITH ... VALUES``, ``ORDER BY x
  USING <``, expressions in TABLESAMPLE): they are refused as PARSE_ERROR.
"""

from pg_mcp.core.validation.lexer import (
    Lex,
    LexError,
    iter_lex,
    pg_lex,
    split_statements,
    statement_starts,
)
from pg_mcp.core.validation.parse import MAX_NESTING, Tools
from pg_mcp.core.validation.text import FRAGMENT_CHARS, MAX_SQL_CHARS
from pg_mcp.core.validation.validate import validate_sql
from pg_mcp.core.validation.verdict import ALLOWED, Verdict

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
