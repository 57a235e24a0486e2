"""Catalog introspection: one database -> ``DatabaseSchema`` (the only I/O of the reference part).

Two SQL statements per database read every catalog the model needs, each returning
one JSON document (the server does the aggregation; one round trip each): database,
schemas, relations, columns, constraints, indexes, enums, domains, sequences,
functions, extensions and the ``pg_stats`` of analysed tables, one after the other on
one psycopg connection (read-only, with a statement timeout). Tables never analysed get
a second, bounded pass (exact count when small, and a DISTINCT over their first rows for
sample values), one statement per table; then the data pass (``pg_mcp.db.inference``)
infers undeclared relationships within a time budget.

Objects that belong to extensions (``pg_depend.deptype = 'e'``) and system schemas
are skipped; the access policy removes denied schemas, tables and columns entirely
(and what would reveal them: foreign keys to them, indexes and checks on denied
columns, sequences they own, view definitions naming them). Denied or
sensitive-looking columns are never sampled: the policy's globs become regular
expressions in the statement, so their values do not even leave the server.

``start()`` runs all of it on a worker thread (psycopg releases the GIL while it waits
for the server), so a caller can render one database while the next is introspected.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import psycopg

from pg_mcp.core.errors import PgMcpError
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
from pg_mcp.db.pools import utility_transaction
from pg_mcp.db.profiles import ColumnInput, TableInput

# A second-pass statement and what its result fills in: (table, count?, sampled columns).
_Plan = list[tuple[str, tuple[Table, bool, list[Column]]]]

# Columns whose values are never sampled even when the policy allows them.
SENSITIVE = re.compile(
    r"pass(word|wd)?|pwd|secret|token|api_?key|apikey|hash|salt|credential|private_?key", re.I
)
# Sampled: enum-like columns (pg_stats sees a fixed number of distinct values, at most
# LOW_CARDINALITY) and columns with at most max_samples distinct values in all.
LOW_CARDINALITY = 100
SCAN_ROWS = 10_000  # a never-analysed table: rows counted / scanned for samples at most
SAMPLE_MAX_CHARS = 60
WITHHELD_DEFINITION = "-- definition withheld: it names an object the access policy hides"

_NS = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
)


def _not_ext(classid: str, objid: str) -> str:
    """Not a member of an extension (``ext``: every member, read once per statement)."""
    return (
        f"NOT EXISTS (SELECT FROM ext WHERE ext.classid = '{classid}'::regclass"
        f" AND ext.objid = {objid})"
    )


def _desc(alias: str, objoid: str, catalog: str, subid: str = "0") -> str:
    return (
        f"LEFT JOIN pg_description {alias} ON {alias}.objoid = {objoid}"
        f" AND {alias}.classoid = '{catalog}'::regclass AND {alias}.objsubid = {subid}"
    )


# The catalog, as json_agg lists of json_build_array rows (positions decoded by _Builder),
# in two statements (their keys do not overlap).
_CTE = f"""
WITH ext AS (
  SELECT classid, objid FROM pg_depend
  WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
), ns AS (
  SELECT n.oid, n.nspname FROM pg_namespace n
  WHERE {_NS} AND {_not_ext("pg_namespace", "n.oid")}
), rel AS (
  SELECT c.oid, ns.nspname, c.relname, c.relkind, c.reltuples, c.relispopulated,
         c.relispartition, c.relpartbound, c.reltype,
         c.relkind IN ('r', 'p', 'm') AND has_table_privilege(c.oid, 'SELECT') AS readable
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
    AND {_not_ext("pg_class", "c.oid")} AND {_not_ext("pg_type", "c.reltype")}
)
"""

_LISTS: dict[str, str] = {
    "database": """
  SELECT json_build_array(current_database(), pg_database_size(current_database()),
         shobj_description(d.oid, 'pg_database'), current_setting('server_version'),
         current_schemas(false))
  FROM pg_database d WHERE d.datname = current_database()
""",
    "schemas": f"""
  SELECT json_agg(json_build_array(ns.nspname, d.description)) FROM ns
  {_desc("d", "ns.oid", "pg_namespace")}
