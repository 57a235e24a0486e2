"""Benchmark: join recovery. Do inferred relationships find the foreign keys a schema dropped?

For each source database (default ``db_pg_mcp_large`` and ``pagila``), makes a scratch copy
(``CREATE DATABASE ... TEMPLATE``), records its single- and multi-column foreign keys (those
declared on partitions counted once, on the partitioned parent, as the references show
them), drops every foreign key, introspects the copy (the data pass infers relationships),
and compares: recall = dropped keys found again / dropped keys, precision = inferred
relationships that are dropped keys / inferred relationships. Prints ``name: value`` lines
and every miss and every extra.

    uv run python bench/bench_joins.py [--db db_pg_mcp_large --db pagila] [--keep]

Target (issue 12): recall >= 0.90 and precision >= 0.90 on each database.
"""

from __future__ import annotations

import argparse
import sys
import time

DEFAULT = ("db_pg_mcp_large", "pagila")

FKS = """
SELECT coalesce(pp.relid, co.conrelid)::regclass::text AS child,
       ARRAY(SELECT a.attname::text FROM unnest(co.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n ORDER BY k.o),
       coalesce(tp.relid, co.confrelid)::regclass::text AS target,
       ARRAY(SELECT a.attname::text FROM unnest(co.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint co
LEFT JOIN LATERAL (SELECT relid FROM pg_partition_ancestors(co.conrelid) x(relid)
                   JOIN pg_class c ON c.oid = x.relid WHERE NOT c.relispartition) pp ON true
LEFT JOIN LATERAL (SELECT relid FROM pg_partition_ancestors(co.confrelid) x(relid)
                   JOIN pg_class c ON c.oid = x.relid WHERE NOT c.relispartition) tp ON true
WHERE co.contype = 'f' AND co.conparentid = 0
"""


def _key(child: str, cols: list[str], target: str, tcols: list[str]) -> tuple[str, ...]:
    def q(name: str) -> str:
        return name if "." in name else f"public.{name}"

    return (q(child), ",".join(cols), q(target), ",".join(tcols))


def copy_without_fks(admin: str, source: str, copy: str) -> set[tuple[str, ...]]:
    import psycopg

    from pg_mcp.db.discovery import database_dsn

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        for attempt in range(5):
            try:
                conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source}"')
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 4:
                    raise
                time.sleep(1.0)
    with psycopg.connect(database_dsn(admin, copy), autocommit=True) as conn:
        truth = {_key(*row) for row in conn.execute(FKS).fetchall()}
        drops = conn.execute(
            "SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname)"
            " FROM pg_constraint WHERE contype = 'f' AND conparentid = 0"
        ).fetchall()
        for (sql,) in drops:
            conn.execute(sql)
        conn.execute("ANALYZE")
        left = conn.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()
        assert left == (0,), left
    return truth


def inferred(
    admin: str, copy: str
) -> tuple[set[tuple[str, ...]], dict[tuple[str, ...], str], float]:
    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.discovery import database_dsn
    from pg_mcp.db.inference import INFERRED
    from pg_mcp.db.introspect import introspect

    started = time.perf_counter()
    db = introspect(database_dsn(admin, copy), copy, load_settings())
    seconds = time.perf_counter() - started
    found: set[tuple[str, ...]] = set()
    evidence = {}
    for t in db.tables:
        for c in t.constraints:
            if c.kind == INFERRED:
                k = _key(
                    t.qualified, c.columns, f"{c.ref_schema}.{c.ref_table}", c.ref_columns or []
                )
                found.add(k)
                evidence[k] = c.definition
    return found, evidence, seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", action="append", help="source database (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the copies")
    args = ap.parse_args()

    import psycopg

    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.discovery import admin_dsn

    admin = admin_dsn(load_settings())
    worst = 1.0
    for source in args.db or DEFAULT:
        copy = f"pgmcp_bench_joins_{source}"[:63]
        truth = copy_without_fks(admin, source, copy)
        try:
            found, evidence, seconds = inferred(admin, copy)
        finally:
            if not args.keep:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        hits = truth & found
        recall = len(hits) / len(truth) if truth else 1.0
        precision = len(hits) / len(found) if found else 1.0
        worst = min(worst, recall, precision)
        print(f"{source}.dropped_fks: {len(truth)}")
        print(f"{source}.inferred: {len(found)}")
        print(f"{source}.recovered: {len(hits)}")
        print(f"{source}.recall: {recall:.3f}")
        print(f"{source}.precision: {precision:.3f}")
        print(f"{source}.introspect_seconds: {seconds:.2f}")
        for k in sorted(truth - found):
            print(f"{source}.miss: {k[0]}.{k[1]} -> {k[2]}.{k[3]}")
        for k in sorted(found - truth):
            print(f"{source}.extra: {k[0]}.{k[1]} -> {k[2]}.{k[3]} ({evidence[k]})")
    print(f"join_recovery_worst: {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
