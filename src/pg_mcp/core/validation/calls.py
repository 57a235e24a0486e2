"""What a function call in the tree is: its PostgreSQL name, schema, and what the reviewed
built-in table (``pg_mcp.core.functions``) says of it.

sqlglot parses many functions into typed nodes (``Length``, ``Rand``, ...) and forgets how
they were spelled; ``typed_function`` knows every spelling of such a class, and ``CallReader``
looks at the text when a spelling that is not an allowed built-in may have been written
(``len(x)`` is not ``length(x)`` to PostgreSQL). The walk turns every call node into a
``Call``; the rules in ``rules/functions.py`` and ``rules/secrets.py`` judge them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from sqlglot import exp

from pg_mcp.core import functions as fn
from pg_mcp.core.functions import Family, forbidden_family
from pg_mcp.core.validation.lexer import LexError, iter_lex
from pg_mcp.core.validation.parse import DIALECT, Tools, arg_name, norm

# sqlglot class -> the PostgreSQL function it was parsed from (where the names differ)
_PG_NAMES: Mapping[str, str] = MappingProxyType(
    {
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
)
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


class TypedCall(NamedTuple):
    name: str  # the PostgreSQL name reported (Verdict.functions)
    family: Family | None  # a deny family any spelling of it falls in
    builtin: fn.Builtin | None  # an allowed built-in it stands for
    syntax: bool  # SQL syntax rather than a call (nothing to resolve)
    spellings: frozenset[str]  # every name it may have been written as
    # spellings that are neither allowed built-ins nor syntax: written as a call, such a
    # name is whatever function PostgreSQL finds by it (len(x) is not length(x))
    other: re.Pattern[str] | None
    probe: re.Pattern[str]  # matches any text CallReader.written could find something in


class Call(NamedTuple):
    """One function call of the query."""

    node: exp.Func
    schema: str | None
    name: str
    quoted: bool
    pending: bool = False  # not a built-in: a user or extension function, resolved by the catalog
    nargs: int | None = None
    family: Family | None = None  # the deny family it falls in (rules/functions.py)
    unlisted: bool = True  # no deny family by its name: the secret families look at it
    at: int = 0  # the walk step it was met at


def is_call(node: exp.Expression, tools: Tools) -> bool:
    """A call for Verdict.functions (not an operator or syntax sqlglot models as a Func)."""
    cls = type(node)
    found = tools.is_call.get(cls)
    if found is None:
        found = tools.is_call[cls] = cls is exp.Anonymous or not issubclass(cls, _NOT_CALLS)
    return found


def typed_function_name(cls: type, tools: Tools) -> str:
    names = tools.func_names
    if names is None:
        names = {}
        for cls_name, pg_name in _PG_NAMES.items():
            c = getattr(exp, cls_name, None)
            if isinstance(c, type):
                names[c] = pg_name
        for key, builder in DIALECT.parser_class.FUNCTIONS.items():
            c = builder if isinstance(builder, type) else getattr(builder, "__self__", None)
            if isinstance(c, type) and issubclass(c, exp.Func):
                names.setdefault(c, key.lower())
        tools.func_names = names
    found = names.get(cls)
    if found:
        return found
    try:
        return str(cls.sql_names()[0]).lower()  # type: ignore[attr-defined]
    except Exception:
        return str(getattr(cls, "key", cls.__name__)).lower()


def _typed_spellings(cls: type, tools: Tools) -> list[str]:
    """Every function name sqlglot's postgres parser turns into ``cls``."""
    names = [typed_function_name(cls, tools)]
    for key, builder in DIALECT.parser_class.FUNCTIONS.items():
        c = builder if isinstance(builder, type) else getattr(builder, "__self__", None)
        if c is cls:
            names.append(key.lower())
    with contextlib.suppress(Exception):
        names.extend(str(a).lower() for a in cls.sql_names())  # type: ignore[attr-defined]
    return list(dict.fromkeys(names))


def typed_function(cls: type, tools: Tools) -> TypedCall:
    """What a function sqlglot parsed into a typed node is: denied when any name it may have
    been written as is denied; else allowed when one of them is an allowed built-in (the
    text was one of those names, and none of them is harmful); else SQL syntax, or a name
    to resolve against the catalog like any user function."""
    found: TypedCall | None = tools.typed.get(cls)
    if found is not None:
        return found
    spellings = _typed_spellings(cls, tools)
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
    words = r"(?<![\w$])(?:" + "|".join(map(re.escape, other)) + r")(?![\w$])"
    rx = re.compile(words, re.I) if other else None
    # a cheap superset of what CallReader.written looks for: one of ``other`` as a word, or a
    # spelling in double quotes in any case ("Random"); only then is the text lexed
    alts = [words] if other else []
    alts.append('"(?:' + "|".join(map(re.escape, spellings)) + ')"')
    probe = re.compile("|".join(alts), re.I)
    found = tools.typed[cls] = TypedCall(
        name, fam, allowed, syntax, frozenset(spellings), rx, probe
    )
    return found


class CallReader:
    """Turns the call nodes of one SQL text into Calls."""

    def __init__(self, sql: str, tools: Tools) -> None:
        self.sql = sql
        self.tools = tools
        # names the text calls (folded -> (name, quoted)), lexed lazily: see written
        self._written: dict[str, tuple[str, bool]] | None = None

    def call(self, node: exp.Func, at: int) -> Call:
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
            typed = self.tools.typed.get(type(node))
            if typed is None:
                typed = typed_function(type(node), self.tools)
            name, fam = typed.name, typed.family
            if fam is None and typed.probe.search(self.sql) is not None:
                # sqlglot forgets the spelling: len(x) and "Random"() become Length and Rand,
                # yet PostgreSQL calls the functions named len and Random: when the text
                # calls such a name, resolve that name instead
                written = self.written(typed)
                if written is not None:
                    typed = None
                    name, quoted, nargs = written[0], written[1], len(node.expressions)
                    fam = forbidden_family(name, nargs)
        schema = None
        parent = node.parent
        if isinstance(parent, exp.Dot) and parent.expression is node:
            q = parent.this
            schema = norm(q.expression if isinstance(q, exp.Dot) else q)
        elif isinstance(parent, exp.Table) and parent.this is node:
            schema = arg_name(parent, "db")
        unlisted = fam is None
        if fam is None and (schema is None or schema == "pg_catalog"):
            if typed is not None:
                if typed.builtin is not None or (typed.syntax and schema is None):
                    return Call(node, schema, name, quoted, at=at)
            else:
                b = fn.builtin(name, nargs)
                if b is not None:
                    if b.allowed:
                        return Call(node, schema, name, quoted, at=at)
                    fam = b.family
        if fam is None:  # a user or extension function: resolved against the catalog
            return Call(node, schema, name, quoted, True, nargs, at=at)
        return Call(node, schema, name, quoted, family=fam, unlisted=unlisted, at=at)

    def written(self, typed: TypedCall) -> tuple[str, bool] | None:
        """(name as PostgreSQL resolves it, quoted) of a call in the text that sqlglot may
        have parsed into ``typed`` but that is not one of its allowed built-in or syntax
        spellings: a spelling of ``typed.other`` (``len(``), or a quoted name that is not
        lower case (``"Random"(``). None when the text has none."""
        sql = self.sql
        found = self._written
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
            self._written = found
        for folded, (name, quoted) in found.items():
            if folded in typed.spellings and (
                quoted or (typed.other is not None and typed.other.fullmatch(folded))
            ):
                return name, quoted
        return None