""",
    "relations": f"""
  SELECT json_agg(json_build_array(r.oid, r.nspname, r.relname, r.relkind, r.reltuples,
         r.relispopulated, d.description,
         CASE WHEN r.relkind IN ('v', 'm') THEN pg_get_viewdef(r.oid, true) END,
         CASE WHEN r.relkind = 'p' THEN pg_get_partkeydef(r.oid) END,
         CASE WHEN r.relispartition THEN pg_get_expr(r.relpartbound, r.oid, true) END,
         CASE WHEN r.relispartition THEN
           (SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = r.oid LIMIT 1) END,
         r.readable,
         CASE WHEN r.reltuples < 0 AND r.relkind IN ('r', 'm') AND r.readable
              THEN pg_relation_size(r.oid) END,
         td.description))
  FROM rel r
  {_desc("d", "r.oid", "pg_class")}
  LEFT JOIN pg_description td ON r.relkind = 'c' AND td.objoid = r.reltype
       AND td.classoid = 'pg_type'::regclass AND td.objsubid = 0
""",
    "columns": f"""
  SELECT json_agg(json_build_array(a.attrelid, a.attnum, a.attname,
         format_type(a.atttypid, a.atttypmod), a.attnotnull,
         CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid)
              WHEN a.atthasdef THEN pg_get_expr(ad.adbin, 0) END,
         a.attidentity, a.attgenerated, d.description, a.atttypid, t.typcategory,
         CASE WHEN r.readable THEN true WHEN r.relkind = 'c' THEN false
              ELSE has_column_privilege(a.attrelid, a.attnum, 'SELECT') END))
  FROM rel r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  {_desc("d", "a.attrelid", "pg_class", "a.attnum")}
""",
    "constraints": f"""
  SELECT json_agg(json_build_array(co.conrelid, co.conname, co.contype, co.conkey,
         pg_get_constraintdef(co.oid, true), fn.nspname, fc.relname,
         CASE WHEN co.contype = 'f' THEN ARRAY(
           SELECT a.attname FROM unnest(co.confkey) WITH ORDINALITY k(num, ord)
           JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.num
           ORDER BY k.ord) END,
         d.description))
  FROM pg_constraint co
  JOIN rel r ON r.oid = co.conrelid
  LEFT JOIN pg_class fc ON fc.oid = co.confrelid
  LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
  {_desc("d", "co.oid", "pg_constraint")}
  WHERE co.contype IN ('p', 'u', 'f', 'c', 'x') AND co.conparentid = 0
""",
    "indexes": f"""
  SELECT json_agg(json_build_array(i.indrelid, ic.relname, am.amname, i.indisunique,
         i.indisprimary, i.indkey::int2[], i.indnkeyatts, i.indoption::int2[],
         CASE WHEN i.indexprs IS NOT NULL THEN ARRAY(
           SELECT pg_get_indexdef(i.indexrelid, k, true)
           FROM generate_series(1, i.indnkeyatts) k ORDER BY k) END,
         CASE WHEN i.indpred IS NOT NULL THEN pg_get_expr(i.indpred, i.indrelid, true) END,
         d.description,
         EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid),
         CASE WHEN i.indexprs IS NOT NULL OR i.indpred IS NOT NULL
              THEN pg_get_indexdef(i.indexrelid, 0, true) END))
  FROM pg_index i
  JOIN rel r ON r.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
  {_desc("d", "i.indexrelid", "pg_class")}
""",
    "enums": f"""
  SELECT json_agg(json_build_array(t.oid, n.nspname, t.typname,
         ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = t.oid
               ORDER BY e.enumsortorder),
         d.description, {_NS} AND {_not_ext("pg_type", "t.oid")}))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  {_desc("d", "t.oid", "pg_type")}
  WHERE t.typtype = 'e'
""",
    "domains": f"""
  SELECT json_agg(json_build_array(t.oid, n.nspname, t.typname,
         format_type(t.typbasetype, t.typtypmod), t.typbasetype, t.typnotnull, t.typdefault,
         ARRAY(SELECT pg_get_constraintdef(k.oid, true) FROM pg_constraint k
               WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname),
         d.description, {_NS} AND {_not_ext("pg_type", "t.oid")}))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  {_desc("d", "t.oid", "pg_type")}
  WHERE t.typtype = 'd'
""",
    "sequences": f"""
  SELECT json_agg(json_build_array(ns.nspname, c.relname, format_type(s.seqtypid, NULL),
         o.nspname, o.relname, o.attname, d.description))
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN ns ON ns.oid = c.relnamespace
  LEFT JOIN LATERAL (
    SELECT rn.nspname, rc.relname, ra.attname
    FROM pg_depend dp
    JOIN pg_class rc ON rc.oid = dp.refobjid
    JOIN pg_namespace rn ON rn.oid = rc.relnamespace
    JOIN pg_attribute ra ON ra.attrelid = dp.refobjid AND ra.attnum = dp.refobjsubid
    WHERE dp.classid = 'pg_class'::regclass AND dp.objid = c.oid
      AND dp.refclassid = 'pg_class'::regclass AND dp.deptype IN ('a', 'i')
    LIMIT 1) o ON true
  {_desc("d", "c.oid", "pg_class")}
  WHERE {_not_ext("pg_class", "c.oid")}
