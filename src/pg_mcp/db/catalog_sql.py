"""The SQL of introspection (pure: settings in, statement text out).

``catalog_sql``: the two catalog statements, each returning one JSON document of
``json_agg`` lists of ``json_build_array`` rows (positions decoded by ``pg_mcp.db.build``):
database, schemas, relations, columns, constraints, indexes, enums, domains, sequences,
functions, extensions and the ``pg_stats`` of analysed tables. Members of extensions and
system schemas are left out; the access policy's globs become regular expressions
(``glob_regex``) so the values of denied or sensitive-looking columns (``SENSITIVE``) never
leave the server. ``second_pass_sql``: the bounded count and DISTINCT over the first rows of
one never-analysed table.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pg_mcp.core.model import Column, Table
from pg_mcp.core.settings import Settings

# Columns whose values are never sampled even when the policy allows them.
SENSITIVE = re.compile(
    r"pass(word|wd)?|pwd|secret|token|api_?key|apikey|hash|salt|credential|private_?key", re.I
)
# Sampled: enum-like columns (pg_stats sees a fixed number of distinct values, at most
# LOW_CARDINALITY) and columns with at most max_samples distinct values in all.
LOW_CARDINALITY = 100
SCAN_ROWS = 10_000  # a never-analysed table: rows counted / scanned for samples at most

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


# The catalog, as json_agg lists of json_build_array rows (positions decoded by Builder),
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


def catalog_sql(settings: Settings) -> list[str]:
    """The catalog statements; each returns one JSON object (their keys do not overlap)."""
    out = []
    for group in _GROUPS:
        body = ",\n".join(f" '{key}', (\n{_LISTS[key]})" for key in group)
        sql = f"{_CTE}SELECT json_build_object(\n{body}\n)::text"
        sql = sql.replace("@SAMPLES@", "true" if sampling(settings) else "false")
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


def sampling(settings: Settings) -> bool:
    return bool(settings.samples) and settings.max_samples > 0


@lru_cache(maxsize=65536)
def is_sensitive(name: str) -> bool:
    return SENSITIVE.search(name) is not None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def second_pass_sql(t: Table, count: bool, cols: list[Column], n: int) -> str:
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
