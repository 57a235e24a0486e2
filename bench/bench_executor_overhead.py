"""Per-call overhead of run_readonly vs raw psycopg, measured in one run.

For three queries on db_pg_mcp_small (``SELECT 1``; ``lookup``, bench_run.py's headline: a
customer's 10 latest orders, an index lookup; ``small``: a GROUP BY over orders joined to
customers, LIMIT 10, ~2 ms of server time) it times, call by call, in short interleaved blocks
(``--block`` calls of each case in turn: warm within a block, and a change in the machine's
load hits every case alike):

- ``raw_autocommit``: a raw psycopg connection (autocommit) running the query;
- ``raw_txn``: a raw psycopg connection running it inside ``BEGIN READ ONLY`` ... ``ROLLBACK``
  (psycopg's own ``read_only`` transaction: the baseline of issue 7). Both raw connections
  keep psycopg's default ``prepare_threshold`` (5): from the 6th call on they reuse a
  prepared plan, which run_readonly cannot (it never prepares: PgBouncer);
- ``run_novalidate``: ``run_readonly(validate=False)``;
- ``run_validate_repeat``: ``run_readonly`` with validation, the same SQL every call;
- ``run_validate_unique``: ``run_readonly`` with validation, a different literal every call;
- ``validate_repeat`` / ``validate_unique``: ``validate_sql`` alone (against the database).

and prints ``name: value`` lines (medians in ms over ``-n`` calls each) and the ratios to
``raw_txn`` (issue 7's target: run_readonly round trip / raw psycopg <= 1.3).

Usage: python bench/bench_executor_overhead.py [-n 1000] [--db db_pg_mcp_small]. The server
comes from the environment (PG_MCP_DSN, else the embedded server under PG_MCP_HOME), as for
every pg-mcp command; the fixture database must be loaded (``make fixtures``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

SMALL_QUERY = (
    "SELECT c.country, count(*) AS orders, sum(o.total) AS revenue"
    " FROM orders o JOIN customers c ON c.customer_id = o.customer_id"
    " WHERE o.order_id > {n}"
    " GROUP BY c.country ORDER BY revenue DESC LIMIT 10"
)
LOOKUP_QUERY = (  # the comment makes a "unique" text without changing the plan
    "/* {n} */ SELECT order_id, status, ordered_at, total FROM orders WHERE customer_id = 10"
    " ORDER BY ordered_at DESC LIMIT 10"
)
QUERIES = {"select1": "SELECT {n}", "lookup": LOOKUP_QUERY, "small": SMALL_QUERY}
BASE = {"select1": 1, "lookup": 0, "small": 0}  # the literal of the repeated SQL


def timed(fn: Callable[[int], Any], calls: range, out: list[float]) -> None:
    for i in calls:
        t0 = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t0) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="calls per case (default 1000)")
    parser.add_argument("--block", type=int, default=10, help="calls per case in a row (10)")
    parser.add_argument("--db", default="db_pg_mcp_small")
    args = parser.parse_args(argv)

    import psycopg

    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.checker import validate_sql
    from pg_mcp.db.discovery import database_dsn, server_dsn
    from pg_mcp.db.executor import Pools, run_readonly

    settings = load_settings()
    dsn = database_dsn(server_dsn(settings), args.db)
    raw = psycopg.connect(dsn, autocommit=True)
    txn = psycopg.connect(dsn)
    txn.read_only = True
    pools = Pools(settings)
    counter = [1000]  # unique literals across every case and round

    def unique() -> int:
        counter[0] += 1
        return -counter[0]  # keeps the small query's filter true (order_id > -N)

    cases: dict[str, dict[str, Callable[[int], Any]]] = {}
    for qname, template in QUERIES.items():
        sql = template.format(n=BASE[qname])

        def raw_autocommit(_: int, sql: str = sql) -> Any:
            return raw.execute(sql).fetchall()

        def raw_txn(_: int, sql: str = sql) -> Any:
            rows = txn.execute(sql).fetchall()
            txn.rollback()
            return rows

        def run_novalidate(_: int, sql: str = sql) -> Any:
            return _ok(run_readonly(sql, args.db, pools=pools, validate=False))

        def run_validate_repeat(_: int, sql: str = sql) -> Any:
            return _ok(run_readonly(sql, args.db, pools=pools))

        def run_validate_unique(_: int, template: str = template) -> Any:
            return _ok(run_readonly(template.format(n=unique()), args.db, pools=pools))

        def validate_repeat(_: int, sql: str = sql) -> Any:
            return _ok(validate_sql(sql, args.db, settings=settings))

        def validate_unique(_: int, template: str = template) -> Any:
            return _ok(validate_sql(template.format(n=unique()), args.db, settings=settings))

        cases[qname] = {
            "raw_autocommit": raw_autocommit,
            "raw_txn": raw_txn,
            "run_novalidate": run_novalidate,
            "run_validate_repeat": run_validate_repeat,
            "run_validate_unique": run_validate_unique,
            "validate_repeat": validate_repeat,
            "validate_unique": validate_unique,
        }

    try:
        for fns in cases.values():  # warm up: pools, type cache, schema cache, prepared plans
            for fn in fns.values():
                for i in range(20):
                    fn(i)
        times: dict[str, dict[str, list[float]]] = {
            q: {c: [] for c in fns} for q, fns in cases.items()
        }
        gc.collect()
        block = max(1, args.block)
        for start in range(0, max(1, args.n), block):
            calls = range(start, min(start + block, max(1, args.n)))
            for qname, fns in cases.items():
                for cname, fn in fns.items():
                    timed(fn, calls, times[qname][cname])
    finally:
        pools.close()
        raw.close()
        txn.close()

    print(f"calls_per_case: {max(1, args.n)}")
    for qname, by_case in times.items():
        med = {c: statistics.median(v) for c, v in by_case.items()}
        for cname, value in med.items():
            print(f"{qname}_{cname}_ms: {value:.4f}")
        for cname in ("run_novalidate", "run_validate_repeat", "run_validate_unique"):
            print(f"{qname}_{cname}_vs_raw_txn: {med[cname] / med['raw_txn']:.2f}")
        print(
            f"{qname}_run_validate_repeat_vs_raw_autocommit: "
            f"{med['run_validate_repeat'] / med['raw_autocommit']:.2f}"
        )
    return 0


def _ok(result: Any) -> Any:
    if not result.ok:
        raise SystemExit(f"benchmark query failed: {result.code}: {result.message}")
    return result


if __name__ == "__main__":
    sys.exit(main())