""",
    "functions": f"""
  SELECT json_agg(json_build_array(n.nspname, p.proname, pg_get_function_arguments(p.oid),
         pg_get_function_result(p.oid), l.lanname, p.provolatile, p.prokind, d.description,
         x.extname))
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
  LEFT JOIN LATERAL (
    SELECT e.extname FROM pg_depend dp JOIN pg_extension e ON e.oid = dp.refobjid
    WHERE dp.classid = 'pg_proc'::regclass AND dp.objid = p.oid
      AND dp.refclassid = 'pg_extension'::regclass AND dp.deptype = 'e'
    LIMIT 1) x ON true
  {_desc("d", "p.oid", "pg_proc")}
  WHERE CASE WHEN x.extname IS NULL THEN p.pronamespace IN (SELECT oid FROM ns)
             ELSE x.extname <> 'plpgsql' AND n.nspname NOT LIKE 'pg\\_t%' END
""",
    "extensions": f"""
  SELECT json_agg(json_build_array(e.extname, e.extversion, n.nspname, d.description))
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
  {_desc("d", "e.oid", "pg_extension")}
  WHERE e.extname <> 'plpgsql'
""",
    "stats": f"""
  SELECT json_agg(json_build_array(s.schemaname, s.tablename, s.attname, s.inherited,
         s.n_distinct,
         CASE WHEN ((s.n_distinct > 0 AND s.n_distinct <= {LOW_CARDINALITY})
                 OR (s.n_distinct < 0 AND -s.n_distinct * greatest(r.reltuples, 0) <= @MAX_SAMPLES@))
                AND @SAMPLEABLE@
              THEN coalesce(s.most_common_vals::text::text[], '{{}}')
                   || coalesce(s.histogram_bounds::text::text[], '{{}}') END))
  FROM pg_stats s JOIN rel r ON r.nspname = s.schemaname AND r.relname = s.tablename
  WHERE @SAMPLES@ AND s.schemaname NOT IN ('pg_catalog', 'information_schema')
""",
    "profile_stats": """
  SELECT json_agg(json_build_array(s.schemaname, s.tablename, s.attname, s.inherited,
         s.null_frac, s.n_distinct,
         CASE WHEN @SAMPLEABLE@ THEN (s.histogram_bounds::text::text[])[1] END,
         CASE WHEN @SAMPLEABLE@ THEN (s.histogram_bounds::text::text[])[
           array_length(s.histogram_bounds::text::text[], 1)] END))
  FROM pg_stats s
  WHERE @PROFILE@ AND s.schemaname NOT IN ('pg_catalog', 'information_schema')
