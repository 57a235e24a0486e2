"""Stage 3, sqlglot: tokenize and parse the one statement; the root must be a query.

``Tools`` holds a postgres tokenizer and parser, reused (building sqlglot's tokenizer core
costs more than tokenizing a short query), and the per-class tables the walk and the call
rules fill as they meet sqlglot classes. One ``Tools`` per thread: ``tools()`` gives this
thread's (the only module-level object of the validator, a ``threading.local``), or a caller
passes its own to ``validate_sql``.

``Parsed`` is the result: the root node, sqlglot's tokens, and where the parsed text starts in
the SQL (``base``: EXPLAIN's inner query), with the positions and original text of nodes.
"""

from __future__ import annotations

import bisect
import logging
import threading
from typing import Any, NoReturn

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import TokenType

from pg_mcp.core.validation.statements import multiple
from pg_mcp.core.validation.text import fragment
from pg_mcp.core.validation.verdict import ALLOWED, refuse

MAX_NESTING = 256  # parentheses; deeper input is refused before sqlglot recurses
_KEEP_TEXT = 4096  # the tools may hold on to the last text (and its tokens) up to this size
DIALECT = Postgres()

# Nodes that are statements, never part of a query.
STATEMENT_NODES: tuple[type, ...] = tuple(
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
DML_NODES: tuple[type, ...] = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_QUERY_ROOTS: tuple[type, ...] = (exp.Select, exp.SetOperation, exp.Values)


class Tools:
    """A tokenizer and a parser of the postgres dialect, and the memo tables of sqlglot
    classes (walk kinds, what a typed function node stands for). Not thread-safe: one per
    thread. Tokenizer and parser reset themselves at the start of every use."""

    def __init__(self) -> None:
        self.tokenizer = DIALECT.tokenizer()
        self.parser = DIALECT.parser(error_level=ErrorLevel.RAISE)
        self.kinds: dict[type, int] = {}  # walk.classify
        self.typed: dict[type, Any] = {}  # calls.typed_function
        self.is_call: dict[type, bool] = {}  # calls.is_call
        self.func_names: dict[type, str] | None = None  # calls.typed_function_name


class _PerThread(threading.local):
    """Each thread's Tools: the one module-level object of the validator (sqlglot's
    tokenizer and parser are not thread-safe; building them per call costs more than a
    short query's whole validation)."""

    def __init__(self) -> None:
        self.tools = Tools()


_PER_THREAD = _PerThread()


def tools() -> Tools:
    """This thread's Tools."""
    return _PER_THREAD.tools


class _QuietFallback(logging.Filter):
    """sqlglot logs a warning whenever it parses a statement as an opaque Command; the
    validator refuses those itself, so the warning is only noise on stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Falling back to parsing as a 'Command'" not in record.getMessage()


_SQLGLOT_LOG = logging.getLogger("sqlglot")
if not any(isinstance(f, _QuietFallback) for f in _SQLGLOT_LOG.filters):
    _SQLGLOT_LOG.addFilter(_QuietFallback())


# --- names of nodes ---------------------------------------------------------------------------


def norm(ident: Any) -> str:
    """An identifier as PostgreSQL sees it: unquoted names fold to lower case."""
    if isinstance(ident, exp.Identifier):
        return ident.this if ident.quoted else ident.this.lower()
    if isinstance(ident, exp.Expression):
        return ident.name.lower()
    return str(ident).lower()


def arg_name(node: exp.Expression, key: str) -> str | None:
    v = node.args.get(key)
    if v is None:
        return None
    name = norm(v)
    return name or None


def alias_of(node: exp.Expression) -> str | None:
    alias = node.args.get("alias")
    if alias is None:
        return None
    ident = alias.this if isinstance(alias, exp.TableAlias) else alias
    if ident is None:
        return None
    name = norm(ident)
    return name or None


def cte_name(cte: exp.Expression) -> str:
    alias = cte.args.get("alias")
    return norm(alias.this) if alias is not None and alias.this is not None else ""


def cte_names(with_: exp.Expression) -> list[str]:
    return [cte_name(c) for c in with_.expressions if isinstance(c, exp.CTE)]


def span(node: exp.Expression) -> tuple[int, int] | None:
    """Character span (start, exclusive end) of a node, from the positions sqlglot keeps."""
    lo, hi = None, None
    for n in node.walk():
        meta = n.meta  # sqlglot's public accessor (positions of parsed tokens)
        if meta and "start" in meta:
            s, e = meta["start"], meta["end"] + 1
            lo = s if lo is None or s < lo else lo
            hi = e if hi is None or e > hi else hi
    return None if lo is None or hi is None else (lo, hi)


def _token_start(token: Any) -> int:
    return token.start  # type: ignore[no-any-return]


# --- the parse ----------------------------------------------------------------------------------


class Parsed:
    """One parsed query: ``root``, sqlglot's ``tokens`` of the text parsed, which starts at
    offset ``base`` of ``sql``. Positions and texts of nodes are 1-based positions and
    fragments of ``sql``."""

    def __init__(self, sql: str, base: int, root: exp.Expression, tokens: list[Any]) -> None:
        self.sql = sql
        self.base = base
        self.root = root
        self.tokens = tokens
        self._spans: dict[int, tuple[exp.Expression, tuple[int, int] | None]] = {}

    def span(self, node: exp.Expression) -> tuple[int, int] | None:
        """span(node), remembered (a refusal asks twice: for its message and its position)."""
        key = id(node)
        found = self._spans.get(key)
        if found is None or found[0] is not node:
            found = self._spans[key] = (node, span(node))
        return found[1]

    def position(self, node: exp.Expression | None) -> int | None:
        if node is None:
            return None
        sp = self.span(node)
        return self.base + sp[0] + 1 if sp else None

    def text(self, node: exp.Expression, fallback: str = "") -> str:
        """The node's original text when sqlglot kept positions, else a regenerated one."""
        sp = self.span(node)
        if sp is None:
            try:
                return fragment(node.sql(dialect="postgres"))
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
        return fragment(self.sql[start:end])

    def check_name(self, ident: exp.Identifier) -> None:
        """sqlglot accepts a string as a table name (FROM 'x') and numbers as column aliases
        (FROM t x(1)); PostgreSQL does not. Refuse them, so that nothing that looks like a
        call, e.g. FROM t pg_sleep(1), hides in a position the walk does not treat as one."""
        meta = ident.meta
        start = meta.get("start") if meta else None
        first = self.sql[self.base + start] if isinstance(start, int) else ident.this[:1]
        if first == "'" or first.isdigit():
            refuse(
                "PARSE_ERROR",
                f"syntax error at or near {fragment(ident.this, 40)!r}: not a valid name here; {ALLOWED}",
                position=self.base + start + 1 if isinstance(start, int) else None,
            )

    def check_names(self, node: exp.Expression) -> None:
        """check_name for a table's quoted name and the column aliases of ``node``."""
        this = node.args.get("this")
        if type(node) is exp.Table and type(this) is exp.Identifier and this.quoted:
            self.check_name(this)
        alias = node.args.get("alias")
        if alias is not None:
            for ident in alias.args.get("columns") or ():
                if type(ident) is exp.Identifier and not ident.quoted:
                    self.check_name(ident)


def parse(sql: str, start: int, tools: Tools) -> Parsed:
    """Parse ``sql[start:]``: one query, or a refusal."""
    text = sql[start:] if start else sql
    try:
        tokens, trees = _parse_text(sql, text, start, tools)
    finally:
        if len(text) > _KEEP_TEXT:  # let go of a long text and its tokens
            tools.parser.reset()
            tools.tokenizer.tokenize("")
    trees = [t for t in trees if t is not None]
    if not trees:
        refuse("EMPTY", f"no SQL statement found; {ALLOWED}")
    if len(trees) > 1 or isinstance(trees[0], exp.Block):
        multiple(sql, max(2, len(trees)), start)
    root = trees[0]
    inner = root
    while isinstance(inner, exp.Subquery):
        inner = inner.this
    if not isinstance(inner, _QUERY_ROOTS):
        if isinstance(inner, STATEMENT_NODES) and not isinstance(inner, exp.Command):
            name = inner.key.upper()
            refuse(
                "NOT_READ_ONLY",
                f"{name} is not a read-only query; {ALLOWED}: {fragment(text)}",
                hint="pg-mcp only reads data: rewrite the request as a SELECT",
                position=start + 1,
            )
        refuse(
            "PARSE_ERROR",
            f"unsupported syntax: {fragment(text)}; {ALLOWED}",
            position=start + 1,
        )
    return Parsed(sql, start, root, tokens)


def _parse_text(sql: str, text: str, start: int, tools: Tools) -> tuple[list[Any], list[Any]]:
    """sqlglot's tokens and trees of ``text`` (which starts at offset ``start``)."""
    try:
        tokens = tools.tokenizer.tokenize(text)
    except TokenError:
        refuse(
            "PARSE_ERROR",
            f"the SQL could not be tokenised near: {fragment(text)}; {ALLOWED}",
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
                multiple(sql, 2, start + tok.start)
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
            refuse(
                "PARSE_ERROR",
                f"the query nests brackets {deepest} deep (at most {MAX_NESTING})",
                hint="simplify the query",
            )
    parser = tools.parser
    parser.error_level = ErrorLevel.RAISE  # (sqlglot restores it itself; be certain)
    try:
        trees = parser.parse(tokens, text)
    except ParseError as e:
        _parse_error(e, text, start, tokens)
    return tokens, trees


def _parse_error(e: ParseError, text: str, base: int, tokens: list[Any]) -> NoReturn:
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
        position = base + max(0, min(position, len(text) - 1)) + 1
    highlight = str(info.get("highlight") or "").strip()
    desc = str(info.get("description") or "invalid syntax")
    if "<class" in desc or "Required keyword" in desc:
        desc = "incomplete or invalid syntax"
    near = f" at or near {fragment(highlight, 40)!r}" if highlight else ""
    refuse(
        "PARSE_ERROR",
        f"syntax error{near}: {desc}; {ALLOWED}",
        hint="check the syntax (PostgreSQL dialect)",
        position=position,
    )
