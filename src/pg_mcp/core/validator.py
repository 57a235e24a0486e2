"""validate_sql: decide, without running anything, whether SQL may run.

Pure core: no I/O. The schema is passed in, or a loader for it is (``load_schema``, called
only when a query got far enough to need names checked); caching verdicts and schemas is the
caller's business (``pg_mcp.db.checker``). The decision is an
**allowlist**: exactly one statement, and that statement a query (SELECT with
set operations, WITH whose every CTE is a query, VALUES, TABLE, or EXPLAIN of
such a query without ANALYZE). Everything else is refused with a stable code.

How it decides, in order (cheapest and most fundamental first):

1. The text itself: a string, no NUL, valid UTF-8, not absurdly long.
2. Statement splitting with a small lexer that follows PostgreSQL's own rules
   (standard strings, E'' escapes, dollar quoting with identifier-like tags,
   quoted identifiers, nested block comments, ``$`` inside identifiers). It is a
   second opinion next to sqlglot's tokenizer: if either sees more than one
   statement, the answer is MULTIPLE_STATEMENTS. When a plain string holds a
   backslash, the text is also split as if standard_conforming_strings were off,
   so ``'\\'`` tricks cannot smuggle a second statement past either reading.
3. The first keyword: anything but SELECT / WITH / VALUES / TABLE / EXPLAIN / ``(``
   is NOT_READ_ONLY before any parsing (so sqlglot's Command/Alias fallbacks for
   SAVEPOINT, LISTEN, DISCARD ... never matter). EXPLAIN's option list is read
   by hand (sqlglot turns EXPLAIN into an opaque Command) and the inner query is
   validated like any other.
4. sqlglot (postgres dialect, errors raised) parses the one statement; the root
   must be a query node.
5. One iterative walk over the tree finds nested data-modifying statements,
   SELECT INTO, locking clauses, every function call wherever it stands (select
   list, WHERE, FROM, LATERAL, ROWS FROM, CTEs, windows, ...), every relation,
   column and ``*``, with CTE visibility and SELECT scopes tracked. Each call is
   looked up in the reviewed built-in table (``pg_mcp.core.functions``): a denied one is
   FORBIDDEN_FUNCTION there and then; one that is not a built-in waits for step 6.
6. Names are then resolved: secret catalogs and the access policy
   (ACCESS_DENIED); calls that are not built-ins, which pass only as user or
   extension functions of the schema model that policy.allow_functions names and
   that are IMMUTABLE or STABLE (FUNCTION_NOT_ALLOWED, or FORBIDDEN_FUNCTION when
   named but VOLATILE; without a schema none passes); and unknown tables/columns
   (UNKNOWN_OBJECT, with "did you mean" suggestions; conservative: only clear cases).

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
- User-defined operators and casts run functions the walk cannot see.
- sqlglot cannot parse a few valid PostgreSQL forms (``WITH ... VALUES``, ``ORDER BY x
  USING <``, expressions in TABLESAMPLE): they are refused as PARSE_ERROR.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import TokenType

from pg_mcp.core import functions as fn
from pg_mcp.core import policy as pol
from pg_mcp.core.functions import Family, forbidden_family

if TYPE_CHECKING:
    from pg_mcp.core.model import DatabaseSchema, Table
    from pg_mcp.core.settings import Policy, Settings

ALLOWED = "only one read-only query is allowed: SELECT, WITH ... SELECT, VALUES, TABLE or EXPLAIN without ANALYZE"
MAX_SQL_CHARS = 1_000_000  # a hard ceiling whatever [limits] max_sql_chars says
_BUDGET_EVERY = 512  # walk steps between two looks at the clock
MAX_NESTING = 256  # parentheses; deeper input is refused before sqlglot recurses
FRAGMENT_CHARS = 80

_DIALECT = Postgres()


class _SqlglotTools(threading.local):
    """A tokenizer and a parser per thread, reused: building sqlglot's tokenizer core costs
    more than tokenizing a short query. Both reset themselves at the start of every use."""

    def __init__(self) -> None:
        self.tokenizer = _DIALECT.tokenizer()
        self.parser = _DIALECT.parser(error_level=ErrorLevel.RAISE)


_TOOLS = _SqlglotTools()
_KEEP_TEXT = 4096  # the tools may hold on to the last text (and its tokens) up to this size


class _QuietFallback(logging.Filter):
    """sqlglot logs a warning whenever it parses a statement as an opaque Command; the
    validator refuses those itself, so the warning is only noise on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


_LOG = logging.getLogger("pg_mcp.validator")
_SQLGLOT_LOG = logging.getLogger("sqlglot")
if not any(isinstance(f, _QuietFallback) for f in _SQLGLOT_LOG.filters):
    _SQLGLOT_LOG.addFilter(_QuietFallback())