""",
}
_GROUPS = (
    ("relations", "constraints", "sequences"),
    (
        "schemas",
        "enums",
        "domains",
        "functions",
        "extensions",
        "database",
        "columns",
        "indexes",
        "stats",
        "profile_stats",
    ),
)


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


def catalog_sql(settings: Settings) -> list[str]:
    """The catalog statements; each returns one JSON object (their keys do not overlap)."""
    out = []
    for group in _GROUPS:
        body = ",\n".join(f" '{key}', (\n{_LISTS[key]})" for key in group)
        sql = f"{_CTE}SELECT json_build_object(\n{body}\n)::text"
        sql = sql.replace("@SAMPLES@", "true" if _sampling(settings) else "false")
        sql = sql.replace("@PROFILE@", "true" if settings.data_budget > 0 else "false")
        sql = sql.replace("@SAMPLEABLE@", _sampleable_sql(settings))
        out.append(sql.replace("@MAX_SAMPLES@", str(int(settings.max_samples))))
    return out


def _sampleable_sql(settings: Settings) -> str:
    """SQL keeping pg_stats values of denied or sensitive-looking columns on the server."""
    policy = settings.policy
    column = "s.schemaname || '.' || s.tablename || '.' || s.attname"
    conditions = [f"s.attname !~* {_sql_literal(SENSITIVE.pattern)}"]
    for target, patterns in (
        ("s.schemaname", policy.deny_schemas),
        ("s.schemaname || '.' || s.tablename", policy.deny_tables),
        (column, policy.deny_columns),
    ):
        if patterns:
            regexes = ", ".join(_sql_literal(glob_regex(p)) for p in patterns)
            conditions.append(f"NOT ({target} ~* ANY (ARRAY[{regexes}]))")
    return " AND ".join(conditions)


def glob_regex(pattern: str) -> str:
    """A policy glob (fnmatch: * ? [seq] [!seq]) as an anchored PostgreSQL regular expression."""
    out, i, n = ["^"], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i + (pattern[i : i + 1] == "!")
            j += pattern[j : j + 1] == "]"
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append("\\[")
                continue
            body = pattern[i:j].replace("\\", "\\\\")
            i = j + 1
            if body.startswith("!"):
                body = "^" + body[1:]
            elif body.startswith("^"):
                body = "\\" + body
            out.append(f"[{body}]")
        else:
            out.append(re.escape(ch))
    return "".join(out) + "$"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sampling(settings: Settings) -> bool:
    return bool(settings.samples) and settings.max_samples > 0


# --- public API ------------------------------------------------------------------------------


def introspect(dsn: str, name: str, settings: Settings) -> DatabaseSchema:
    """Introspect one database (``dsn`` points at it) into a ``DatabaseSchema``."""
    return start(dsn, name, settings).result()


def start(dsn: str, name: str, settings: Settings) -> Introspection:
    """Send the catalog query now; ``.result()`` waits for it and builds the model."""
    return Introspection(dsn, name, settings)


class Introspection:
    """One database's introspection in flight, on its own thread (``result()`` waits)."""

    def __init__(self, dsn: str, name: str, settings: Settings) -> None:
        self.dsn, self.name, self.settings = dsn, name, settings
        self._cancelled = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self._outcome: DatabaseSchema | BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"introspect {name}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            self._outcome = self._introspect()
        except BaseException as exc:  # re-raised by result() on the caller's thread
            self._outcome = exc
        finally:
            self._conn = None

    def _introspect(self) -> DatabaseSchema:
        conn = _connect(self.dsn, self.name, self.settings)
        self._conn = conn
        with conn:
            data: dict[str, Any] = {}
            for text in _run_all(conn, catalog_sql(self.settings), self, strict=True):
                if not text:
                    raise PgMcpError("DB_ERROR", f"introspection of {self.name!r} returned nothing")
                data.update(json.loads(text))
            b = _Builder(self.name, data, self.settings)
            db, plan = build(self.name, data, self.settings, builder=b)
            if plan:
                outputs = _run_all(conn, [s for s, _ in plan], self, strict=False)
                apply_second_pass(plan, outputs, self.settings)
            if not self._cancelled.is_set() and self.settings.data_budget > 0:
                from pg_mcp.db.inference import data_pass

                inputs = profile_inputs(b.rels, data.get("profile_stats") or [])
                data_pass(
                    conn,
                    db,
                    self.settings,
                    profiles=inputs,
                    connect=lambda: _connect(self.dsn, self.name, self.settings),
                )
        return db

    def cancel(self) -> None:
        """Stop what is still running (the result is no longer wanted)."""
        self._cancelled.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.cancel_safe(timeout=2.0)
        self._thread.join(timeout=5.0)

    def result(self) -> DatabaseSchema:
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome


# --- building the model (pure) ---------------------------------------------------------------


@dataclass
class _Rel:
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
    name: str, data: dict[str, Any], settings: Settings, *, builder: _Builder | None = None
) -> tuple[DatabaseSchema, _Plan]:
    """The model from the catalog document, and the statements of the second pass."""
    b = builder or _Builder(name, data, settings)
    b.types()
    b.relations()
    b.columns()
    b.partitions()
    b.constraints()
    b.indexes()
    b.routines_and_sequences()
    b.withhold_revealing_definitions()
    plan = _plan_samples(b.rels, data.get("stats") or [], settings) if _sampling(settings) else []
    plan += _plan_counts(b.rels, {id(p[1][0]) for p in plan})
    db = b.db
    db.tables = [r.table for r in b.rels.values() if r.table is not None]
    db.composites = list(b.composites.values())
    _sum_partitions(db)
    _sort(db)
    return db, plan


