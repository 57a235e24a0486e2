"""Benchmark: run_readonly round trip vs raw psycopg, and rows per second of a capped fetch.

Against the configured server (PG_MCP_DSN, else the embedded one).

Small queries, on the ``db_pg_mcp_small`` fixture (loaded if missing):

- ``small`` (the headline, what "a small query" means to a user): a customer's 10 latest
  orders, an index lookup returning 10 rows of int, enum, timestamptz and numeric::

      SELECT order_id, status, ordered_at, total FROM orders WHERE customer_id = 10
      ORDER BY ordered_at DESC LIMIT 10

- ``select1``: ``SELECT 1``, where the fixed per-call cost is all there is.

Each is timed as the sides below, ``--n`` calls per side after a warm-up, in short interleaved
blocks (``--block`` calls of one side, then the next side: warm within a block, and a change
in the machine's load hits every side alike; the order of the sides rotates every round, as
the side after another's block runs measurably slower):

- ``run``: ``run_readonly(sql, db, pools=...)`` with validation, the same SQL every call, so
  the verdict cache answers (what a user's repeated call gets); warm pool; every call:
  checkout, BEGIN READ ONLY, DECLARE cursor (extended protocol), FETCH, ROLLBACK,
  rows made JSON-safe;
- ``run_uncached``: the same, with a text never seen before (a distinct leading comment), so
  the statement is parsed and checked by the validator every call;
- ``executor``: ``run_readonly(..., validate=False)`` (the MCP server validates first, then
  runs with ``validate=False``);
- ``psycopg`` (the baseline): a warm ``psycopg.connect(dsn)`` with default settings running
  the same SQL: ``conn.execute(sql).fetchall()`` then ``conn.commit()`` (BEGIN, the query,
  COMMIT: three round trips). psycopg prepares a statement after 5 executions
  (``prepare_threshold=5``), so this baseline reuses its plan; run_readonly cannot (it never
  prepares: ``prepare_threshold=None``, which PgBouncer in transaction mode needs);
- ``psycopg_unprepared``: the same with ``prepare_threshold=None`` (planned every call, as
  run_readonly is), for context;
- ``psycopg_autocommit``: ``autocommit=True`` (one round trip, no transaction), for context.

Printed (medians in microseconds, ratios of medians)::

    small_sql: ...
    small_run_us / small_run_uncached_us / small_executor_us: ...
    small_psycopg_us / small_psycopg_unprepared_us / small_psycopg_autocommit_us: ...
    run_vs_psycopg_ratio: ...            the headline (small query; target <= 1.3)
    select1_run_vs_psycopg_ratio: ...    the same for SELECT 1
    ..._vs_... : the other ratios

Then the capped fetch, in a scratch database created for the run and dropped afterwards:
``SELECT id, h, ts FROM big`` (2,000,000 rows) at max_rows 10,000, served from a
server-side cursor in chunks, as JSON-safe values, vs psycopg fetching the same 10,000 rows::

    run_readonly_rows_per_second: ...
    psycopg_rows_per_second: ...

    uv run python bench/bench_run.py [--n 1000] [--block 10] [--fetches 7]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

SMALL_DB = "db_pg_mcp_small"
SMALL_QUERIES = {
    "small": (
        "SELECT order_id, status, ordered_at, total FROM orders WHERE customer_id = 10"
        " ORDER BY ordered_at DESC LIMIT 10",
        10,
    ),
    "select1": ("SELECT 1", 1),
}
BIG_SQL = "SELECT id, h, ts FROM big"
BIG_ROWS = 2_000_000
CAP = 10_000

SETUP = f"""
CREATE UNLOGGED TABLE big (id int, h text, ts timestamptz);
INSERT INTO big SELECT g, md5(g::text), timestamptz '2024-01-01' + g * interval '1 minute'
  FROM generate_series(1, {BIG_ROWS}) g;
