"""The schema model: plain, pure data describing one database.

Introspection fills it, the renderer turns it into Markdown, the validator checks
names and function volatility against it, and ``ask`` picks context from it. It
round-trips through JSON (the schema cache).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Column:
    name: str
    type: str  # as formatted by format_type(), e.g. "numeric(12,2)", "mpaa_rating"
    nullable: bool = True
    default: str | None = None
    identity: str | None = None  # "ALWAYS" | "BY DEFAULT" | None
    generated: str | None = None  # generation expression of a stored generated column
    comment: str | None = None
    base_type: str | None = None  # domain's underlying type, when type is a domain
    enum_labels: list[str] | None = None  # when type (or domain base) is an enum
    samples: list[str] | None = None  # a few sample values (low-cardinality columns)
    distinct_estimate: float | None = None
    samples_withheld: bool = False  # sensitive-looking name: samples deliberately not collected
    samples_complete: bool = False  # samples hold every distinct non-null value
    # profile (pg_mcp.db.profiles), on the basis its table's ``profile_basis`` names
    null_share: float | None = None  # 0..1
    distinct_count: int | None = None  # distinct non-null values (estimated from statistics)
    unique_observed: bool = False  # every non-null value distinct (no constraint says so)
    min_value: str | None = None  # numbers, dates and times, and text in an ISO date format
    max_value: str | None = None
    value_format: str | None = None  # text holding dates or numbers: "YYYY-MM-DD", "integer", ...
    epoch_unit: str | None = None  # integers in the Unix-epoch range: "seconds" | "milliseconds"
    # from the notes people keep (pg_mcp.refs.notes), not from the database
    note: str | None = None
    unit: str | None = None


# Constraint.kind of a relationship no foreign key declares (pg_mcp.db.inference): its
# ``definition`` is the evidence ("100 % of 412 values match, target unique").
INFERRED = "inferred foreign key"


@dataclass
class Constraint:
    name: str
    kind: str  # "primary key" | "unique" | "foreign key" | "check" | "exclusion" | INFERRED
    columns: list[str] = field(default_factory=list)
    definition: str = ""  # pg_get_constraintdef()
    ref_schema: str | None = None
    ref_table: str | None = None
    ref_columns: list[str] | None = None
    comment: str | None = None


@dataclass
class Index:
    name: str
    method: str  # btree, gin, gist, hash, brin, ...
    columns: list[str]  # column names or expressions
    unique: bool = False
    primary: bool = False
    predicate: str | None = None
    definition: str = ""  # pg_get_indexdef()
    comment: str | None = None
    inherited: bool = False  # a partition's index attached to its parent's partitioned index


@dataclass
class Table:
    schema: str
    name: str
    kind: str  # "table" | "partitioned table" | "view" | "materialized view" | "foreign table"
    columns: list[Column] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)
    comment: str | None = None
    row_estimate: int | None = None  # reltuples; None/-1 when never analysed
    definition: str | None = None  # views and materialized views
    partition_key: str | None = None  # partitioned tables
    partitions: list[str] = field(default_factory=list)  # "schema.name" of children
    partition_of: str | None = None  # "schema.name" of the parent
    partition_bound: str | None = None
    populated: bool = True  # materialized views created WITH NO DATA are not
    # what the column profiles rest on: "all rows" | "statistics" | "first 10,000 rows" | None
    profile_basis: str | None = None
    note: str | None = None  # from the notes people keep (pg_mcp.refs.notes)
    # Columns the access policy removed from ``columns`` (never rendered): lets the validator
    # refuse ``SELECT *`` exactly where a denied column exists, and only there. None = not
    # known (a hand-built model): the validator then assumes any matching pattern may apply.
    hidden_columns: list[str] | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def is_view(self) -> bool:
        return self.kind in ("view", "materialized view")


@dataclass
class EnumType:
    schema: str
    name: str
    labels: list[str]
    comment: str | None = None


@dataclass
class DomainType:
    schema: str
    name: str
    base_type: str
    nullable: bool = True
    default: str | None = None
    checks: list[str] = field(default_factory=list)
    comment: str | None = None


@dataclass
class CompositeField:
    name: str
    type: str


@dataclass
class CompositeType:
    schema: str
    name: str
    fields: list[CompositeField] = field(default_factory=list)
    comment: str | None = None


@dataclass
class Sequence:
    schema: str
    name: str
    data_type: str = "bigint"
    owned_by: str | None = None  # "schema.table.column"
    comment: str | None = None


@dataclass
class Function:
    schema: str
    name: str
    arguments: str  # pg_get_function_arguments()
    returns: str  # pg_get_function_result()
    language: str
    volatility: str  # "immutable" | "stable" | "volatile"
    kind: str = "function"  # "function" | "procedure" | "aggregate" | "window"
    comment: str | None = None
    extension: str | None = None  # the extension it belongs to (None: a user function)

    @property
    def signature(self) -> str:
        return f"{self.schema}.{self.name}({self.arguments})"


@dataclass
class Extension:
    name: str
    version: str
    schema: str
    comment: str | None = None


@dataclass
class DatabaseSchema:
    name: str
    server_version: str = ""
    comment: str | None = None
    size_bytes: int | None = None
    schemas: list[str] = field(default_factory=list)
    schema_comments: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)  # tables, views, matviews, foreign tables
    enums: list[EnumType] = field(default_factory=list)
    domains: list[DomainType] = field(default_factory=list)
    composites: list[CompositeType] = field(default_factory=list)
    sequences: list[Sequence] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    search_path: list[str] = field(default_factory=lambda: ["public"])
    # from the notes people keep (pg_mcp.refs.notes): applied after loading, never cached
    note: str | None = None
    glossary: dict[str, str] = field(default_factory=dict)  # term -> meaning / English words
    glossary_shared: list[str] = field(default_factory=list)  # of those, from _glossary.toml
    examples: list[dict[str, Any]] = field(default_factory=list)  # {question, sql, verified}

    # --- lookups -------------------------------------------------------------
    def table(self, name: str, schema: str | None = None) -> Table | None:
        """Find a relation by name, honouring search_path when no schema is given."""
        if schema is not None:
            for t in self.tables:
                if t.schema == schema and t.name == name:
                    return t
            return None
        for s in self.search_path:
            found = self.table(name, s)
            if found:
                return found
        return None

    def functions_named(self, name: str, schema: str | None = None) -> list[Function]:
        return [
            f for f in self.functions if f.name == name and (schema is None or f.schema == schema)
        ]

    # --- JSON ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _plain(self)  # dataclasses.asdict, minus its deep copies (5x faster)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatabaseSchema:
        return _build(cls, data)

    @classmethod
    def from_json(cls, text: str) -> DatabaseSchema:
        return cls.from_dict(json.loads(text))


_NESTED: dict[tuple[type, str], type] = {
    (DatabaseSchema, "tables"): Table,
    (DatabaseSchema, "enums"): EnumType,
    (DatabaseSchema, "domains"): DomainType,
    (DatabaseSchema, "composites"): CompositeType,
    (DatabaseSchema, "sequences"): Sequence,
    (DatabaseSchema, "functions"): Function,
    (DatabaseSchema, "extensions"): Extension,
    (Table, "columns"): Column,
    (Table, "constraints"): Constraint,
    (Table, "indexes"): Index,
    (CompositeType, "fields"): CompositeField,
}


def _build(cls: type[T], data: dict[str, Any]) -> T:
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            continue  # tolerate caches written by newer versions
        sub = _NESTED.get((cls, key))
        kwargs[key] = [_build(sub, v) for v in value] if sub is not None else value
    return cls(**kwargs)


_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(obj: Any) -> Any:
    """Dataclasses -> dicts, lists -> lists, dicts -> dicts (what json.dumps needs)."""
    cls = type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(obj):
            if cls is list or cls is tuple:
                return [_plain(v) for v in obj]
            if cls is dict:
                return {k: _plain(v) for k, v in obj.items()}
            return obj
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(obj))
    out = {}
    for name in names:
        v = getattr(obj, name)
        out[name] = v if v is None or v.__class__ in _SCALARS else _plain(v)
    return out


_SCALARS = frozenset({str, int, float, bool})