def profile_inputs(rels: dict[int, _Rel], stats: list[list[Any]]) -> list[TableInput]:
    """What the column profiles may look at: readable columns of populated tables."""
    by_name: dict[tuple[str, str], tuple[_Rel, TableInput]] = {}
    out = []
    for rel in rels.values():
        t = rel.table
        if t is None or t.partition_of is not None or rel.relkind not in ("r", "p", "m"):
            continue
        if not t.populated:
            continue
        cols = [
            ColumnInput(c, rel.category.get(c.name, ""), not _sensitive(c.name))
            for c in t.columns
            if rel.col_readable.get(c.name)
        ]
        leading = {i.columns[0] for i in t.indexes if i.method == "btree" and i.columns}
        inp = TableInput(t, cols, btree_leading=leading)
        by_name[(t.schema, t.name)] = (rel, inp)
        out.append(inp)
    for nsp, tbl, att, inherited, null_frac, n_distinct, lo, hi in stats:
        found = by_name.get((nsp, tbl))
        if found is None:
            continue
        rel, inp = found
        if bool(inherited) != (rel.relkind == "p") and att in inp.stats:
            continue  # a partitioned parent has inherited stats; others prefer their own
        inp.stats[att] = (float(null_frac or 0), float(n_distinct or 0), lo, hi)
    return out


class _Builder:
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
        self.rels: dict[int, _Rel] = {}
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
                self.rels[oid] = _Rel(None, kind, None, False, None)
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
            self.rels[oid] = _Rel(t, kind, parent, bool(readable), size)
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


def _index_columns(rel: _Rel, indkey: list[int], nkey: int, exprs: list[str] | None) -> list[str]:
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
def _sensitive(name: str) -> bool:
    return SENSITIVE.search(name) is not None


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


# --- sample values and counts of never-analysed tables -------------------------------------


def _plan_samples(rels: dict[int, _Rel], stats: list[list[Any]], settings: Settings) -> _Plan:
    n = settings.max_samples
    by_name = {(r.table.schema, r.table.name): r for r in rels.values() if r.table is not None}
    chosen: dict[tuple[str, str, str], tuple[float, list[str] | None]] = {}
    for nsp, tbl, att, inherited, n_distinct, mcv in stats:
        rel = by_name.get((nsp, tbl))
        if rel is None:
            continue
        rel.has_stats = True
        # a partitioned parent only has inherited stats; other tables prefer their own
        if bool(inherited) != (rel.relkind == "p") and (nsp, tbl, att) in chosen:
            continue
        chosen[(nsp, tbl, att)] = (float(n_distinct or 0), mcv)

    plan: _Plan = []
    for rel in rels.values():
        t = rel.table
        if t is None or t.partition_of is not None:
            continue  # partitions are sampled through their parent
        if rel.relkind not in ("r", "p", "m") or (rel.relkind == "m" and not t.populated):
            continue
        wanted = []
        for col in t.columns:
            if rel.category.get(col.name) not in ("S", "B") or col.enum_labels is not None:
                continue
            if _sensitive(col.name):
                col.samples_withheld = True
            elif rel.col_readable.get(col.name):
                wanted.append(col)
        if not wanted:
            continue
        if rel.has_stats:
            for col in wanted:
                st = chosen.get((t.schema, t.name, col.name))
                if st is None:
                    continue
                n_distinct, values = st  # most common values and histogram bounds
                est = n_distinct if n_distinct >= 0 else -n_distinct * float(t.row_estimate or 0)
                col.distinct_estimate = round(est, 1)
                if values:
                    # the first N in sorted order, not the N most frequent: frequencies move
                    # with every ANALYZE, the set of values of an enum-like column does not
                    distinct = _clean(values, col)
                    col.samples = distinct[:n]
                    # statistics miss values seen rarely ('oncology' once in 10,000 rows): a
                    # list from them is never called complete (the data pass may prove it is)
                    col.samples_complete = False
        elif t.row_estimate != 0:
            count = rel.readable and t.row_estimate is None and rel.relkind != "p"
            plan.append((_second_pass_sql(t, count, wanted, n), (t, count, wanted)))
    return plan