ANALYZE;
"""


def timed_us(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="samples per side for the small queries")
    ap.add_argument("--block", type=int, default=10, help="calls of one side in a row")
    ap.add_argument("--fetches", type=int, default=7, help="samples of the capped fetch")
    args = ap.parse_args(argv)

    import psycopg

    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.discovery import admin_dsn, database_dsn, server_dsn
    from pg_mcp.db.executor import Pools
    from pg_mcp_dev.fixtures import ensure_loaded

    db = f"pgmcp_bench_run_{uuid.uuid4().hex[:8]}"
    base = load_settings()
    dsn = server_dsn(base)  # PG_MCP_DSN, else the embedded server under PG_MCP_HOME/.pg-mcp
    settings = base.with_(
        dsn=dsn,  # pinned: the private home below must not start a server of its own
        home=Path(tempfile.mkdtemp(prefix="pgmcp-bench-run-")),  # schema cache of the run
        include=(SMALL_DB, db),
        exclude=(),
        audit_log=None,
        max_bytes=50_000_000,  # the capped fetch's 10,000 rows are above the default budget
    )
    admin = admin_dsn(base)  # creates and fills the scratch database
    ensure_loaded(admin, ["small"])
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        with Pools(settings) as pools:
            for name, (sql, rows) in SMALL_QUERIES.items():
                _small(name, sql, rows, args, database_dsn(dsn, SMALL_DB), pools)
            t0 = time.perf_counter()
            with psycopg.connect(database_dsn(admin, db), autocommit=True) as conn:
                conn.execute(SETUP)
            print(f"setup_seconds: {time.perf_counter() - t0:.2f}")
            _big(args.fetches, db, database_dsn(dsn, db), pools)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(settings.home, ignore_errors=True)
    return 0


def _small(name: str, sql: str, nrows: int, args: Any, db_dsn: str, pools: Any) -> None:
    import psycopg

    from pg_mcp.db.executor import run_readonly

    default = psycopg.connect(db_dsn)  # autocommit off, prepare_threshold 5
    unprepared = psycopg.connect(db_dsn, prepare_threshold=None)
    autocommit = psycopg.connect(db_dsn, autocommit=True)
    counter = [0]

    def run() -> None:
        r = run_readonly(sql, SMALL_DB, pools=pools)
        assert r.ok and r.row_count == nrows, r.to_dict()

    def run_uncached() -> None:
        counter[0] += 1
        r = run_readonly(f"/* {counter[0]} */ {sql}", SMALL_DB, pools=pools)
        assert r.ok and r.row_count == nrows, r.to_dict()

    def executor() -> None:
        r = run_readonly(sql, SMALL_DB, pools=pools, validate=False)
        assert r.ok and r.row_count == nrows, r.to_dict()

    def in_transaction(conn: psycopg.Connection[Any]) -> Callable[[], None]:
        def call() -> None:
            rows = conn.execute(sql).fetchall()
            conn.commit()
            assert len(rows) == nrows

        return call

    def psycopg_autocommit() -> None:
        assert len(autocommit.execute(sql).fetchall()) == nrows

    sides: dict[str, Callable[[], None]] = {
        "run": run,
        "run_uncached": run_uncached,
        "executor": executor,
        "psycopg": in_transaction(default),
        "psycopg_unprepared": in_transaction(unprepared),
        "psycopg_autocommit": psycopg_autocommit,
    }
    try:
        for fn in sides.values():  # warm: pools open, schema and verdicts cached, plans prepared
            for _ in range(50):
                fn()
        samples: dict[str, list[float]] = {k: [] for k in sides}
        gc.collect()
        n, block = max(1, args.n), max(1, args.block)
        order = list(sides)
        for start in range(0, n, block):
            order.append(order.pop(0))  # each round starts with the next side: no side keeps
            for side in order:  # the place after another's block (which costs it measurably)
                fn = sides[side]
                for _ in range(min(block, n - start)):
                    samples[side].append(timed_us(fn))
    finally:
        for conn in (default, unprepared, autocommit):
            conn.close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{name}_sql: {sql}")
    for side, value in med.items():
        print(f"{name}_{side}_us: {value:.0f}")
    headline = "" if name == "small" else f"{name}_"
    print(f"{headline}run_vs_psycopg_ratio: {med['run'] / med['psycopg']:.2f}")
    for ours in ("run_uncached", "executor"):
        print(f"{name}_{ours}_vs_psycopg_ratio: {med[ours] / med['psycopg']:.2f}")
    for base in ("psycopg_unprepared", "psycopg_autocommit"):
        print(f"{name}_run_vs_{base}_ratio: {med['run'] / med[base]:.2f}")


def _big(n: int, db: str, db_dsn: str, pools: Any) -> None:
    import psycopg

    from pg_mcp.db.executor import run_readonly

    def ours() -> None:
        r = run_readonly(BIG_SQL, db, pools=pools, max_rows=CAP)
        assert r.ok and r.row_count == CAP and r.truncated, r.to_dict()

    with psycopg.connect(db_dsn) as conn:

        def baseline() -> None:
            rows = conn.execute(f"{BIG_SQL} LIMIT {CAP}").fetchall()
            conn.commit()
            assert len(rows) == CAP

        ours()
        baseline()
        t_ours, t_base = [], []
        for _ in range(max(1, n)):
            t_ours.append(timed_us(ours))
            t_base.append(timed_us(baseline))
    o, b = statistics.median(t_ours) / 1e6, statistics.median(t_base) / 1e6
    print(f"capped_fetch: {BIG_SQL} ({BIG_ROWS:,} rows) at max_rows {CAP:,}")
    print(f"run_readonly_capped_fetch_ms: {o * 1000:.1f}")
    print(f"run_readonly_rows_per_second: {CAP / o:.0f}")
    print(f"psycopg_rows_per_second: {CAP / b:.0f}")


if __name__ == "__main__":
    sys.exit(main())
