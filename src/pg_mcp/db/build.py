"""The catalog document -> the core schema model (pure: no I/O, the policy applied).

``Builder`` decodes each list of the document (``pg_mcp.db.catalog_sql``) into
``DatabaseSchema`` objects, removing what the access policy denies and what would reveal
it (foreign keys to hidden tables, indexes and checks on denied columns, sequences they
own, view definitions naming them); ``build`` runs it, plans the second pass
(``pg_mcp.db.second_pass``) and puts the model in its stable order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pg_mcp.core.model import (
    Column,
    CompositeField,
    CompositeType,
    Constraint,
    DatabaseSchema,
    DomainType,
    EnumType,
    Extension,
    Function,
    Index,
    Sequence,
    Table,
)
from pg_mcp.core.policy import is_column_denied, is_schema_denied, is_table_denied
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.catalog_sql import sampling
from pg_mcp.db.second_pass import Plan, plan_counts, plan_samples

WITHHELD_DEFINITION = "-- definition withheld: it names an object the access policy hides"

_KIND = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}
_CONSTRAINT_KIND = {
    "p": "primary key",
    "u": "unique",
    "f": "foreign key",
    "c": "check",
    "x": "exclusion",
}
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
_PROKIND = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
_IDENTITY = {"a": "ALWAYS", "d": "BY DEFAULT"}


@dataclass
class Rel:
    table: Table | None  # None for composite types
    relkind: str
    parent_oid: int | None
    readable: bool
    size: int | None  # bytes, only for never-analysed tables
    attnames: dict[int, str] = field(default_factory=dict)  # every column, denied ones too
    category: dict[str, str] = field(default_factory=dict)
    col_readable: dict[str, bool] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)
    has_stats: bool = False


def build(
    name: str, data: dict[str, Any], settings: Settings, *, builder: Builder | None = None
) -> tuple[DatabaseSchema, Plan]:
    """The model from the catalog document, and the statements of the second pass."""
    b = builder or Builder(name, data, settings)
    b.types()
    b.relations()
    b.columns()
    b.partitions()
    b.constraints()
    b.indexes()
    b.routines_and_sequences()
    b.withhold_revealing_definitions()
    plan = plan_samples(b.rels, data.get("stats") or [], settings) if sampling(settings) else []
    plan += plan_counts(b.rels, {id(p[1][0]) for p in plan})
    db = b.db
    db.tables = [r.table for r in b.rels.values() if r.table is not None]
    db.composites = list(b.composites.values())
    _sum_partitions(db)
    _sort(db)
    return db, plan


class Builder:
    """Decodes each list of the catalog document into the model, applying the policy."""

    def __init__(self, name: str, data: dict[str, Any], settings: Settings) -> None:
        self.data, self.policy = data, settings.policy
        self.col_denied = _column_check(self.policy)
        dbname, size, comment, version, search_path = data["database"]
        self.db = DatabaseSchema(
            name=name or dbname,
            server_version=version or "",
            comment=comment,
            size_bytes=int(size) if size is not None else None,
            search_path=[s for s in search_path or [] if not is_schema_denied(self.policy, s)],
        )
        for nsp, ns_comment in sorted(data.get("schemas") or []):
            if not is_schema_denied(self.policy, nsp):
                self.db.schemas.append(nsp)
                if ns_comment:
                    self.db.schema_comments[nsp] = ns_comment
        self.schemas = set(self.db.schemas)
        self.enum_labels: dict[int, list[str]] = {}
        self.domain_base: dict[int, tuple[str, int]] = {}  # domain oid -> (base type, its oid)
        self.rels: dict[int, Rel] = {}
        self.composites: dict[int, CompositeType] = {}
        self.denied_rels: set[str] = set()
        self.visible: set[tuple[str, str]] = set()

    def rows(self, key: str) -> list[list[Any]]:
        return self.data.get(key) or []

    def types(self) -> None:
        for oid, nsp, typname, labels, comment, listed in self.rows("enums"):
            self.enum_labels[oid] = list(labels or [])
            if listed and nsp in self.schemas:
                self.db.enums.append(EnumType(nsp, typname, list(labels or []), comment))
        for row in self.rows("domains"):
            oid, nsp, typname, base, base_oid, notnull, default, checks, comment, listed = row
            self.domain_base[oid] = (base, base_oid)
            if listed and nsp in self.schemas:
                self.db.domains.append(
                    DomainType(
                        nsp, typname, base, not notnull, default, list(checks or []), comment
                    )
                )

    def enum_of(self, type_oid: int) -> list[str] | None:
        for _ in range(16):  # domains over domains
            if type_oid not in self.domain_base:
                break
            type_oid = self.domain_base[type_oid][1]
        labels = self.enum_labels.get(type_oid)
        return list(labels) if labels is not None else None

    def relations(self) -> None:
        for row in self.rows("relations"):
            oid, nsp, relname, kind, reltuples, populated, comment, viewdef = row[:8]
            partkey, bound, parent, readable, size, type_comment = row[8:]
            if nsp not in self.schemas:
                continue
            if kind == "c":
                self.composites[oid] = CompositeType(nsp, relname, comment=type_comment)
                self.rels[oid] = Rel(None, kind, None, False, None)
                continue
            if is_table_denied(self.policy, nsp, relname):
                self.denied_rels.add(relname)
                continue
            t = Table(
                schema=nsp,
                name=relname,
                kind=_KIND[kind],
                comment=comment,
                row_estimate=int(reltuples) if reltuples is not None and reltuples >= 0 else None,
                definition=viewdef.strip() if viewdef else None,
                partition_key=partkey,
                partition_bound=bound,
                populated=bool(populated),
                hidden_columns=[],  # introspection knows exactly what the policy removed
            )
            if t.row_estimate is None and size == 0:
                t.row_estimate = 0  # never analysed, but its heap is empty
            self.rels[oid] = Rel(t, kind, parent, bool(readable), size)
            self.visible.add((nsp, relname))

    def columns(self) -> None:
        rels, domain_base, denied_check = self.rels, self.domain_base, self.col_denied
        check = bool(self.policy.deny_columns)
        enums: dict[int, list[str] | None] = {}  # type oid -> enum labels (through domains)
        rows = self.rows("columns")
        rows.sort()  # by (attrelid, attnum): unique, so the rest is never compared
        for row in rows:
            relid, attnum, attname, typ, notnull, default, identity, generated, comment = row[:9]
            typoid, category, readable = row[9:]
            rel = rels.get(relid)
            if rel is None:
                continue
            rel.attnames[attnum] = attname
            t = rel.table
            if t is None:
                self.composites[relid].fields.append(CompositeField(attname, typ))
                continue
            if check and denied_check(t.schema, t.name, attname):
                rel.denied.add(attname)
                t.hidden_columns.append(attname)
                continue
            if typoid in enums:
                labels = enums[typoid]
            else:
                labels = enums[typoid] = self.enum_of(typoid)
            base = domain_base.get(typoid)
            t.columns.append(
                Column(
                    name=attname,
                    type=typ,
                    nullable=not notnull,
                    default=None if generated else default,
                    identity=_IDENTITY.get(identity) if identity else None,
                    generated=default if generated else None,
                    comment=comment,
                    base_type=base[0] if base is not None else None,
                    enum_labels=list(labels) if labels is not None else None,
                )
            )
            rel.category[attname] = category
            rel.col_readable[attname] = bool(readable)

    def partitions(self) -> None:
        for rel in self.rels.values():
            parent = self.rels.get(rel.parent_oid) if rel.parent_oid is not None else None
            if rel.table is not None and parent is not None and parent.table is not None:
                rel.table.partition_of = parent.table.qualified
                parent.table.partitions.append(rel.table.qualified)

    def constraints(self) -> None:
        for row in self.rows("constraints"):
            relid, conname, contype, conkey, definition, fnsp, frel, fcols, comment = row
            rel = self.rels.get(relid)
            if rel is None or rel.table is None:
                continue
            cols = [rel.attnames.get(n, "?") for n in conkey or []]
            if rel.denied and _touches(rel.denied, [*cols, definition or ""]):
                continue
            kind = _CONSTRAINT_KIND[contype]
            con = Constraint(conname, kind, cols, definition or "", comment=comment)
            if contype == "f":
                fcols = list(fcols or [])
                if (fnsp, frel) not in self.visible or any(
                    self.col_denied(fnsp, frel, c) for c in fcols
                ):
                    continue  # naming it would reveal what the policy hides
                con.ref_schema, con.ref_table, con.ref_columns = fnsp, frel, fcols
            rel.table.constraints.append(con)

    def indexes(self) -> None:
        for row in self.rows("indexes"):
            relid, name, method, unique, primary, indkey, nkey, options, exprs, pred = row[:10]
            comment, inherited, exact = row[10:]
            rel = self.rels.get(relid)
            if rel is None or rel.table is None:
                continue
            cols = _index_columns(rel, indkey or [], nkey, exprs)
            include = [rel.attnames.get(n, "?") for n in indkey[nkey:] if n] if indkey else []
            if rel.denied and _touches(rel.denied, [*cols, *include, pred or ""]):
                continue
            t = rel.table
            # pg_get_indexdef() for expression and partial indexes; plain ones are spelled here
            definition = exact or _index_definition(
                t, name, method, unique, cols, options or [], include, pred
            )
            t.indexes.append(
                Index(name, method, cols, bool(unique), bool(primary), pred, definition,
                      comment, bool(inherited))
            )  # fmt: skip

    def routines_and_sequences(self) -> None:
        for nsp, seqname, dtype, onsp, orel, ocol, comment in self.rows("sequences"):
            if nsp not in self.schemas:
                continue
            owned = None
            if orel is not None:
                if (onsp, orel) not in self.visible or self.col_denied(onsp, orel, ocol):
                    continue
                owned = f"{onsp}.{orel}.{ocol}"
            self.db.sequences.append(Sequence(nsp, seqname, dtype, owned, comment))
        for row in self.rows("functions"):
            nsp, proname, args, result, lang, vol, kind, comment, ext = row
            # extension members: wherever the extension put them (pg_catalog too), unless
            # the policy hides that schema
            if nsp in self.schemas or (ext is not None and not is_schema_denied(self.policy, nsp)):
                self.db.functions.append(
                    Function(nsp, proname, args or "", result or "", lang,
                             _VOLATILITY.get(vol, vol), _PROKIND.get(kind, kind), comment, ext)
                )  # fmt: skip
        for extname, version, nsp, comment in self.rows("extensions"):
            self.db.extensions.append(Extension(extname, version, nsp, comment))

    def withhold_revealing_definitions(self) -> None:
        """A view whose definition names a hidden table or column would reveal it."""
        hidden = set(self.denied_rels)
        for rel in self.rels.values():
            hidden |= rel.denied
        for rel in self.rels.values():
            t = rel.table
            if t is not None and t.definition and _touches(hidden, [t.definition]):
                t.definition = WITHHELD_DEFINITION


def _column_check(policy: Policy) -> Any:
    """is_column_denied for tables already known to be visible (no globs: always False)."""
    if not policy.deny_columns:
        return lambda schema, table, column: False
    return lambda schema, table, column: is_column_denied(policy, schema, table, column)


def _index_columns(rel: Rel, indkey: list[int], nkey: int, exprs: list[str] | None) -> list[str]:
    cols = []
    for pos, attnum in enumerate(indkey[:nkey]):
        if attnum == 0:
            cols.append(exprs[pos] if exprs and pos < len(exprs) else "?")
        else:
            cols.append(rel.attnames.get(attnum, "?"))
    return cols


def _index_definition(
    t: Table,
    name: str,
    method: str,
    unique: bool,
    cols: list[str],
    options: list[int],
    include: list[str],
    pred: str | None,
) -> str:
    """A plain-column index as CREATE INDEX (what pg_get_indexdef() prints, qualified)."""
    # the common case: plain ascending columns, spelled as they are
    plain = not any(options) and all(map(_plain, cols))
    keys = cols if plain else _index_keys(cols, options)
    text = (
        f"CREATE {'UNIQUE ' if unique else ''}INDEX {_q(name)} ON {_q(t.schema)}.{_q(t.name)}"
        f" USING {method} ({', '.join(keys)})"
    )
    if include:
        text += f" INCLUDE ({', '.join(_q(c) for c in include)})"
    if pred:
        text += f" WHERE {pred}"
    return text


def _index_keys(cols: list[str], options: list[int]) -> list[str]:
    keys = []
    for pos, col in enumerate(cols):
        opt = options[pos] if pos < len(options) else 0
        key = col if _plain(col) else (col if col.startswith("(") else f"({col})")
        if opt & 1:
            key += " DESC" + ("" if opt & 2 else " NULLS LAST")
        elif opt & 2:
            key += " NULLS FIRST"
        keys.append(key)
    return keys


@lru_cache(maxsize=65536)
def _plain(expr: str) -> bool:
    return re.fullmatch(r'[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+"', expr) is not None


@lru_cache(maxsize=65536)
def _q(name: str) -> str:
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _touches(names: set[str], texts: list[str]) -> bool:
    """Does any text name one of ``names`` (as a whole word, quoted or not)?"""
    if not names:
        return False
    for text in texts:
        for name in names:
            if name == text or re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", text):
                return True
    return False


def _sum_partitions(db: DatabaseSchema) -> None:
    """Partitioned parents without their own estimate get the sum of their partitions'."""
    by_name = {t.qualified: t for t in db.tables}

    def total(t: Table, depth: int = 0) -> int | None:
        if not t.partitions or t.row_estimate or depth > 32:
            return t.row_estimate
        known = [n for n in (total(by_name[p], depth + 1) for p in t.partitions) if n is not None]
        return sum(known) if known else t.row_estimate

    for t in db.tables:
        if t.partitions:
            t.row_estimate = total(t)


def _sort(db: DatabaseSchema) -> None:
    db.tables.sort(key=lambda t: (t.schema, t.name))
    for t in db.tables:
        t.partitions.sort()
        t.constraints.sort(key=lambda c: (c.kind, c.name))
        t.indexes.sort(key=lambda i: i.name)
    db.enums.sort(key=lambda e: (e.schema, e.name))
    db.domains.sort(key=lambda d: (d.schema, d.name))
    db.composites.sort(key=lambda c: (c.schema, c.name))
    db.sequences.sort(key=lambda s: (s.schema, s.name))
    db.functions.sort(key=lambda f: (f.schema, f.name, f.arguments, f.kind))
    db.extensions.sort(key=lambda e: e.name)