# --- the verdict ------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What validate_sql decided.

    ``position`` is a 1-based character position in the SQL (like PostgreSQL's),
    ``kind`` one of select / values / table / explain, ``tables`` the relations
    read as "schema.table" (schema resolved when a database schema is known),
    ``functions`` the functions called (lower case, unqualified).
    """

    ok: bool
    code: str | None = None
    message: str = ""
    hint: str | None = None
    position: int | None = None
    kind: str | None = None
    tables: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.position is not None:
            out["position"] = self.position
        out["kind"] = self.kind
        out["tables"] = list(self.tables)
        out["functions"] = list(self.functions)
        if self.suggestions:
            out["suggestions"] = list(self.suggestions)
        return out


def validate_sql(
    sql: Any,
    database: str | None = None,
    *,
    schema: DatabaseSchema | None = None,
    settings: Settings | None = None,
    clock: Callable[[], float] | None = None,
    load_schema: Callable[[], DatabaseSchema] | None = None,
) -> Verdict:
    """Decide whether ``sql`` is exactly one read-only query pg-mcp may run. Never raises.

    The work is bounded: ``settings.max_sql_chars``, ``max_identifiers`` and a time budget of
    ``validation_budget`` seconds on ``clock`` (``time.monotonic`` unless given) (TOO_COMPLEX).

    With a ``schema`` (or, when none is given, the one ``load_schema()`` returns: it is called
    only once a query needs its names checked, and a PgMcpError it raises becomes the refusal),
    names and user-function volatility are checked against it; ``database`` names it in
    messages. The access policy comes from ``settings.policy`` (defaults when None).
    """
    try:
        if settings is None:
            from pg_mcp.core.settings import Settings

            settings = Settings()
        return _Validation(sql, database, schema, settings, clock, load_schema).run()
    except RecursionError:
        return _refuse(
            "PARSE_ERROR", "the query is too deeply nested to analyse", hint="simplify the query"
        )
    except Exception as exc:  # an internal failure is a refusal, never an acceptance
        _LOG.warning("validator failure: %s", type(exc).__name__, exc_info=True)
        return _refuse(
            "PARSE_ERROR",
            f"the query could not be analysed ({type(exc).__name__}); {ALLOWED}",
            hint="simplify the query or report this as a pg-mcp bug",
        )


def _refuse(
    code: str, message: str, *, hint: str | None = None, position: int | None = None
) -> Verdict:
    return Verdict(ok=False, code=code, message=message, hint=hint, position=position)


class _Refusal(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


# --- a PostgreSQL-faithful lexer for statement splitting ---------------------------------------


class Lex(NamedTuple):
    kind: str  # word qid str estr dollar param num semi punct
    start: int
    end: int  # exclusive


class LexError(Exception):
    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position


_WS = " \t\n\r\f\v"
_NON_ASCII = "\x80-\U0010ffff"
_W = "A-Za-z_" + _NON_ASCII  # identifier start (every non-ASCII character counts, as in PostgreSQL)
_DOLLAR = rf"\$(?:[{_W}][0-9{_W}]*)?\$"
_STD_STR = r"'(?:[^']++|'')*+'"
_ESC_STR = r"'(?:[^'\\]++|\\.|'')*+'"

# One token at a time (used for the first keywords, EXPLAIN's options, U& checks).
_LEX_RX = re.compile(
    rf"""
    (?P<ws>[{_WS}]+)
  | (?P<line>--[^\n\r]*)
  | (?P<block>/\*)
  | (?P<estr>[eE]')
  | (?P<str>')
  | (?P<qid>")
  | (?P<dollar>{_DOLLAR})
  | (?P<param>\$[0-9]+)
  | (?P<word>[{_W}][0-9${_W}]*)
  | (?P<num>[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?)
  | (?P<semi>;)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_WORD_RX = re.compile(rf"[{_W}][0-9${_W}]*")  # iter_lex's word, where no other token starts
_STD_BODY = re.compile(r"(?:[^']++|'')*+'", re.DOTALL)
_ESC_BODY = re.compile(r"(?:[^'\\]++|\\.|'')*+'", re.DOTALL)
_QID_BODY = re.compile(r'(?:[^"]++|"")*+"', re.DOTALL)
_COMMENT_MARK = re.compile(r"/\*|\*/")


def _block_end(sql: str, pos: int) -> int:
    """End of the (nested) block comment starting at pos."""
    depth, i = 1, pos + 2
    while depth:
        c = _COMMENT_MARK.search(sql, i)
        if c is None:
            raise LexError(pos, "unterminated /* comment")
        depth += 1 if c.group() == "/*" else -1
        i = c.end()
    return i


def iter_lex(sql: str, pos: int = 0, *, backslash_strings: bool = False) -> Iterator[Lex]:
    """Tokens of ``sql`` from ``pos`` as PostgreSQL's scanner splits them (whitespace and
    comments dropped). ``backslash_strings`` reads '...' as if standard_conforming_strings
    were off. Raises LexError on unterminated input."""
    n = len(sql)
    match = _LEX_RX.match
    while pos < n:
        m = match(sql, pos)
        if m is None:  # cannot happen (punct matches any character), but stay total
            raise LexError(pos, "unexpected character")
        kind = m.lastgroup or "punct"
        end = m.end()
        if kind == "ws" or kind == "line":
            pass
        elif kind == "block":
            end = _block_end(sql, pos)
        elif kind == "str" or kind == "estr":
            body = _ESC_BODY if (kind == "estr" or backslash_strings) else _STD_BODY
            b = body.match(sql, end)
            if b is None:
                raise LexError(pos, "unterminated quoted string")
            end = b.end()
            yield Lex("estr" if body is _ESC_BODY else "str", pos, end)
        elif kind == "qid":
            b = _QID_BODY.match(sql, end)
            if b is None:
                raise LexError(pos, "unterminated quoted identifier")
            end = b.end()
            yield Lex(kind, pos, end)
        elif kind == "dollar":
            close = sql.find(m.group(), end)
            if close < 0:
                raise LexError(pos, "unterminated dollar-quoted string")
            end = close + len(m.group())
            yield Lex(kind, pos, end)
        else:
            yield Lex(kind, pos, end)
        pos = end


def pg_lex(sql: str, *, backslash_strings: bool = False) -> list[Lex]:
    return list(iter_lex(sql, backslash_strings=backslash_strings))


def _scanner(string: str) -> re.Pattern[str]:
    # Runs of "plain" text (words with their $, digits, whitespace, operators) are consumed in
    # one match; only quotes, comments, dollar quotes and semicolons stop a run. Kept exactly in
    # step with iter_lex (tests compare the two on random input).
    return re.compile(
        rf"""
        (?P<plain>(?:
            [A-DF-Za-df-z_][0-9$A-Za-z_]*+
          | [ \n]++
          | (?:[0-9][0-9_]*+(?:\.[0-9_]*+)?+|\.[0-9][0-9_]*+)(?:[eE][+-]?[0-9]++)?+
          | [(),.=<>*+:@|&~!%^#?\[\]{{}}]++
          | [eE](?!')[0-9${_W}]*+
          | [A-DF-Za-df-z_{_NON_ASCII}][0-9${_W}]*+
          | [{_WS}]++
          | \$[0-9]++
          | \$(?!(?:[{_W}][0-9{_W}]*)?\$)
          | /(?!\*) | -(?!-)
          | [^'"$;/\-0-9{_W}{_WS}]++
        )++)
      | (?P<line>--[^\n\r]*)
      | (?P<block>/\*)
      | (?P<estr>[eE]{_ESC_STR})
      | (?P<str>{string})
      | (?P<qid>"(?:[^"]++|"")*+")
      | (?P<dollar>{_DOLLAR})
      | (?P<semi>;)
      | (?P<bad>['"eE])
        """,
        re.VERBOSE | re.DOTALL,
    )


_SCAN_STD = _scanner(_STD_STR)
_SCAN_BACKSLASH = _scanner(_ESC_STR)


def statement_starts(sql: str, *, backslash_strings: bool = False) -> tuple[list[int], bool]:
    """Start offsets of the non-empty statements in ``sql`` (PostgreSQL's splitting), and
    whether a standard '...' string holds a backslash. Raises LexError."""
    rx = _SCAN_BACKSLASH if backslash_strings else _SCAN_STD
    match = rx.match
    starts: list[int] = []
    in_stmt = False
    backslash = False
    pos, n = 0, len(sql)
    while pos < n:
        m = match(sql, pos)
        if m is None:
            raise LexError(pos, "unexpected character")
        kind = m.lastgroup
        end = m.end()
        if kind == "plain":
            if not in_stmt:
                text = m.group()
                lead = len(text) - len(text.lstrip(_WS_CHARS))
                if lead < len(text):
                    starts.append(pos + lead)
                    in_stmt = True
        elif kind == "semi":
            in_stmt = False
        elif kind == "line":
            pass
        elif kind == "block":
            end = _block_end(sql, pos)
        elif kind == "bad":
            what = {"'": "quoted string", '"': "quoted identifier"}.get(sql[pos], "quoted string")
            raise LexError(pos, f"unterminated {what}")
        else:
            if kind == "dollar":
                close = sql.find(m.group(), end)
                if close < 0:
                    raise LexError(pos, "unterminated dollar-quoted string")
                end = close + len(m.group())
            elif kind == "str" and not backslash and "\\" in m.group():
                backslash = True
            if not in_stmt:
                starts.append(pos)
                in_stmt = True
        pos = end
    return starts, backslash


_WS_CHARS = " \t\n\r\f\v"


def split_statements(tokens: list[Lex]) -> list[list[Lex]]:
    """Non-empty statements (lists of tokens), split at semicolons."""
    stmts: list[list[Lex]] = []
    cur: list[Lex] = []
    for t in tokens:
        if t.kind == "semi":
            if cur:
                stmts.append(cur)
                cur = []
        else:
            cur.append(t)
    if cur:
        stmts.append(cur)
    return stmts


# --- statement keywords -----------------------------------------------------------------------

_QUERY_STARTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_STATEMENT_WORDS = frozenset(
    [
        "ABORT",
        "ALTER",
        "ANALYZE",
        "ANALYSE",
        "BEGIN",
        "CALL",
        "CHECKPOINT",
        "CLOSE",
        "CLUSTER",
        "COMMENT",
        "COMMIT",
        "COPY",
        "CREATE",
        "DEALLOCATE",
        "DECLARE",
        "DELETE",
        "DISCARD",
        "DO",
        "DROP",
        "END",
        "EXECUTE",
        "EXPLAIN",
        "FETCH",
        "GRANT",
        "IMPORT",
        "INSERT",
        "LISTEN",
        "LOAD",
        "LOCK",
        "MERGE",
        "MOVE",
        "NOTIFY",
        "PREPARE",
        "REASSIGN",
        "REFRESH",
        "REINDEX",
        "RELEASE",
        "RESET",
        "REVOKE",
        "ROLLBACK",
        "SAVEPOINT",
        "SECURITY",
        "SET",
        "SHOW",
        "START",
        "TRUNCATE",
        "UNLISTEN",
        "UPDATE",
        "VACUUM",
    ]
)
_TWO_WORD = frozenset(
    {
        "CREATE",
        "ALTER",
        "DROP",
        "SET",
        "RESET",
        "SECURITY",
        "IMPORT",
        "REFRESH",
        "START",
        "COMMENT",
        "PREPARE",
        "REASSIGN",
    }
)
_THIRD_WORD = frozenset(
    {
        "OR",
        "MATERIALIZED",
        "FOREIGN",
        "SESSION",
        "LOCAL",
        "UNIQUE",
        "TEMP",
        "TEMPORARY",
        "UNLOGGED",
        "GLOBAL",
        "DEFAULT",
        "TRANSACTION",
    }
)
_TXN_WORDS = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"}
)
_SESSION_WORDS = frozenset({"SET", "RESET", "SHOW", "DISCARD"})

# Column-like names that are really SQL value functions or keywords.
_VALUE_KEYWORDS = frozenset(
    {
        "user",
        "current_user",
        "current_role",
        "session_user",
        "system_user",
        "current_catalog",
        "current_schema",
        "current_date",
        "current_time",
        "current_timestamp",
        "localtime",
        "localtimestamp",
        "default",
        "true",
        "false",
        "null",
    }
)
_SYSTEM_COLUMNS = frozenset({"ctid", "xmin", "xmax", "cmin", "cmax", "tableoid", "oid"})
_SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})

# Nodes that are statements, never part of a query.
_STATEMENT_NODES: tuple[type, ...] = tuple(
    getattr(exp, n)
    for n in (
        "DDL",
        "DML",
        "Alter",
        "Analyze",
        "Command",
        "Comment",
        "Commit",
        "Copy",
        "Create",
        "Declare",
        "Delete",
        "Describe",
        "Drop",
        "Execute",
        "ExecuteSql",
        "Grant",
        "Insert",
        "Kill",
        "LoadData",
        "Merge",
        "Pragma",
        "Refresh",
        "Revoke",
        "Rollback",
        "Set",
        "Show",
        "Transaction",
        "TruncateTable",
        "Update",
        "Use",
        "Attach",
        "Detach",
        "Install",
        "Export",
        "Cache",
        "Uncache",
        "NextValueFor",
        "Summarize",
    )
    if isinstance(getattr(exp, n, None), type)
)
_DML_NODES: tuple[type, ...] = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_QUERY_ROOTS: tuple[type, ...] = (exp.Select, exp.SetOperation, exp.Values)

# problem ranks: the most fundamental problem wins
_RANK = {
    "NOT_READ_ONLY": 0,
    "DATA_MODIFYING_CTE": 1,
    "SELECT_INTO": 2,
    "LOCKING_CLAUSE": 3,
    "FORBIDDEN_FUNCTION": 4,
    "ACCESS_DENIED": 5,
    "FUNCTION_NOT_ALLOWED": 6,
    "UNKNOWN_OBJECT": 7,
    "TOO_COMPLEX": 8,
}
# columns the settings family hides wherever they appear (rolconfig of pg_roles, ...)
_SECRET_COLUMN_NAMES = frozenset(c for fam in pol.SECRET_FAMILIES for c in fam.columns)
_SECRET_VIEWS = pol.secret_views()


_TABLE_NAME_ARGS = frozenset({"db", "catalog", "alias"})  # hold only names: not walked
_NAMED_ARG = (exp.Kwarg, exp.PropertyEQ)

# node kinds for the walk
(
    K_GENERIC,
    K_LEAF,
    K_STMT,
    K_SELECT,
    K_SETOP,
    K_COLUMN,
    K_TABLE,
    K_FUNC,
    K_STAR,
    K_SUBQUERY,
    K_SOURCE,
    K_FROMJOIN,
) = range(12)
_KINDS: dict[type, int] = {}


def _classify(cls: type) -> int:
    """The walk's kind of a class (anything that is not a sqlglot node counts as a leaf)."""
    if not issubclass(cls, exp.Expression):
        k = K_LEAF
    elif issubclass(cls, _STATEMENT_NODES):
        k = K_STMT
    elif cls is exp.Select:
        k = K_SELECT
    elif issubclass(cls, exp.SetOperation):
        k = K_SETOP
    elif cls is exp.Column:
        k = K_COLUMN
    elif cls is exp.Table:
        k = K_TABLE
    elif issubclass(cls, exp.Func):
        k = K_FUNC
    elif cls is exp.Star:
        k = K_STAR
    elif cls is exp.Subquery:
        k = K_SUBQUERY
    elif cls is exp.Lateral or cls is exp.Values:
        k = K_SOURCE
    elif cls is exp.From or cls is exp.Join:
        k = K_FROMJOIN
    elif cls in (
        exp.Identifier,
        exp.Literal,
        exp.Var,
        exp.Boolean,
        exp.Null,
        exp.Parameter,
    ):
        k = K_LEAF
    else:
        k = K_GENERIC
    _KINDS[cls] = k
    return k


# --- helpers ------------------------------------------------------------------------------------


def _token_start(token: Any) -> int:
    return token.start  # type: ignore[no-any-return]


def _fragment(text: str, limit: int = FRAGMENT_CHARS) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1].rstrip() + "…"


def _norm(ident: Any) -> str:
    """An identifier as PostgreSQL sees it: unquoted names fold to lower case."""
    if isinstance(ident, exp.Identifier):
        return ident.this if ident.quoted else ident.this.lower()
    if isinstance(ident, exp.Expression):
        return ident.name.lower()
    return str(ident).lower()


def _arg_name(node: exp.Expression, key: str) -> str | None:
    v = node.args.get(key)
    if v is None:
        return None
    name = _norm(v)
    return name or None


def _span(node: exp.Expression) -> tuple[int, int] | None:
    """Character span (start, exclusive end) of a node, from the positions sqlglot keeps."""
    lo, hi = None, None
    for n in node.walk():
        meta = n.meta  # sqlglot's public accessor (positions of parsed tokens)
        if meta and "start" in meta:
            s, e = meta["start"], meta["end"] + 1
            lo = s if lo is None or s < lo else lo
            hi = e if hi is None or e > hi else hi
    return None if lo is None or hi is None else (lo, hi)


_FUNC_NAMES: dict[type, str] | None = None
# sqlglot class -> the PostgreSQL function it was parsed from (where the names differ)
_PG_NAMES = {
    "ExplodingGenerateSeries": "generate_series",
    "GenerateSeries": "generate_series",
    "Explode": "unnest",
    "CurrentTimestamp": "now",
    "Upper": "upper",
    "Lower": "lower",
    "GroupConcat": "string_agg",
    "Length": "length",
    "Rand": "random",
    "TimestampTrunc": "date_trunc",
    "DateTrunc": "date_trunc",
    "ArraySize": "array_length",
    "StrPosition": "position",
    "TimeToStr": "to_char",
    "StrToDate": "to_date",
    "StrToTime": "to_timestamp",
    "UnixToTime": "to_timestamp",
    "Trim": "trim",
    "Pow": "power",
    "ArrayAgg": "array_agg",
    "JSONArrayAgg": "json_agg",
    "JSONBObjectAgg": "jsonb_object_agg",
    "StddevSamp": "stddev_samp",
    "VariancePop": "var_pop",
    "Variance": "variance",
    "Stddev": "stddev",
    "ApproxDistinct": "count",
    "Levenshtein": "levenshtein",
    "SHA2Digest": "sha256",
    "Chr": "chr",
    "TimeFromParts": "make_time",
    "TimestampFromParts": "make_timestamp",
    "MakeInterval": "make_interval",
    "Getbit": "get_bit",
    "CurrentVersion": "version",
    "RegexpReplace": "regexp_replace",
}
# typed nodes that are operators or syntax rather than function calls (left out of Verdict.functions)
_NOT_CALLS: tuple[type, ...] = tuple(
    c
    for c in (
        getattr(exp, n, None)
        for n in (
            "Binary",
            "Unary",
            "Connector",
            "Case",
            "If",
            "Cast",
            "TryCast",
            "Exists",
            "Array",
            "Struct",
            "Bracket",
            "Interval",
            "MatchAgainst",
            "Paren",
            "Tuple",
            "Not",
            "Distinct",
            "Collate",
            "Filter",
        )
    )
    if isinstance(c, type)
)
# SQL syntax that sqlglot parses into function nodes but PostgreSQL does not run as a
# pg_proc function (or runs only the built-in one): COALESCE, GREATEST, CURRENT_DATE, ...
_SYNTAX_NAMES: frozenset[str] = frozenset(
    {
        "Coalesce",
        "Greatest",
        "Least",
        "Nullif",
        "Extract",
        "Substring",
        "Trim",
        "StrPosition",
        "CurrentDate",
        "CurrentTime",
        "CurrentTimestamp",
        "Localtime",
        "Localtimestamp",
        "CurrentUser",
        "CurrentSchema",
        "CurrentCatalog",
        "SessionUser",
        "CurrentRole",
        "TableSample",
        "AtTimeZone",
        "Overlay",
        "Grouping",
        "GroupingSets",
        "Cube",
        "Rollup",
        "Xor",
        "IsNan",
        "ArrayAny",
        "ArrayAll",
        "Any",
        "All",
        "Some",
        "JSONObject",
        "JSONArray",
        "JSONArrayAgg",
        "JSONObjectAgg",
        "JSONExists",
        "JSONValue",
        "JSONTable",
        "JSONExtract",
        "JSONExtractScalar",
        "JSONBExtract",
        "JSONBExtractScalar",
        "JSONBContains",
        "XMLElement",
        "XMLTable",
        "IsInf",
        "Normalize",
        "Columns",
    }
)


class _TypedCall(NamedTuple):
    name: str  # the PostgreSQL name reported (Verdict.functions)
    family: Family | None  # a deny family any spelling of it falls in
    builtin: fn.Builtin | None  # an allowed built-in it stands for
    syntax: bool  # SQL syntax rather than a call (nothing to resolve)
    spellings: frozenset[str]  # every name it may have been written as
    # spellings that are neither allowed built-ins nor syntax: written as a call, such a
    # name is whatever function PostgreSQL finds by it (len(x) is not length(x))
    other: re.Pattern[str] | None
    probe: re.Pattern[str]  # matches any text _written_call could find something in


_TYPED: dict[type, _TypedCall] = {}
_IS_CALL: dict[type, bool] = {}  # class -> not one of _NOT_CALLS (Anonymous always is)


def _typed_spellings(cls: type) -> list[str]:
    """Every function name sqlglot's postgres parser turns into ``cls``."""
    names = [_typed_function_name(cls)]
    for key, builder in _DIALECT.parser_class.FUNCTIONS.items():
        c = builder if isinstance(builder, type) else getattr(builder, "__self__", None)
        if c is cls:
            names.append(key.lower())
    with contextlib.suppress(Exception):
        names.extend(str(a).lower() for a in cls.sql_names())  # type: ignore[attr-defined]
    return list(dict.fromkeys(names))


def _typed_function(cls: type) -> _TypedCall:
    """What a function sqlglot parsed into a typed node is: denied when any name it may have
    been written as is denied; else allowed when one of them is an allowed built-in (the
    text was one of those names, and none of them is harmful); else SQL syntax, or a name
    to resolve against the catalog like any user function."""
    found = _TYPED.get(cls)
    if found is None:
        spellings = _typed_spellings(cls)
        name = spellings[0]
        fam = None
        allowed = None
        for alt in spellings:
            fam = forbidden_family(alt)
            if fam is not None:
                break
            b = fn.builtin(alt)
            if b is not None and not b.allowed:
                fam = b.family
                break
            if b is not None and allowed is None:
                allowed = b
        syntax = issubclass(cls, _NOT_CALLS) or cls.__name__ in _SYNTAX_NAMES
        other = sorted(
            s
            for s in spellings
            if s not in fn.SYNTAX_CALLS and not ((b := fn.builtin(s)) is not None and b.allowed)
        )
        rx = (
            re.compile(r"(?<![\w$])(?:" + "|".join(map(re.escape, other)) + r")(?![\w$])", re.I)
            if other
            else None
        )
        # a cheap superset of what _written_call looks for: one of ``other`` as a word, or a
        # spelling in double quotes in any case ("Random"); only then is the text lexed
        alts = [r"(?<![\w$])(?:" + "|".join(map(re.escape, other)) + r")(?![\w$])"] if other else []
        alts.append('"(?:' + "|".join(map(re.escape, spellings)) + ')"')
        probe = re.compile("|".join(alts), re.I)
        found = _TYPED[cls] = _TypedCall(
            name, fam, allowed, syntax, frozenset(spellings), rx, probe
        )
    return found


def _typed_function_name(cls: type) -> str:
    global _FUNC_NAMES
    if _FUNC_NAMES is None:
        names: dict[type, str] = {}
        for cls_name, pg_name in _PG_NAMES.items():
            c = getattr(exp, cls_name, None)
            if isinstance(c, type):
                names[c] = pg_name
        for key, builder in _DIALECT.parser_class.FUNCTIONS.items():
            c = builder if isinstance(builder, type) else getattr(builder, "__self__", None)
            if isinstance(c, type) and issubclass(c, exp.Func):
                names.setdefault(c, key.lower())
        _FUNC_NAMES = names
    found = _FUNC_NAMES.get(cls)
    if found:
        return found
    try:
        return str(cls.sql_names()[0]).lower()  # type: ignore[attr-defined]
    except Exception:
        return str(getattr(cls, "key", cls.__name__)).lower()


# --- scopes and collected references -------------------------------------------------------------


class _Source:
    __slots__ = ("alias", "kind", "ref", "renamed")

    def __init__(
        self, kind: str, alias: str | None, ref: _TableRef | None = None, renamed: bool = False
    ) -> None:
        self.kind = kind  # table | cte | subquery | function | values | group
        self.alias = alias
        self.ref = ref
        self.renamed = renamed  # FROM t AS x(a, b): column names changed


class _Scope:
    __slots__ = ("aliases", "exists", "opaque", "parent", "sources")

    def __init__(self, parent: _Scope | None, opaque: bool = False, exists: bool = False) -> None:
        self.parent = parent
        self.sources: list[_Source] = []
        self.aliases: set[str] = set()
        self.opaque = (
            opaque  # unqualified names here may be output columns (set operations, VALUES)
        )
        self.exists = exists  # the SELECT list of EXISTS (...) reads nothing

    def chain(self) -> list[_Scope]:
        out, s = [], self
        while s is not None:
            out.append(s)
            s = s.parent
        return out


class _TableRef:
    __slots__ = ("catalog", "model", "name", "node", "resolved_schema", "schema")

    def __init__(self, node: exp.Table, schema: str | None, name: str, catalog: str | None) -> None:
        self.node = node
        self.schema = schema
        self.name = name
        self.catalog = catalog
        self.model: Table | None = None
        self.resolved_schema: str | None = schema

    @property
    def qualified(self) -> str:
        s = self.resolved_schema
        return f"{s}.{self.name}" if s else self.name

    @property
    def system(self) -> bool:
        s = self.resolved_schema or self.schema
        if s is not None:
            return s in _SYSTEM_SCHEMAS or s.startswith("pg_")
        return self.name.startswith("pg_")


class _Call(NamedTuple):
    node: exp.Func
    schema: str | None
    name: str
    quoted: bool
    pending: bool = False  # not a built-in: a user or extension function, resolved in _finish
    nargs: int | None = None


class _Problem(NamedTuple):
    rank: int
    seq: int
    code: str
    message: str
    hint: str | None
    position: int | None
    suggestions: list[str]
    lazy: Callable[[], list[str]] | None = None  # suggestions, computed only if this one is shown


class _Tokens:
    """The tokens of one statement, lexed only as far as they are looked at."""

    __slots__ = ("_buf", "_done", "_it")

    def __init__(self, it: Iterator[Lex]) -> None:
        self._it = it
        self._buf: list[Lex] = []
        self._done = False

    def get(self, i: int) -> Lex | None:
        buf = self._buf
        while len(buf) <= i and not self._done:
            t = next(self._it, None)
            if t is None or t.kind == "semi":
                self._done = True
            else:
                buf.append(t)
        return buf[i] if i < len(buf) else None


# --- the validation -----------------------------------------------------------------------------


class _Validation:
    def __init__(
        self,
        sql: Any,
        database: str | None,
        schema: DatabaseSchema | None,
        settings: Settings,
        clock: Callable[[], float] | None = None,
        load_schema: Callable[[], DatabaseSchema] | None = None,
    ) -> None:
        self.raw = sql
        self.load_schema = load_schema
        self.sql = ""
        self.database = database
        self.schema = schema
        self.settings = settings
        self.policy: Policy = settings.policy
        self.kind = "select"
        self.base = 0  # offset of the text sqlglot parses (EXPLAIN's inner query) in the SQL
        self.problems: list[_Problem] = []
        self.tables: list[_TableRef] = []
        self.calls: list[_Call] = []
        # names the text calls (folded -> (name, quoted)), lexed lazily: see _written_call
        self._quoted_calls: dict[str, tuple[str, bool]] | None = None
        self.columns: list[tuple[exp.Column, _Scope | None]] = []
        self.stars: list[tuple[exp.Expression, str | None, _Scope | None]] = []
        self._restrictive = False  # the policy denies something
        # scopes' sources and aliases, columns and stars: only read to check column names
        # (a database schema) or column denials
        self._names = bool(
            load_schema is not None or schema is not None or settings.policy.deny_columns
        )
        self._flat: _Scope | None = None
        self._spans: dict[int, tuple[exp.Expression, tuple[int, int] | None]] = {}
        self.tokens: list[Any] = []  # sqlglot's tokens of the parsed text
        self._unfiltered: bool | None = None
        self.clock = clock or time.monotonic
        self.deadline = self.clock() + float(settings.validation_budget)

    # -- entry ------------------------------------------------------------------------------
    def run(self) -> Verdict:
        try:
            return self._run()
        except _Refusal as r:
            return r.verdict

    def refuse(
        self, code: str, message: str, *, hint: str | None = None, position: int | None = None
    ) -> None:
        raise _Refusal(
            Verdict(ok=False, code=code, message=message, hint=hint, position=position, kind=None)
        )

    def _run(self) -> Verdict:
        sql = self._text()
        self.sql = sql
        try:
            starts, backslash = statement_starts(sql)
        except LexError as e:
            self.refuse(
                "PARSE_ERROR",
                f"syntax error: {e} (starting at: {_fragment(sql[e.position :])})",
                position=e.position + 1,
            )
        if not starts:
            self.refuse("EMPTY", f"no SQL statement found (only whitespace or comments); {ALLOWED}")
        if len(starts) > 1:
            self._multiple(len(starts), starts[1])
        if backslash:
            self._backslash_reading(sql)
        first = starts[0]
        if "&" in sql and '"' in sql:
            stmt = _Tokens(iter_lex(sql, first))
            self._check_unicode_identifiers(stmt)
            start = self._first_keyword(stmt)
        else:
            start = self._plain_first_keyword(first)
            if start is None:
                start = self._first_keyword(_Tokens(iter_lex(sql, first)))
        root = self._parse(start)
        self._count_identifiers()
        self._in_budget()
        if not self._names:
            low = self.sql.lower()
            # a secret view's * or whole row can only be judged with the scopes in hand
            self._names = "u&" in low or any(v in low for v in _SECRET_VIEWS)
        self._walk(root)
        self._in_budget()
        return self._finish()

    def _count_identifiers(self) -> None:
        limit = int(self.settings.max_identifiers)
        if len(self.tokens) <= limit:
            return
        names = (TokenType.VAR, TokenType.IDENTIFIER)
        count = sum(1 for t in self.tokens if t.token_type in names)
        if count > limit:
            self.refuse(
                "TOO_COMPLEX",
                f"the SQL names {count:,} identifiers; at most {limit:,} are checked",
                hint="send a smaller query, or raise [limits] max_identifiers",
            )

    def _in_budget(self) -> None:
        if self.clock() > self.deadline:
            budget = float(self.settings.validation_budget)
            self.refuse(
                "TOO_COMPLEX",
                f"the query took longer than the validation budget ({budget:g} s) to check",
                hint="send a simpler query, or raise [limits] validation_budget",
            )

    def _text(self) -> str:
        sql = self.raw
        if isinstance(sql, bytes | bytearray | memoryview):
            try:
                sql = bytes(sql).decode("utf-8")
            except UnicodeDecodeError as e:
                self.refuse("PARSE_ERROR", f"the SQL is not valid UTF-8 (byte {e.start})")
        if sql is None:
            self.refuse("EMPTY", f"no SQL given; {ALLOWED}")
        if not isinstance(sql, str):
            self.refuse("PARSE_ERROR", f"the SQL must be text, not {type(sql).__name__}")
        limit = min(MAX_SQL_CHARS, int(self.settings.max_sql_chars))
        if len(sql) > limit:
            self.refuse(
                "TOO_COMPLEX",
                f"the SQL is too long ({len(sql):,} characters; at most {limit:,})",
                hint="send a shorter query, or raise [limits] max_sql_chars",
            )
        nul = sql.find("\x00")
        if nul >= 0:
            self.refuse(
                "PARSE_ERROR",
                "the SQL contains a NUL character, which PostgreSQL does not accept",
                position=nul + 1,
            )
        if not sql.isascii():
            try:
                sql.encode("utf-8")
            except UnicodeEncodeError as e:
                self.refuse(
                    "PARSE_ERROR",
                    "the SQL is not valid Unicode text (lone surrogate)",
                    position=e.start + 1,
                )
        return sql

    def _multiple(self, count: int, second_start: int) -> None:
        self.refuse(
            "MULTIPLE_STATEMENTS",
            f"found {count} statements; {ALLOWED} (one trailing semicolon is fine); "
            f"the second one starts with: {_fragment(self.sql[second_start:])}",
            hint="send a single statement, without anything after its semicolon",
            position=second_start + 1,
        )

    def _backslash_reading(self, sql: str) -> None:
        """With standard_conforming_strings off, '\\'' would quote differently: the text
        must be one statement under that reading as well."""
        try:
            other, _ = statement_starts(sql, backslash_strings=True)
        except LexError:
            return  # not even valid under that reading: nothing can be smuggled through it
        if len(other) > 1:
            self.refuse(
                "MULTIPLE_STATEMENTS",
                "the text reads as several statements if backslashes escape quotes in strings "
                f"(standard_conforming_strings off); {ALLOWED}",
                hint="avoid backslashes before quotes in '...' strings, or use E'...' or dollar quoting",
                position=other[1] + 1,
            )

    def _check_unicode_identifiers(self, stmt: _Tokens) -> None:
        sql = self.sql
        i = 0
        while (c := stmt.get(i + 2)) is not None:
            a, b = stmt.get(i), stmt.get(i + 1)
            assert a is not None and b is not None
            if (
                a.kind == "word"
                and sql[a.start : a.end] in ("U", "u")
                and sql[b.start : b.end] == "&"
                and c.kind == "qid"
                and a.end == b.start
                and b.end == c.start
            ):
                self.refuse(
                    "PARSE_ERROR",
                    f'Unicode-escaped identifiers (U&"...") are not supported: {_fragment(sql[a.start : c.end])}',
                    hint="write the name plainly, or as an ordinary quoted identifier",
                    position=a.start + 1,
                )
            i += 1

    # -- first keyword, EXPLAIN ---------------------------------------------------------------
    def _word(self, t: Lex | None) -> str:
        return self.sql[t.start : t.end].upper() if t is not None and t.kind == "word" else ""

    def _text_of(self, t: Lex | None) -> str:
        return self.sql[t.start : t.end] if t is not None else ""

    def _plain_first_keyword(self, first: int) -> int | None:
        """_first_keyword for the usual case, a statement that starts with the word SELECT,
        WITH, TABLE or VALUES (iter_lex reads a word there exactly so); None otherwise."""
        m = _WORD_RX.match(self.sql, first)
        if m is None:
            return None
        word = m.group().upper()
        if word == "SELECT" or word == "WITH":
            return first
        if word == "TABLE" or word == "VALUES":
            self.kind = word.lower()
            return first
        return None

    def _first_keyword(self, stmt: _Tokens) -> int:
        """Check the statement's leading keyword(s); return the offset where sqlglot starts."""
        i = 0
        while self._text_of(stmt.get(i)) == "(":
            i += 1
        first = stmt.get(i)
        if first is None:
            self._syntax_error(stmt.get(0))
        word = self._word(first)
        if word == "EXPLAIN" and i == 0:
            self.kind = "explain"
            j = self._explain_options(stmt, 1)
            inner_tok = stmt.get(j)
            if inner_tok is None:
                self.refuse(
                    "PARSE_ERROR", "EXPLAIN needs a query to explain", position=first.start + 1
                )
            if self._word(inner_tok) in _QUERY_STARTS or self._text_of(inner_tok) == "(":
                return inner_tok.start
            self._not_read_only(stmt, j, explained=True)
        if word in _QUERY_STARTS:
            if word == "TABLE" and i == 0:
                self.kind = "table"
            elif word == "VALUES" and i == 0:
                self.kind = "values"
            return stmt.get(0).start  # type: ignore[union-attr]
        if word in _STATEMENT_WORDS:
            self._not_read_only(stmt, i)
        self._syntax_error(first)
        raise AssertionError("unreachable")

    def _syntax_error(self, t: Lex | None) -> None:
        near = _fragment(self._text_of(t), 40)
        self.refuse(
            "PARSE_ERROR",
            f"syntax error at or near {near!r}; {ALLOWED}",
            position=t.start + 1 if t is not None else None,
        )

    def _statement_name(self, stmt: _Tokens, i: int) -> str:
        words = [self._word(stmt.get(i + k)) for k in range(3)]
        name = [words[0]]
        if words[0] in _TWO_WORD and words[1]:
            name.append(words[1])
            if words[1] in _THIRD_WORD and words[2]:
                name.append(words[2])
        return " ".join(name)

    def _not_read_only(self, stmt: _Tokens, i: int, *, explained: bool = False) -> None:
        name = self._statement_name(stmt, i)
        first = name.split()[0] if name else ""
        if first in _TXN_WORDS or name.startswith("PREPARE TRANSACTION"):
            hint = "pg-mcp runs every query in its own read-only transaction: send the query alone"
        elif first in _SESSION_WORDS:
            hint = "pg-mcp manages the session itself; to read a setting use SELECT current_setting('name')"
        elif name.startswith(
            ("CREATE TABLE", "CREATE MATERIALIZED", "CREATE TEMP", "CREATE UNLOGGED")
        ):
            hint = "to get the rows back, send only the SELECT part"
        elif explained:
            hint = "EXPLAIN is only allowed for a query (SELECT, WITH ... SELECT, VALUES, TABLE)"
        else:
            hint = "pg-mcp only reads data: rewrite the request as a SELECT"
        what = f"EXPLAIN of {name}" if explained else name
        at = stmt.get(i)
        start = at.start if at is not None else 0
        self.refuse(
            "NOT_READ_ONLY",
            f"{what} is not a read-only query; {ALLOWED}: {_fragment(self.sql[start:])}",
            hint=hint,
            position=start + 1,
        )

    def _explain_options(self, stmt: _Tokens, j: int) -> int:
        """Read EXPLAIN's options from token j; refuse ANALYZE; return the inner query's index."""
        if self._text_of(stmt.get(j)) == "(":
            opened = stmt.get(j)
            depth, k = 1, j + 1
            entry: list[Lex] = []
            entries: list[list[Lex]] = []
            while depth and (t := stmt.get(k)) is not None:
                tk = self._text_of(t)
                if tk == "(":
                    depth += 1
                elif tk == ")":
                    depth -= 1
                    if depth == 0:
                        entries.append(entry)
                        k += 1
                        break
                if depth == 1 and tk == ",":
                    entries.append(entry)
                    entry = []
                else:
                    entry.append(t)
                k += 1
            if depth:
                self.refuse(
                    "PARSE_ERROR",
                    "unbalanced parentheses in EXPLAIN's option list",
                    position=opened.start + 1 if opened else None,
                )
            for e in entries:
                if (
                    e
                    and self._option_text(e[0]) in ("analyze", "analyse")
                    and not self._false_option(e[1:])
                ):
                    self._explain_analyze(stmt)
            j = k
        while self._word(stmt.get(j)) in ("ANALYZE", "ANALYSE", "VERBOSE"):
            if self._word(stmt.get(j)) in ("ANALYZE", "ANALYSE"):
                self._explain_analyze(stmt)
            j += 1
        return j

    def _option_text(self, t: Lex) -> str:
        raw = self.sql[t.start : t.end]
        if t.kind == "qid":
            raw = raw[1:-1].replace('""', '"')
        elif t.kind in ("str", "estr"):
            raw = raw[raw.index("'") + 1 : -1].replace("''", "'")
        return raw.lower()

    def _false_option(self, value: list[Lex]) -> bool:
        """Whether an EXPLAIN option value is exactly false/off/0 (anything else counts as on)."""
        return len(value) == 1 and self._option_text(value[0]) in ("false", "off", "0")

    def _explain_analyze(self, stmt: _Tokens) -> None:
        first = stmt.get(0)
        start = first.start if first is not None else 0
        self.refuse(
            "EXPLAIN_ANALYZE",
            "EXPLAIN ANALYZE executes the statement; only EXPLAIN without ANALYZE is allowed: "
            f"{_fragment(self.sql[start:])}",
            hint="use plain EXPLAIN (estimated plan), or EXPLAIN (ANALYZE false, ...)",
            position=start + 1,
        )

    # -- sqlglot ------------------------------------------------------------------------------
    def _parse(self, start: int) -> exp.Expression:
        text = self.sql[start:] if start else self.sql
        self.base = start
        tools = _TOOLS
        try:
            trees = self._parse_text(text, start, tools)
        finally:
            if len(text) > _KEEP_TEXT:  # let go of a long text and its tokens
                tools.parser.reset()
                tools.tokenizer.tokenize("")
        trees = [t for t in trees if t is not None]
        if not trees:
            self.refuse("EMPTY", f"no SQL statement found; {ALLOWED}")
        if len(trees) > 1 or isinstance(trees[0], exp.Block):
            self._multiple(max(2, len(trees)), start)
        root = trees[0]
        inner = root
        while isinstance(inner, exp.Subquery):
            inner = inner.this
        if not isinstance(inner, _QUERY_ROOTS):
            if isinstance(inner, _STATEMENT_NODES) and not isinstance(inner, exp.Command):
                name = inner.key.upper()
                self.refuse(
                    "NOT_READ_ONLY",
                    f"{name} is not a read-only query; {ALLOWED}: {_fragment(text)}",
                    hint="pg-mcp only reads data: rewrite the request as a SELECT",
                    position=start + 1,
                )
            self.refuse(
                "PARSE_ERROR",
                f"unsupported syntax: {_fragment(text)}; {ALLOWED}",
                position=start + 1,
            )
        return root

    def _parse_text(self, text: str, start: int, tools: _SqlglotTools) -> list[Any]:
        """sqlglot's tokens and trees of ``text`` (which starts at offset ``start``)."""
        try:
            tokens = tools.tokenizer.tokenize(text)
        except TokenError:
            self.refuse(
                "PARSE_ERROR",
                f"the SQL could not be tokenised near: {_fragment(text)}; {ALLOWED}",
                position=start + 1,
            )
        # second opinion on statement boundaries, and nesting depth before sqlglot recurses
        if ";" in text:
            seen_stmt, ended = False, False
            for tok in tokens:
                if tok.token_type == TokenType.SEMICOLON:
                    ended = seen_stmt
                    continue
                if ended:
                    self._multiple(2, start + tok.start)
                seen_stmt = True
            tokens = [t for t in tokens if t.token_type != TokenType.SEMICOLON]
        if text.count("(") + text.count("[") > MAX_NESTING:
            depth = deepest = 0
            for tok in tokens:
                tt = tok.token_type
                if tt == TokenType.L_PAREN or tt == TokenType.L_BRACKET:
                    depth += 1
                    deepest = depth if depth > deepest else deepest
                elif tt == TokenType.R_PAREN or tt == TokenType.R_BRACKET:
                    depth -= 1
            if deepest > MAX_NESTING:
                self.refuse(
                    "PARSE_ERROR",
                    f"the query nests brackets {deepest} deep (at most {MAX_NESTING})",
                    hint="simplify the query",
                )
        self.tokens = tokens
        parser = tools.parser
        parser.error_level = ErrorLevel.RAISE  # (sqlglot restores it itself; be certain)
        try:
            trees = parser.parse(tokens, text)
        except ParseError as e:
            self._parse_error(e, text, tokens)
        return trees

    def _parse_error(self, e: ParseError, text: str, tokens: list[Any]) -> None:
        info = e.errors[0] if getattr(e, "errors", None) else {}
        line, col = info.get("line"), info.get("col")
        position = None
        if isinstance(line, int) and isinstance(col, int):
            offset = 0
            for _ in range(line - 1):
                nl = text.find("\n", offset)
                if nl < 0:
                    break
                offset = nl + 1
            end = offset + col - 1  # sqlglot reports the (1-based) column where the bad token ends
            position = end
            for tok in tokens:
                if tok.start <= end <= tok.end:
                    position = tok.start
                    break
            position = self.base + max(0, min(position, len(text) - 1)) + 1
        highlight = str(info.get("highlight") or "").strip()
        desc = str(info.get("description") or "invalid syntax")
        if "<class" in desc or "Required keyword" in desc:
            desc = "incomplete or invalid syntax"
        near = f" at or near {_fragment(highlight, 40)!r}" if highlight else ""
        self.refuse(
            "PARSE_ERROR",
            f"syntax error{near}: {desc}; {ALLOWED}",
            hint="check the syntax (PostgreSQL dialect)",
            position=position,
        )

    # -- the walk -----------------------------------------------------------------------------
    def problem(
        self,
        code: str,
        message: str,
        node: exp.Expression | None = None,
        *,
        hint: str | None = None,
        suggestions: list[str] | None = None,
        position: int | None = None,
        lazy: Callable[[], list[str]] | None = None,
    ) -> None:
        if position is None and node is not None:
            sp = self._span(node)
            position = self.base + sp[0] + 1 if sp else None
        self.problems.append(
            _Problem(
                _RANK[code],
                len(self.problems),
                code,
                message,
                hint,
                position,
                suggestions or [],
                lazy,
            )
        )

    def _span(self, node: exp.Expression) -> tuple[int, int] | None:
        """_span(node), remembered (a refusal asks twice: for its message and its position)."""
        key = id(node)
        found = self._spans.get(key)
        if found is None or found[0] is not node:
            found = self._spans[key] = (node, _span(node))
        return found[1]

    def _node_text(self, node: exp.Expression, fallback: str = "") -> str:
        """The node's original text when sqlglot kept positions, else a regenerated one."""
        sp = self._span(node)
        if sp is None:
            try:
                return _fragment(node.sql(dialect="postgres"))
            except Exception:
                return fallback
        start, end = self.base + sp[0], self.base + sp[1]
        if isinstance(node, exp.Func):  # extend over the call's parentheses
            toks = self.tokens  # sqlglot's, of the text it parsed (from self.base)
            base = self.base
            i = bisect.bisect_left(toks, start - base, key=_token_start)
            depth = 0
            for t in toks[i : i + 4000]:
                tt = t.token_type
                if tt == TokenType.L_PAREN:
                    depth += 1
                elif tt == TokenType.R_PAREN:
                    depth -= 1
                    if depth <= 0:
                        end = max(end, base + t.end + 1)
                        break
        elif isinstance(node, exp.CTE):  # include the body's closing parenthesis
            rest = self.sql[end : end + 200]
            stripped = rest.lstrip()
            if stripped.startswith(")"):
                end += len(rest) - len(stripped) + 1
        return _fragment(self.sql[start:end])

    def _walk(self, root: exp.Expression) -> None:
        """One pass over the tree, in source order. Each stack entry carries (visible CTE
        names, SELECT scope, inside a CTE, in a FROM position)."""
        empty: frozenset[str] = frozenset()
        stack: list[tuple[Any, tuple[frozenset[str], _Scope | None, bool, bool]]] = [
            (root, (empty, None, False, False))
        ]
        push = stack.append
        pop = stack.pop
        kinds = _KINDS
        columns = self.columns
        names = self._names
        Expression = exp.Expression
        secret_names = None if self.policy.allow_secret_settings else _SECRET_COLUMN_NAMES
        steps = 0
        while stack:
            steps += 1
            if steps % _BUDGET_EVERY == 0:
                self._in_budget()
            node, ctx = pop()
            cls = type(node)
            k = kinds.get(cls)
            if k is None:
                k = _classify(cls)
            if k == K_LEAF:
                continue
            args = node.args
            if k == K_GENERIC:
                for v in reversed(args.values()):
                    if v is None:
                        continue
                    if type(v) is list:
                        for x in reversed(v):
                            kx = kinds.get(type(x))
                            if kx is None:
                                kx = _classify(type(x))
                            if kx != K_LEAF:
                                push((x, ctx))
                    else:
                        kx = kinds.get(type(v))
                        if kx is None:
                            kx = _classify(type(v))
                        if kx != K_LEAF:
                            push((v, ctx))
                continue
            ctes, scope, in_cte, in_from = ctx
            if k == K_COLUMN:
                if secret_names is not None:
                    self._secret_column(node, secret_names)
                if not names:
                    pass
                elif type(args["this"]) is exp.Star:
                    table = args.get("table")
                    self.stars.append((node, _norm(table) if table is not None else None, scope))
                elif node.arg_key != "this" or not isinstance(node.parent, _NAMED_ARG):
                    columns.append((node, scope))
                continue
            if k == K_STMT:
                self._nested_statement(node, in_cte)
                continue
            with_ = None
            if k == K_FUNC:
                self._call(node)
                if cls is exp.Unnest:
                    self._check_names(node)
                if in_from and cls is exp.Unnest and scope is not None:
                    scope.sources.append(_Source("function", _alias(node)))
                if in_from:
                    ctx = (ctes, scope, in_cte, False)
            elif k == K_STAR:
                if names and not isinstance(node.parent, exp.Func):
                    self.stars.append((node, None, scope))
                continue
            elif k in (K_SELECT, K_SETOP):
                with_ = args.get("with_")
                outer_ctes = ctes
                if with_ is not None:
                    ctes = ctes.union(_cte_names(with_))
                if k == K_SETOP:
                    ctx = (ctes, self._scope(scope, opaque=True), in_cte, False)
                else:
                    inner = self._select(node, scope)
                    plain = (ctes, inner, in_cte, False)
                    source = (ctes, inner, in_cte, True)
                    for key, v in reversed(args.items()):
                        if v is None or key == "with_":
                            continue
                        c = source if (key == "from_" or key == "joins") else plain
                        if type(v) is list:
                            for x in reversed(v):
                                if isinstance(x, Expression):
                                    push((x, c))
                        elif isinstance(v, Expression):
                            push((v, c))
                    if with_ is not None:
                        self._push_with(with_, outer_ctes, scope, in_cte, push)
                    continue
            elif k == K_TABLE:
                self._table(node, ctes, scope, in_from)
                plain = (ctes, scope, in_cte, False)
                source = (ctes, scope, in_cte, True) if in_from else plain
                for key, v in reversed(args.items()):
                    if v is None or key in _TABLE_NAME_ARGS:
                        continue
                    c = source if key == "joins" else plain
                    if type(v) is list:
                        for x in reversed(v):
                            if isinstance(x, Expression):
                                push((x, c))
                    elif isinstance(v, Expression):
                        push((v, c))
                continue
            elif k == K_FROMJOIN:
                this = args.get("this")
                plain = (ctes, scope, in_cte, False)
                for v in reversed(args.values()):
                    if v is None:
                        continue
                    if type(v) is list:
                        for x in reversed(v):
                            if isinstance(x, Expression):
                                push((x, plain))
                    elif isinstance(v, Expression):
                        push((v, ctx if v is this else plain))
                continue
            elif k == K_SUBQUERY:
                self._check_names(node)
                if in_from and scope is not None:
                    if isinstance(node.this, exp.Query):
                        scope.sources.append(_Source("subquery", _alias(node)))
                    else:  # FROM (a JOIN b): a parenthesised join
                        alias = _alias(node)
                        if alias:
                            scope.sources.append(_Source("group", alias))
                        push((node.this, ctx))
                        continue
                with_ = args.get("with_")
                outer_ctes = ctes
                if with_ is not None:
                    ctes = ctes.union(_cte_names(with_))
                ctx = (ctes, scope, in_cte, False)
            elif k == K_SOURCE:  # LATERAL, VALUES
                self._check_names(node)
                if in_from and scope is not None:
                    scope.sources.append(
                        _Source("function" if cls is exp.Lateral else "values", _alias(node))
                    )
                ctx = (
                    ctes,
                    self._scope(scope, opaque=True) if cls is exp.Values else scope,
                    in_cte,
                    False,
                )
            for key, v in reversed(args.items()):
                if v is None or key == "with_":
                    continue
                if type(v) is list:
                    for x in reversed(v):
                        if isinstance(x, Expression):
                            push((x, ctx))
                elif isinstance(v, Expression):
                    push((v, ctx))
            if with_ is not None:
                self._push_with(with_, outer_ctes, scope, in_cte, push)

    def _push_with(
        self, with_: exp.With, ctes: frozenset[str], scope: _Scope | None, in_cte: bool, push: Any
    ) -> None:
        """Push the CTE bodies (last, so they are visited first), each seeing the CTE names
        PostgreSQL lets it see: earlier siblings, or all of them under RECURSIVE."""
        items = [c for c in with_.expressions if isinstance(c, exp.CTE)]
        names = [_cte_name(c) for c in items]
        recursive = bool(with_.args.get("recursive"))
        everything = ctes.union(names)
        for i in range(len(items) - 1, -1, -1):
            cte = items[i]
            body = cte.this
            if isinstance(body, _DML_NODES):
                self._nested_statement(body, True, cte)
                continue
            visible = everything if recursive else ctes.union(names[:i])
            push((body, (visible, scope, True, False)))

    def _nested_statement(
        self, node: exp.Expression, in_cte: bool, where: exp.Expression | None = None
    ) -> None:
        name = node.key.upper()
        text = self._node_text(where or node, name)
        if in_cte and isinstance(node, _DML_NODES):
            self.problem(
                "DATA_MODIFYING_CTE",
                f"the WITH clause contains {name} (a data-modifying CTE); every WITH query must be a SELECT: {text}",
                where or node,
                hint="keep only SELECT queries in WITH",
            )
        else:
            self.problem(
                "NOT_READ_ONLY",
                f"{name} is not a read-only query; {ALLOWED}: {text}",
                where or node,
                hint="pg-mcp only reads data: rewrite the request as a SELECT",
            )

    def _scope(self, parent: _Scope | None, opaque: bool = False, exists: bool = False) -> _Scope:
        """A new scope; or, when no column is going to be checked, one scope shared by the
        whole walk (nothing reads it then, and building one per SELECT costs)."""
        if self._names:
            return _Scope(parent, opaque, exists)
        if self._flat is None:
            self._flat = _Scope(None)
        return self._flat

    def _select(self, node: exp.Select, parent: _Scope | None) -> _Scope:
        scope = self._scope(parent, exists=isinstance(node.parent, exp.Exists))
        args = node.args
        if self._names:
            for e in args.get("expressions") or ():
                if isinstance(e, exp.Alias):
                    scope.aliases.add(_norm(e.args["alias"]) if e.args.get("alias") else "")
        into = args.get("into")
        if into is not None:
            self.problem(
                "SELECT_INTO",
                f"SELECT ... INTO creates a table ({self._node_text(into, 'INTO')}); {ALLOWED}",
                into,
                hint="remove the INTO clause to get the rows back",
                position=self._keyword_position("INTO"),
            )
        locks = args.get("locks")
        if locks:
            lock = locks[0]
            if lock.args.get("update"):
                what = "FOR NO KEY UPDATE" if lock.args.get("key") else "FOR UPDATE"
            else:
                what = "FOR KEY SHARE" if lock.args.get("key") else "FOR SHARE"
            pos = self._keyword_position("FOR", require_next=("UPDATE", "SHARE", "NO", "KEY"))
            shown = _fragment(self.sql[pos - 1 :]) if pos else what
            self.problem(
                "LOCKING_CLAUSE",
                f"{what} takes row locks; a read-only query may not: {shown}",
                hint="remove the FOR UPDATE / FOR SHARE clause",
                position=pos,
            )
        return scope

    def _keyword_position(self, word: str, require_next: tuple[str, ...] = ()) -> int | None:
        sql = self.sql
        toks = iter_lex(sql, self.base)  # lazily: the keyword is usually near the start
        try:
            t = next(toks, None)
            while t is not None:
                nxt = next(toks, None)
                if (
                    t.kind == "word"
                    and sql[t.start : t.end].upper() == word
                    and (
                        not require_next
                        or (nxt is not None and sql[nxt.start : nxt.end].upper() in require_next)
                    )
                ):
                    return t.start + 1
                t = nxt
        except LexError:
            pass
        return None

    def _table(
        self, node: exp.Table, ctes: frozenset[str], scope: _Scope | None, in_from: bool
    ) -> None:
        args = node.args
        this = args.get("this")
        alias_node = args.get("alias")
        # _check_names, inline
        if type(this) is exp.Identifier and this.quoted:
            self._check_name(this)
        renamed = False
        if alias_node is not None:
            for ident in alias_node.args.get("columns") or ():
                renamed = True
                if type(ident) is exp.Identifier and not ident.quoted:
                    self._check_name(ident)
        sources = scope.sources if in_from and scope is not None and self._names else None
        if not isinstance(this, exp.Identifier):
            # a function in FROM (f(x), ROWS FROM (...)): the function itself is walked as a child
            if sources is not None:
                sources.append(_Source("function", _alias(node)))
            return
        name = this.this if this.quoted else this.this.lower()  # _norm
        v = args.get("db")
        schema = (_norm(v) or None) if v is not None else None
        v = args.get("catalog")
        catalog = (_norm(v) or None) if v is not None else None
        if schema is None and catalog is None and name in ctes:
            if sources is not None:
                sources.append(_Source("cte", _alias(node) or name))
            return
        ref = _TableRef(node, schema, name, catalog)
        self.tables.append(ref)
        if sources is not None:
            sources.append(_Source("table", _alias(node) or name, ref, renamed))

    def _check_names(self, node: exp.Expression) -> None:
        """sqlglot accepts a string as a table name (FROM 'x') and numbers as column aliases
        (FROM t x(1)); PostgreSQL does not. Refuse them, so that nothing that looks like a
        call, e.g. FROM t pg_sleep(1), hides in a position the walk does not treat as one."""
        this = node.args.get("this")
        if type(node) is exp.Table and type(this) is exp.Identifier and this.quoted:
            self._check_name(this)
        alias = node.args.get("alias")
        if alias is not None:
            for ident in alias.args.get("columns") or ():
                if type(ident) is exp.Identifier and not ident.quoted:
                    self._check_name(ident)

    def _check_name(self, ident: exp.Identifier) -> None:
        meta = ident.meta
        start = meta.get("start") if meta else None
        first = self.sql[self.base + start] if isinstance(start, int) else ident.this[:1]
        if first == "'" or first.isdigit():
            self.refuse(
                "PARSE_ERROR",
                f"syntax error at or near {_fragment(ident.this, 40)!r}: not a valid name here; {ALLOWED}",
                position=self.base + start + 1 if isinstance(start, int) else None,
            )

    def _call(self, node: exp.Func) -> None:
        typed = None
        if type(node) is exp.Anonymous:
            this = node.this
            if isinstance(this, exp.Identifier):
                quoted = this.quoted
                name = this.this if quoted else this.this.lower()
            else:
                quoted = False
                name = str(this).lower()
            nargs: int | None = len(node.expressions)
            fam = forbidden_family(name, nargs)
        else:
            quoted = False
            nargs = None
            typed = _TYPED.get(type(node))
            if typed is None:
                typed = _typed_function(type(node))
            name, fam = typed.name, typed.family
            if fam is None and typed.probe.search(self.sql) is not None:
                # sqlglot forgets the spelling: len(x) and "Random"() become Length and Rand,
                # yet PostgreSQL calls the functions named len and Random: when the text
                # calls such a name, resolve that name instead
                written = self._written_call(typed)
                if written is not None:
                    typed = None
                    name, quoted, nargs = written[0], written[1], len(node.expressions)
                    fam = forbidden_family(name, nargs)
        schema = None
        parent = node.parent
        if isinstance(parent, exp.Dot) and parent.expression is node:
            q = parent.this
            schema = _norm(q.expression if isinstance(q, exp.Dot) else q)
        elif isinstance(parent, exp.Table) and parent.this is node:
            schema = _arg_name(parent, "db")
        if fam is None:
            self._secret_call(node, schema, name)
        shown = f"{schema}.{name}" if schema else name
        if fam is None and (schema is None or schema == "pg_catalog"):
            if typed is not None:
                if typed.builtin is not None or (typed.syntax and schema is None):
                    self.calls.append(_Call(node, schema, name, quoted))
                    return
            else:
                b = fn.builtin(name, nargs)
                if b is not None:
                    if b.allowed:
                        self.calls.append(_Call(node, schema, name, quoted))
                        return
                    fam = b.family
        if fam is None:  # a user or extension function: resolved against the catalog
            self.calls.append(_Call(node, schema, name, quoted, True, nargs))
            return
        self.calls.append(_Call(node, schema, name, quoted))
        if fam.code == "ACCESS_DENIED":
            if self.policy.allow_secret_catalogs:
                return
            self.problem(
                "ACCESS_DENIED",
                f"{shown}() reads a catalog that holds secrets ({fam.reason}): {self._node_text(node, shown)}",
                node,
                hint="set policy.allow_secret_catalogs to allow it",
            )
            return
        self.problem(
            "FORBIDDEN_FUNCTION",
            f"{shown}() is never allowed ({fam.title}): {fam.reason}: {self._node_text(node, shown)}",
            node,
            hint="remove the call; pg-mcp only runs plain read-only queries",
        )

    def _written_call(self, typed: _TypedCall) -> tuple[str, bool] | None:
        """(name as PostgreSQL resolves it, quoted) of a call in the text that sqlglot may
        have parsed into ``typed`` but that is not one of its allowed built-in or syntax
        spellings: a spelling of ``typed.other`` (``len(``), or a quoted name that is not
        lower case (``"Random"(``). None when the text has none."""
        sql = self.sql
        found = self._quoted_calls
        if found is None:
            found = {}
            prev = None
            try:
                for t in iter_lex(sql):
                    if (
                        prev is not None
                        and (prev.kind == "word" or prev.kind == "qid")
                        and t.kind == "punct"
                        and sql[t.start] == "("
                    ):
                        if prev.kind == "qid":
                            name = sql[prev.start + 1 : prev.end - 1].replace('""', '"')
                            if name != name.lower():
                                found.setdefault(name.lower(), (name, True))
                        else:
                            word = sql[prev.start : prev.end].lower()
                            found.setdefault(word, (word, False))
                    prev = t
            except LexError:
                pass
            self._quoted_calls = found
        for folded, (name, quoted) in found.items():
            if folded in typed.spellings and (
                quoted or (typed.other is not None and typed.other.fullmatch(folded))
            ):
                return name, quoted
        return None

    # -- secrets beyond the catalogs (policy.SECRET_FAMILIES) ---------------------------------
    def _secret_call(self, node: exp.Func, schema: str | None, name: str) -> None:
        policy = self.policy
        shown = f"{schema}.{name}" if schema else name
        fam = pol.secret_function(policy, schema, name)
        if fam is not None:
            self.problem(
                "ACCESS_DENIED",
                f"{shown}() can show secrets ({fam.reason}): {self._node_text(node, shown)}",
                node,
                hint=f"set policy.{fam.switch} = true to allow it",
            )
            return
        if name != "current_setting" or schema not in (None, "pg_catalog"):
            return
        args = node.expressions if type(node) is exp.Anonymous else []
        first = args[0] if args else None
        setting = first.this if type(first) is exp.Literal and first.is_string else None
        why = pol.secret_setting(policy, setting)
        if why is not None:
            what = (
                f"setting {setting!r} may hold a credential (pattern {why!r} of policy.secret_settings)"
                if setting is not None
                else f"{why} may name one that holds a credential"
            )
            self.problem(
                "ACCESS_DENIED",
                f"{what}: {self._node_text(node, shown)}",
                node,
                hint="read another setting by its literal name, or set policy.allow_secret_settings = true",
            )

    def _secret_column(self, node: exp.Column, secret_names: frozenset[str]) -> None:
        this = node.args.get("this")
        if type(this) is not exp.Identifier:
            return
        name = this.this if this.quoted else this.this.lower()
        if name in secret_names:
            fam = pol.secret_column_name(self.policy, name)
            if fam is not None:
                self.problem(
                    "ACCESS_DENIED",
                    f"column {name} can show secrets ({fam.reason}): {self._node_text(node, name)}",
                    node,
                    hint=f"leave it out, or set policy.{fam.switch} = true",
                )

    def _check_secret_views(self) -> None:
        """The secret columns of pg_catalog views (pg_roles.rolconfig, pg_stat_activity.query),
        and * or a whole-row reference over such a view, which read them too."""
        found = {}
        for r in self.tables:
            if r.catalog is None and r.schema in (None, "pg_catalog") and r.name in _SECRET_VIEWS:
                view = pol.secret_view(self.policy, r.name)
                if view is not None:
                    found[id(r)] = view
        if not found:
            return

        def secret(src: _Source) -> tuple[pol.SecretFamily, tuple[str, ...]] | None:
            return found.get(id(src.ref)) if src.ref is not None else None

        hits: list[tuple[exp.Expression, _Source, str]] = []
        for node, qualifier, scope in self.stars:
            if scope is None:
                continue
            sources = self._sources_named(scope, qualifier) if qualifier else scope.sources
            hits.extend((node, src, "") for src in sources if secret(src))
        for node, scope in self.columns:
            if scope is None:
                continue
            name = _norm(node.this)
            qualifier = node.args.get("table")
            if qualifier is not None:
                for src in self._sources_named(scope, _norm(qualifier)):
                    view = secret(src)
                    if view and name in view[1]:
                        hits.append((node, src, name))
                continue
            for sc in scope.chain():
                for src in sc.sources:
                    view = secret(src)
                    if view and (src.alias == name or name in view[1]):
                        hits.append((node, src, name if name in view[1] else ""))
        if hits:
            node, src, column = hits[0]
            fam, columns = secret(src)  # type: ignore[misc]
            what = f"column {column} of" if column else f"{self._node_text(node, '*')} over"
            self.problem(
                "ACCESS_DENIED",
                f"{what} {src.ref.qualified} can show secrets ({fam.reason}; "  # type: ignore[union-attr]
                f"{', '.join(columns)})",
                node,
                hint=f"select other columns by name, or set policy.{fam.switch} = true",
            )

    # -- resolution ---------------------------------------------------------------------------
    def _finish(self) -> Verdict:
        if not self.problems or not any(
            p.rank <= _RANK["FORBIDDEN_FUNCTION"] for p in self.problems
        ):
            if self.schema is None and self.load_schema is not None:
                self._load_schema()
            p = self.policy
            self._restrictive = bool(p.deny_schemas or p.deny_tables or p.deny_columns)
            self._resolve_tables()
            if p.deny_columns:
                self._check_stars()
            if p.deny_columns or self.schema is not None:
                self._check_columns()
            self._check_user_functions()
            self._check_secret_views()
        seen: dict[str, None] = {}
        for ref in self.tables:
            seen.setdefault(ref.qualified, None)
        funcs: dict[str, None] = {}
        for c in self.calls:
            cls = type(c.node)
            is_call = _IS_CALL.get(cls)
            if is_call is None:
                is_call = _IS_CALL[cls] = cls is exp.Anonymous or not issubclass(cls, _NOT_CALLS)
            if is_call:
                funcs.setdefault(c.name, None)
        verdict = Verdict(ok=True, kind=self.kind, tables=list(seen), functions=list(funcs))
        if self.problems:
            best = min(self.problems, key=lambda p: (p.rank, p.seq))
            verdict.ok = False
            verdict.code = best.code
            verdict.message = best.message
            verdict.hint = best.hint
            verdict.position = best.position
            verdict.suggestions = best.suggestions
            if best.lazy is not None:  # the "did you mean" of the one problem reported
                sugg = best.lazy()
                verdict.suggestions = sugg
                if sugg:
                    verdict.hint = f"did you mean {' or '.join(sugg)}?"
        else:
            what = {
                "explain": "EXPLAIN of a read-only query",
                "values": "VALUES list",
                "table": "TABLE query",
            }
            verdict.message = f"accepted: one {what.get(self.kind, 'read-only SELECT query')}"
        return verdict

    def _load_schema(self) -> None:
        from pg_mcp.core.errors import PgMcpError
        from pg_mcp.core.secrets import Redactor

        redact = Redactor(self.settings.secrets())
        try:
            self.schema = self.load_schema()  # type: ignore[misc]
        except PgMcpError as e:
            self.refuse(e.code, redact(e.message), hint=redact(e.hint) if e.hint else None)
        except Exception as e:
            self.refuse(
                "CONNECTION_ERROR",
                f"the schema of database {self.database!r} could not be loaded ({type(e).__name__})",
                hint="check that the database is reachable, or validate without a database",
            )

    def _known_schemas(self) -> set[str]:
        db = self.schema
        assert db is not None
        known = set(db.schemas)
        known.update(t.schema for t in db.tables)
        known.update(f.schema for f in db.functions)
        known.update(s.schema for s in db.sequences)
        return known

    def _extension_schemas(self) -> set[str]:
        db = self.schema
        return {e.schema for e in db.extensions if e.schema not in _SYSTEM_SCHEMAS} if db else set()

    def _resolve_tables(self) -> None:
        db, policy = self.schema, self.policy
        for ref in self.tables:
            if pol.is_secret_catalog(ref.schema, ref.name) and not policy.allow_secret_catalogs:
                self.problem(
                    "ACCESS_DENIED",
                    f"{ref.qualified} is a catalog that holds secrets (passwords, server configuration): "
                    f"{self._node_text(ref.node, ref.qualified)}",
                    ref.node,
                    hint="query pg_roles / pg_user instead, or set policy.allow_secret_catalogs",
                )
                continue
            fam = pol.secret_relation(policy, ref.schema, ref.name) if ref.catalog is None else None
            if fam is not None:
                self.problem(
                    "ACCESS_DENIED",
                    f"{ref.qualified} can show secrets ({fam.reason}): "
                    f"{self._node_text(ref.node, ref.qualified)}",
                    ref.node,
                    hint=f"set policy.{fam.switch} = true to allow it",
                )
                continue
            if db is not None and ref.catalog is None:
                ref.model = db.table(ref.name, ref.schema)
                if ref.model is not None:
                    ref.resolved_schema = ref.model.schema
            if ref.schema is None and ref.model is None and ref.name.startswith("pg_"):
                ref.resolved_schema = "pg_catalog"
            if ref.system:
                continue
            pattern = self._table_denial(ref) if self._restrictive else None
            if pattern is not None:
                self.problem(
                    "ACCESS_DENIED",
                    f"{ref.qualified} is hidden by the access policy (pattern {pattern!r}): "
                    f"{self._node_text(ref.node, ref.qualified)}",
                    ref.node,
                    hint="query only tables the policy allows",
                )
                continue
            if db is not None and ref.model is None and ref.catalog is None:
                self._unknown_table(ref, self._node_text(ref.node, ref.qualified))

    def _table_denial(self, ref: _TableRef) -> str | None:
        policy = self.policy
        if ref.resolved_schema is not None:
            return pol.table_denial(policy, ref.resolved_schema, ref.name)
        # unqualified and not found: every schema it could come from, then any schema
        candidates = list(self.schema.search_path) if self.schema is not None else ["public"]
        for s in candidates:
            found = pol.table_denial(policy, s, ref.name)
            if found:
                return found
        return pol.table_denial(policy, None, ref.name)

    def _unknown_table(self, ref: _TableRef, text: str) -> None:
        db = self.schema
        assert db is not None
        ext = self._extension_schemas()
        if ref.schema is not None:
            known = self._known_schemas()
            if ref.schema not in known:
                if ref.schema in ext or not known:
                    return
                self._unknown(
                    f'schema "{ref.schema}" does not exist',
                    ref.node,
                    text,
                    lambda: _close(ref.schema, known),
                )
                return
            if ref.schema in ext:
                return  # extension relations are not in the schema model
        elif any(s in ext for s in db.search_path):
            return
        self._unknown(
            f'relation "{ref.qualified}" does not exist',
            ref.node,
            text,
            lambda: self._table_suggestions(ref),
        )

    def _table_suggestions(self, ref: _TableRef) -> list[str]:
        db = self.schema
        assert db is not None
        if ref.schema is not None:
            pool = [t.name for t in db.tables if t.schema == ref.schema]
            return [f"{ref.schema}.{n}" for n in _close(ref.name, pool)]
        names = {t.name: t.qualified for t in db.tables if t.schema in db.search_path}
        names.update({t.qualified: t.qualified for t in db.tables})
        sugg: list[str] = []
        for n in _close(ref.name, list(names)):
            if names[n] not in sugg:
                sugg.append(names[n])
        if not sugg:
            sugg = [t.qualified for t in db.tables if t.name.lower() == ref.name.lower()][:3]
        return sugg

    def _unknown(
        self, what: str, node: exp.Expression, text: str, sugg: Callable[[], list[str]]
    ) -> None:
        """An UNKNOWN_OBJECT problem; its suggestions are computed only if it is the one
        reported (thousands of unknown names must not cost thousands of difflib passes)."""
        if any(p.code == "UNKNOWN_OBJECT" for p in self.problems):
            return  # the first one is the one reported
        name = self.database or (self.schema.name if self.schema is not None else "")
        where = f" in database {name}" if name else ""
        self.problem(
            "UNKNOWN_OBJECT",
            f"{what}{where}: {text}",
            node,
            hint="check the name against the schema reference",
            lazy=sugg,
        )

    # stars and whole-row references
    def _star_denial(self, source: _Source) -> tuple[str, str, bool] | None:
        """(column, pattern, certain) of a column a * over ``source`` would, or might, read
        although the policy denies it."""
        ref = source.ref
        if ref is None or ref.system or source.kind != "table":
            return None
        s = ref.resolved_schema  # None: not known, any schema counts
        model = ref.model
        if model is not None:
            for c in model.columns:
                pattern = pol.column_denial(self.policy, s, ref.name, c.name)
                if pattern:
                    return c.name, pattern, True
            # A model from introspect has the denied columns removed already: then only a
            # record of what was removed, or a model known to be unfiltered, clears the *.
            hidden = getattr(model, "hidden_columns", None)
            if isinstance(hidden, int | list | tuple):
                if not hidden:
                    return None
                first = hidden[0] if isinstance(hidden, list | tuple) else "(a hidden column)"
                return str(first), "the access policy", True
            if self._model_is_unfiltered():
                return None
        patterns = pol.column_patterns_for(self.policy, s, ref.name)
        if patterns:
            col = patterns[0].split(".")[-1]
            return (
                (col if not any(ch in col for ch in "*?[") else "a hidden column"),
                patterns[0],
                False,
            )
        return None

    def _model_is_unfiltered(self) -> bool:
        """Whether the schema still shows some column the policy denies (so it was not
        filtered by the policy, and its column lists are complete)."""
        db = self.schema
        if db is None:
            return False
        if self._unfiltered is None:  # once per validation (only * under deny_columns needs it)
            self._unfiltered = any(
                pol.column_denial(self.policy, t.schema, t.name, c.name)
                for t in db.tables
                for c in t.columns
            )
        return self._unfiltered

    def _check_stars(self) -> None:
        if not self.policy.deny_columns:
            return
        for node, qualifier, scope in self.stars:
            if scope is None or (scope.exists and qualifier is None):
                continue
            sources = self._sources_named(scope, qualifier) if qualifier else scope.sources
            for src in sources:
                found = self._star_denial(src)
                if found:
                    col, pattern, certain = found
                    what = f"column {col}" if col != "a hidden column" else col
                    self.problem(
                        "ACCESS_DENIED",
                        f"{self._node_text(node, '*')} over {src.ref.qualified if src.ref else src.alias} "
                        f"{'would' if certain else 'might'} read {what}, hidden by the access policy "
                        f"(pattern {pattern!r})",
                        node,
                        hint="list the columns you need instead of *",
                    )
                    break

    def _sources_named(self, scope: _Scope, qualifier: str) -> list[_Source]:
        for s in scope.chain():
            found = [src for src in s.sources if src.alias == qualifier]
            if found:
                return found
        return []

    def _check_columns(self) -> None:
        for node, scope in self.columns:
            name = _norm(node.this)
            table = node.args.get("table")
            if table is not None:
                self._qualified_column(node, name, _norm(table), _arg_name(node, "db"), scope)
            elif scope is not None:
                self._unqualified_column(node, name, scope)

    def _column_denied(self, node: exp.Column, ref: _TableRef, column: str) -> bool:
        if ref.resolved_schema is not None:
            schemas: list[str | None] = [ref.resolved_schema]
        elif self.schema is not None:
            schemas = [*self.schema.search_path, None]
        else:
            schemas = [None]
        for sch in schemas:
            pattern = pol.column_denial(self.policy, sch, ref.name, column)
            if pattern:
                self.problem(
                    "ACCESS_DENIED",
                    f"column {column} of {ref.qualified} is hidden by the access policy (pattern {pattern!r}): "
                    f"{self._node_text(node, column)}",
                    node,
                    hint="leave that column out",
                )
                return True
        return False

    def _whole_row(self, node: exp.Column, src: _Source) -> bool:
        found = self._star_denial(src)
        if found:
            col, pattern, certain = found
            what = f"column {col}" if col != "a hidden column" else col
            self.problem(
                "ACCESS_DENIED",
                f"{self._node_text(node, src.alias or '')} is a whole-row reference to "
                f"{src.ref.qualified if src.ref else src.alias}, which {'would' if certain else 'might'} "
                f"read {what}, hidden by the access policy (pattern {pattern!r})",
                node,
                hint="select the columns you need by name",
            )
            return True
        return False

    def _qualified_column(
        self, node: exp.Column, name: str, qualifier: str, schema: str | None, scope: _Scope | None
    ) -> None:
        src: _Source | None = None
        if scope is not None:
            for s in scope.chain():
                for cand in s.sources:
                    if (schema is None and cand.alias == qualifier) or (
                        schema is not None
                        and cand.ref is not None
                        and cand.ref.name == qualifier
                        and ((cand.ref.resolved_schema or cand.ref.schema) == schema)
                    ):
                        src = cand
                    if src is not None:
                        break
                if src is not None:
                    break
        if src is None:
            if schema is not None and pol.column_denial(self.policy, schema, qualifier, name):
                ref = _TableRef(exp.Table(), schema, qualifier, None)
                self._column_denied(node, ref, name)
            return
        if src.kind != "table" or src.ref is None or src.ref.system:
            return
        if self._column_denied(node, src.ref, name):
            return
        model = src.ref.model
        if model is None or src.renamed or name in _SYSTEM_COLUMNS:
            return
        if model.column(name) is not None:
            return
        if self._user_function_names_match(name):  # attribute notation: t.f means f(t)
            self._check_volatile(node, None, name)
            return
        self._unknown(
            f'column "{name}" does not exist in {model.qualified}',
            node,
            self._node_text(node, f"{qualifier}.{name}"),
            lambda: [f"{qualifier}.{c}" for c in _close(name, [c.name for c in model.columns])],
        )

    def _unqualified_column(self, node: exp.Column, name: str, scope: _Scope) -> None:
        chain = scope.chain()
        # policy first: the column of a table in reach, or a whole-row reference
        for s in chain:
            owner = None
            for src in s.sources:
                if (
                    src.kind == "table"
                    and src.ref is not None
                    and src.ref.model is not None
                    and (src.ref.model.column(name) is not None)
                ):
                    owner = src
                    break
            if owner is not None:
                self._column_denied(node, owner.ref, name)  # type: ignore[arg-type]
                return
            for src in s.sources:
                if (
                    src.kind == "table"
                    and src.ref is not None
                    and not src.ref.system
                    and (self._column_denied(node, src.ref, name))
                ):
                    return
            for src in s.sources:
                if src.alias == name:
                    self._whole_row(node, src)
                    return
        # unknown column: only when every source in reach is a known table
        if self.schema is None or name in _VALUE_KEYWORDS or name in _SYSTEM_COLUMNS:
            return
        if scope.opaque or isinstance(node.parent, exp.Dot):
            return
        for s in chain:
            if name in s.aliases:
                return
            for src in s.sources:
                if src.kind != "table" or src.ref is None or src.ref.model is None or src.renamed:
                    return
        if not scope.sources:
            return
        if self._user_function_names_match(name):
            return

        def suggestions() -> list[str]:
            pool = {
                c.name
                for src in scope.sources
                if src.ref and src.ref.model
                for c in src.ref.model.columns
            }
            return _close(name, pool)

        tables = ", ".join(src.ref.qualified for src in scope.sources if src.ref is not None)
        self._unknown(
            f'column "{name}" does not exist in {tables}',
            node,
            self._node_text(node, name),
            suggestions,
        )

    def _user_function_names_match(self, name: str) -> bool:
        return bool(self.schema and self.schema.functions_named(name))

    def _check_user_functions(self) -> None:
        """Resolve what is not an allowed built-in: a user or extension function that
        policy.allow_functions names and the catalog shows IMMUTABLE or STABLE; refuse the
        rest (FUNCTION_NOT_ALLOWED; FORBIDDEN_FUNCTION for a named but VOLATILE one). An
        unqualified built-in name that user functions overload is refused when one of those
        overloads is VOLATILE (PostgreSQL may pick it for other argument types)."""
        policy = self.policy
        for call in self.calls:
            if (
                call.schema is not None
                and not call.schema.startswith("pg_")
                and pol.schema_denial(policy, call.schema)
            ):
                self.problem(
                    "ACCESS_DENIED",
                    f"{call.schema}.{call.name}() lives in a schema hidden by the access policy: "
                    f"{self._node_text(call.node, call.name)}",
                    call.node,
                    hint="call only functions of schemas the policy allows",
                )
                continue
            if call.pending:
                self._check_function(call.node, call.schema, call.name)
            elif self.schema is not None and call.schema is None:
                self._check_overloads(call.node, call.name)

    def _candidates(self, schema: str | None, name: str) -> list[Any]:
        db = self.schema
        if db is None:
            return []
        if schema is None:
            path = ("pg_catalog", *db.search_path)
            return [f for f in db.functions_named(name) if f.schema in path]
        return [f for f in db.functions_named(name) if f.schema == schema]

    def _check_overloads(self, node: exp.Expression, name: str) -> None:
        volatile = [f for f in self._candidates(None, name) if f.volatility == "volatile"]
        if volatile:
            f = volatile[0]
            self.problem(
                "FORBIDDEN_FUNCTION",
                f"{name}() is a built-in, but {f.schema}.{f.name}() overloads it and is VOLATILE (it "
                f"may change data), and PostgreSQL may call it for these arguments: "
                f"{self._node_text(node, name)}",
                node,
                hint=f"write pg_catalog.{name}(...) to call the built-in",
            )

    def _check_function(self, node: exp.Expression, schema: str | None, name: str) -> None:
        shown = f"{schema}.{name}" if schema else name
        text = self._node_text(node, shown)
        db = self.schema
        if db is None:
            self.problem(
                "FUNCTION_NOT_ALLOWED",
                f"{shown}() is not a reviewed read-only built-in, and without the database's "
                f"catalog pg-mcp cannot see what it is: {text}",
                node,
                hint="validate against the database (--db) and have an administrator allow it "
                'by name if it only reads: policy.allow_functions = ["schema.function"]',
            )
            return
        found = self._candidates(schema, name)
        if not found:
            where = schema or ", ".join(db.search_path)
            pool = {f.name for f in db.functions}
            sugg = _close(name, pool)
            self.problem(
                "FUNCTION_NOT_ALLOWED",
                f"{shown}() is neither a reviewed read-only built-in nor a function of the "
                f"catalog (searched: {where}): {text}",
                node,
                hint="call a built-in or an allowed user function"
                + (f"; did you mean {', '.join(sugg)}?" if sugg else ""),
                suggestions=sugg,
            )
            return
        if schema is None:  # the first schema of the path that has it wins
            order = {s: i for i, s in enumerate(("pg_catalog", *db.search_path))}
            first = min(order[f.schema] for f in found)
            found = [f for f in found if order[f.schema] == first]
        f = found[0]
        what = f"extension {f.extension}'s function" if f.extension else "user function"
        if not pol.is_function_allowed(self.policy, f.schema, f.name):
            self.problem(
                "FUNCTION_NOT_ALLOWED",
                f"{f.schema}.{f.name}() is a {what} that policy.allow_functions does not name: {text}",
                node,
                hint=f'if it only reads, an administrator can allow it: policy.allow_functions = ["{f.schema}.{f.name}"] '
                "(only IMMUTABLE or STABLE functions are accepted)",
            )
            return
        volatile = [g for g in found if g.volatility == "volatile"]
        if volatile and self._reviewed_raw_page_reader(f):
            return  # pageinspect declares its readers VOLATILE; allow_raw_pages vouches for them
        if volatile:
            self.problem(
                "FORBIDDEN_FUNCTION",
                f"{f.schema}.{f.name}() is a VOLATILE {what} (it may change data); only IMMUTABLE or "
                f"STABLE functions are accepted, even when policy.allow_functions names them: {text}",
                node,
                hint="call another function, or have its owner declare it STABLE if it only reads",
            )

    def _reviewed_raw_page_reader(self, f: Any) -> bool:
        """A pageinspect reader (the raw_pages family) of the pageinspect extension, under
        policy.allow_raw_pages: read-only although its SQL declares no volatility."""
        fam = next(x for x in pol.SECRET_FAMILIES if x.key == "raw_pages")
        return (
            self.policy.allow_raw_pages
            and f.extension == "pageinspect"
            and f.name.lower() in fam.functions
        )

    def _check_volatile(self, node: exp.Expression, schema: str | None, name: str) -> None:
        """Attribute notation (t.f means f(t)): the user-function rule."""
        self._check_function(node, schema, name)


def _close(name: str, pool: list[str] | set[str], n: int = 3) -> list[str]:
    """The closest names (difflib), keeping only those nearly as close as the best one."""
    scored = []
    for cand in pool:
        m = difflib.SequenceMatcher(None, name.lower(), cand.lower())
        if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6:
            r = m.ratio()
            if r >= 0.6:
                scored.append((r, cand))
    if not scored:
        return []
    scored.sort(key=lambda x: (-x[0], x[1]))
    best = scored[0][0]
    return [c for r, c in scored[:n] if r >= best - 0.1]


def _cte_name(cte: exp.Expression) -> str:
    alias = cte.args.get("alias")
    return _norm(alias.this) if alias is not None and alias.this is not None else ""


def _cte_names(with_: exp.Expression) -> list[str]:
    return [_cte_name(c) for c in with_.expressions if isinstance(c, exp.CTE)]


def _alias(node: exp.Expression) -> str | None:
    alias = node.args.get("alias")
    if alias is None:
        return None
    ident = alias.this if isinstance(alias, exp.TableAlias) else alias
    if ident is None:
        return None
    name = _norm(ident)
    return name or None