def _plan_counts(rels: dict[int, _Rel], planned: set[int]) -> _Plan:
    plan: _Plan = []
    for rel in rels.values():
        t = rel.table
        if (
            t is not None
            and id(t) not in planned
            and rel.readable
            and t.row_estimate is None
            and rel.relkind in ("r", "m")
            and t.populated
        ):
            plan.append((_second_pass_sql(t, True, [], 0), (t, True, [])))
    return plan


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _second_pass_sql(t: Table, count: bool, cols: list[Column], n: int) -> str:
    rel = f"{_ident(t.schema)}.{_ident(t.name)}"
    parts = [
        f"(SELECT count(*) FROM (SELECT FROM {rel} LIMIT {SCAN_ROWS + 1}) s)" if count else "NULL"
    ]
    for c in cols:
        parts.append(
            f"ARRAY(SELECT DISTINCT v::text FROM (SELECT {_ident(c.name)} AS v FROM {rel}"
            f" LIMIT {SCAN_ROWS}) s WHERE v IS NOT NULL ORDER BY 1 LIMIT {n + 1})"
        )
    return f"SELECT json_build_array({', '.join(parts)})::text"


def apply_second_pass(plan: _Plan, outputs: list[str | None], settings: Settings) -> None:
    n = settings.max_samples
    for (_, (t, count, cols)), text in zip(plan, outputs, strict=True):
        if not text:
            continue  # unreadable (locked, row-level security error, ...): nothing learnt
        values = json.loads(text)
        if count and values[0] is not None and values[0] <= SCAN_ROWS:
            t.row_estimate = int(values[0])
        counted = values[0] is not None and values[0] <= SCAN_ROWS  # every row was read
        for col, found in zip(cols, values[1:], strict=False):
            if found is not None and len(found) <= n:
                col.samples = _clean(found, col)
                col.samples_complete = counted


def _clean(values: list[Any], col: Column) -> list[str]:
    out = set()
    for v in values:
        s = str(v)
        if col.type == "boolean":
            s = {"t": "true", "f": "false"}.get(s, s)
        if len(s) > SAMPLE_MAX_CHARS:
            s = s[: SAMPLE_MAX_CHARS - 1] + "…"
        out.add(s)
    return sorted(out)


# --- the connection ------------------------------------------------------------------------


def _transaction_sql(settings: Settings, statement: str) -> list[str]:
    """``statement`` in a read-only transaction of its own with the utility timeouts set
    locally, rolled back: no session state (a PgBouncer in transaction mode may run each
    transaction on another server connection, shared with other clients)."""
    from pg_mcp.db.pools import SEARCH_PATH_SQL, utility_timeouts

    local = [f"SET LOCAL {name} = {value};" for name, value in utility_timeouts(settings)]
    local.append(SEARCH_PATH_SQL + ";")
    return ["BEGIN TRANSACTION READ ONLY;", *local, statement, "ROLLBACK;"]


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            return re.sub(r"^(\S+:\d+: )?(error: |ERROR:  )?", "", line)
    return ""


def _fail(name: str, message: str, settings: Settings, *, connect: bool) -> PgMcpError:
    from pg_mcp.core.secrets import Redactor

    redact = Redactor(settings.secrets())
    if connect and "does not exist" in message and "database" in message:
        return PgMcpError("UNKNOWN_DATABASE", redact(f"no database named {name!r}: {message}"))
    if connect:
        return PgMcpError(
            "CONNECTION_ERROR", redact(f"cannot connect to database {name!r}: {message}")
        )
    return PgMcpError("DB_ERROR", redact(f"introspection of {name!r} failed: {message}"))


def _connect(dsn: str, name: str, settings: Settings) -> psycopg.Connection[Any]:
    """A connection that carries no session state of ours (PgBouncer in transaction mode may
    hand every transaction to another server connection): each statement runs in a read-only,
    rolled-back transaction of its own with its limits set locally (``utility_transaction``)."""
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=True,
            prepare_threshold=None,  # no server-side prepared statements (PgBouncer)
            connect_timeout=max(1, int(settings.connect_timeout)),
            application_name="pg-mcp introspect",
            client_encoding="UTF8",
        )
    except psycopg.OperationalError as exc:
        raise _fail(name, _first_line(str(exc)), settings, connect=True) from None
    return conn


def _run_all(
    conn: psycopg.Connection[Any], statements: list[str], job: Introspection, *, strict: bool
) -> list[str | None]:
    """The single-row, single-column result of each statement (None when it failed)."""
    results: list[str | None] = []
    for stmt in statements:
        if job._cancelled.is_set():
            raise PgMcpError("DB_ERROR", f"introspection of {job.name!r} was cancelled")
        try:
            with utility_transaction(conn, job.settings):
                rows = conn.execute(stmt).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            if strict:
                raise _fail(job.name, _first_line(str(exc)), job.settings, connect=False) from None
            results.append(None)
            continue
        results.append(rows[0][0] if rows else None)
    return results
