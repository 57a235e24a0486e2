"""Benchmark: run_readonly round trip vs raw psycopg, and rows per second of a capped fetch.

Against the configured server (PG_MCP_DSN, else the embedded one), in a scratch database
created for the run and dropped afterwards (``items``: 1,000 rows; ``big``: 2,000,000 rows).
Both sides are warm (pools open, types cached, plans cached by neither) and are timed
interleaved, ``--n`` samples each; medians are printed, in microseconds::

    run_readonly_us: ...           run_readonly(sql, db, pools=...): validate, checkout +
                                   health check, BEGIN READ ONLY + SET LOCALs, DECLARE cursor
                                   (extended protocol), FETCH, ROLLBACK, DISCARD ALL on return
    psycopg_us: ...                a psycopg_pool connection running the same SELECT in a
                                   transaction (BEGIN, SELECT, COMMIT): the honest baseline
    run_vs_psycopg_ratio: ...      target <= 1.3

plus the executor alone (``validate=False``), for the breakdown. Then the capped fetch: ``SELECT id, h, ts FROM big`` at max_rows 10,000 (served
from a server-side cursor, JSON-safe values) vs psycopg fetching the same 10,000 rows::

    run_readonly_rows_per_second: ...
    psycopg_rows_per_second: ...

    uv run python bench/bench_run.py [--n 300]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

SMALL_SQL = "SELECT id, name, price FROM items WHERE id <= 10 ORDER BY id"
BIG_SQL = "SELECT id, h, ts FROM big"
BIG_ROWS = 2_000_000
CAP = 10_000

SETUP = f"""
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8, 2));
INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 1000) g;
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
    ap.add_argument("--n", type=int, default=300, help="samples per side for the small query")
    ap.add_argument("--fetches", type=int, default=7, help="samples of the capped fetch")
    args = ap.parse_args(argv)

    import psycopg
    from psycopg_pool import ConnectionPool

    from pg_mcp.discovery import database_dsn, server_dsn
    from pg_mcp.executor import Pools, run_readonly
    from pg_mcp.settings import load_settings

    db = f"pgmcp_bench_run_{uuid.uuid4().hex[:8]}"
    base = load_settings()
    dsn = server_dsn(base)  # PG_MCP_DSN, else the embedded server under PG_MCP_HOME/.pg-mcp
    settings = base.with_(
        dsn=dsn,  # pinned: the private home below must not start a server of its own
        home=Path(tempfile.mkdtemp(prefix="pgmcp-bench-run-")),  # schema cache of the scratch db
        include=(db,),
        exclude=(),
        audit_log=None,
        max_bytes=50_000_000,
        explain_max_cost=0.0,
        explain_max_rows=0.0,
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        t0 = time.perf_counter()
        with psycopg.connect(database_dsn(dsn, db), autocommit=True) as conn:
            conn.execute(SETUP)
        print(f"setup_seconds: {time.perf_counter() - t0:.2f}")
        with (
            Pools(settings) as pools,
            ConnectionPool(database_dsn(dsn, db), min_size=1, max_size=1, open=True) as raw,
        ):
            _small(args.n, db, pools, raw, run_readonly)
            _big(args.fetches, db, pools, raw, run_readonly)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(settings.home, ignore_errors=True)
    return 0


def _small(n: int, db: str, pools, raw, run_readonly) -> None:  # type: ignore[no-untyped-def]
    def ours() -> None:
        r = run_readonly(SMALL_SQL, db, pools=pools)
        assert r.ok and r.row_count == 10, r.to_dict()

    def ours_unvalidated() -> None:
        r = run_readonly(SMALL_SQL, db, pools=pools, validate=False)
        assert r.ok and r.row_count == 10, r.to_dict()

    def baseline() -> None:
        with raw.connection() as conn:  # a transaction: BEGIN ... COMMIT
            rows = conn.execute(SMALL_SQL).fetchall()
        assert len(rows) == 10

    sides = {"run": ours, "executor": ours_unvalidated, "psycopg": baseline}
    for fn in sides.values():  # warm: pools open, type names cached, imports done
        for _ in range(20):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(max(1, n)):
        for name, fn in sides.items():
            samples[name].append(timed_us(fn))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"small_query: {SMALL_SQL}")
    print(f"run_readonly_us: {med['run']:.0f}")
    print(f"run_readonly_unvalidated_us: {med['executor']:.0f}")
    print(f"psycopg_us: {med['psycopg']:.0f}")
    print(f"run_vs_psycopg_ratio: {med['run'] / med['psycopg']:.2f}")
    print(f"executor_vs_psycopg_ratio: {med['executor'] / med['psycopg']:.2f}")


def _big(n: int, db: str, pools, raw, run_readonly) -> None:  # type: ignore[no-untyped-def]
    def ours() -> None:
        r = run_readonly(BIG_SQL, db, pools=pools, max_rows=CAP)
        assert r.ok and r.row_count == CAP and r.truncated, r.to_dict()

    def baseline() -> None:
        with raw.connection() as conn:
            rows = conn.execute(f"{BIG_SQL} LIMIT {CAP}").fetchall()
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
