"""Benchmark: pg-mcp under concurrent load through PgBouncer, and stateless HTTP replicas.

Against the configured server (PG_MCP_DSN, else the embedded one), on ``db_pg_mcp_small``
(loaded if missing), the query a customer's 10 latest orders (bench_run.py's headline).

1. **PgBouncer vs direct.** ``--calls`` (200) ``run_readonly`` calls from ``--clients`` (40)
   concurrent threads sharing one ``Pools`` with a connection per client
   (``pool_max_size = clients``), through a private PgBouncer (Debian's, tests/pgbouncer.py:
   default configuration, transaction pooling, ``default_pool_size = 4``: 40 client
   connections, 4 server connections) versus the same load straight to PostgreSQL (40
   backends). Rounds alternate between the sides (``--rounds``, 10); per side, the median
   round's calls per second and the p95 of every call's latency::

       bouncer_calls_per_second / direct_calls_per_second / bouncer_vs_direct_throughput_ratio
       bouncer_p95_ms / direct_p95_ms / bouncer_vs_direct_p95_ratio
       bouncer_errors / direct_errors        (must be 0)

   ``direct_pool4_*``: directly with ``pool_max_size = 4`` (pg-mcp's own default), for
   context: the same 4 server connections without PgBouncer.

2. **Two stateless replicas vs one.** ``pg-mcp serve --transport http --stateless`` twice;
   ``--http-calls`` (400) ``tools/call run_readonly`` JSON-RPC requests from ``--clients``
   concurrent HTTP clients (one asyncio loop, httpx2), all to one replica, then round robin
   over both (alternating, ``--rounds``, 10)::

       one_replica_calls_per_second / two_replicas_calls_per_second
       two_vs_one_replica_throughput_ratio
       http_errors

   Each replica is one Python process (its event loop, its worker threads sharing one GIL).
   The load generator and PostgreSQL run on the same machine: with 2 cores the ratio says how
   much a second process helps when the CPU is already shared by four parties.

Skipped (a ``*_skipped:`` line) when pgbouncer is not installed.

    uv run python bench/bench_scale.py [--calls 200] [--clients 40] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # tests/pgbouncer.py and tests/serving.py

DB = "db_pg_mcp_small"
SQL = (
    "SELECT order_id, status, ordered_at, total FROM orders WHERE customer_id = {n}"
    " ORDER BY ordered_at DESC LIMIT 10"
)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def load(calls: int, clients: int, call: Callable[[int], bool]) -> tuple[float, list[float], int]:
    """``calls`` calls from ``clients`` threads: (calls per second, latencies in ms, errors)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    todo = iter(range(calls))
    start = threading.Barrier(clients + 1)

    def worker() -> None:
        nonlocal errors
        start.wait(timeout=60)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            t0 = time.perf_counter()
            ok = call(i)
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(ms)
                errors += 0 if ok else 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait(timeout=60)
    t0 = time.perf_counter()
    for t in threads:
        t.join(timeout=300)
        if t.is_alive():
            raise RuntimeError("a client did not finish within 300 s")
    return calls / (time.perf_counter() - t0), latencies, errors


def bench_pgbouncer(args: argparse.Namespace, reader: str, admin: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.executor import Pools
    from pgbouncer import PgBouncer, backend_of, pgbouncer_binary

    if pgbouncer_binary() is None:
        print("pgbouncer_skipped: no pgbouncer binary (Debian package pgbouncer)")
        return
    bouncer = PgBouncer(backend_of(admin, reader)).start()
    try:
        home = Path(tempfile.mkdtemp(prefix="pgmcp-bench-scale-"))

        def settings(server: str, pool: int) -> Any:
            return load_settings(
                env={"PG_MCP_DSN": server, "PG_MCP_HOME": str(home)},
                config_path=None,
                include=(DB,),
                pool_min_size=pool,
                pool_max_size=pool,
            )

        user = str(conninfo_to_dict(reader).get("user") or "postgres")
        sides = {
            "bouncer": settings(bouncer.client_dsn("postgres", user), args.clients),
            "direct": settings(reader, args.clients),
            "direct_pool4": settings(reader, 4),
        }
        pools = {name: Pools(s) for name, s in sides.items()}
        try:
            for p in pools.values():  # warm: pools full, schema cached, verdicts cached
                p.get(DB).wait(timeout=60)
                load(args.clients, args.clients, lambda i, p=p: _run(p, i))
            rates: dict[str, list[float]] = {n: [] for n in pools}
            lat: dict[str, list[float]] = {n: [] for n in pools}
            errs = dict.fromkeys(pools, 0)
            for r in range(args.rounds):
                order = list(pools)[r % 3 :] + list(pools)[: r % 3]
                for name in order:
                    p = pools[name]
                    rate, ms, e = load(args.calls, args.clients, lambda i, p=p: _run(p, i))
                    rates[name].append(rate)
                    lat[name] += ms
                    errs[name] += e
        finally:
            for p in pools.values():
                p.close()
        for name in pools:
            print(f"{name}_calls_per_second: {statistics.median(rates[name]):.0f}")
            print(f"{name}_p95_ms: {p95(lat[name]):.2f}")
            print(f"{name}_errors: {errs[name]}")
        for other in ("direct", "direct_pool4"):
            tput = statistics.median(rates["bouncer"]) / statistics.median(rates[other])
            print(f"bouncer_vs_{other}_throughput_ratio: {tput:.2f}")
            print(f"bouncer_vs_{other}_p95_ratio: {p95(lat['bouncer']) / p95(lat[other]):.2f}")
    finally:
        bouncer.close()


def _run(pools: Any, i: int) -> bool:
    from pg_mcp.db.executor import run_readonly

    return run_readonly(SQL.format(n=i % 50 + 1), DB, pools=pools).ok


def bench_replicas(args: argparse.Namespace, reader: str) -> None:
    import anyio

    import serving

    work = Path(tempfile.mkdtemp(prefix="pgmcp-bench-replicas-"))
    env = {
        "PG_MCP_DSN": reader,
        "PG_MCP_HOME": str(work / "home"),
        "PATH": os.environ.get("PATH", ""),
    }
    served = []
    try:
        for i in range(2):
            cwd = work / f"replica{i}"
            cwd.mkdir()
            (cwd / "pg-mcp.toml").write_text(f'[databases]\ninclude = ["{DB}"]\n')
            served.append(serving.start_http(env, cwd, args=("--stateless",)))
        for s in served:
            serving.wait_healthy(s)
        bases = [s.base for s in served]
        one: list[float] = []
        two: list[float] = []
        errors = 0
        anyio.run(_http_load, [bases[0]], args.clients, args.clients, [0])  # warm-up
        anyio.run(_http_load, [bases[1]], args.clients, args.clients, [0])
        for _ in range(args.rounds):
            for targets, out in (([bases[0]], one), (bases, two)):
                errs = [0]
                out.append(anyio.run(_http_load, targets, args.http_calls, args.clients, errs))
                errors += errs[0]
        print(f"one_replica_calls_per_second: {statistics.median(one):.0f}")
        print(f"two_replicas_calls_per_second: {statistics.median(two):.0f}")
        print(
            f"two_vs_one_replica_throughput_ratio: {statistics.median(two) / statistics.median(one):.2f}"
        )
        print(f"http_errors: {errors}")
    finally:
        for s in served:
            serving.stop_process(s.proc)


async def _http_load(bases: list[str], calls: int, clients: int, errors: list[int]) -> float:
    """``calls`` tools/call requests from ``clients`` concurrent tasks, round robin over
    ``bases``; calls per second."""
    import anyio
    import httpx2

    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-06-18",
    }
    counter = iter(range(calls))
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(timeout=120, limits=limits, headers=headers) as http:

        async def client() -> None:
            for i in counter:
                body = {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "tools/call",
                    "params": {
                        "name": "run_readonly",
                        "arguments": {"sql": SQL.format(n=i % 50 + 1), "database": DB},
                    },
                }
                resp = await http.post(f"{bases[i % len(bases)]}/mcp", json=body)
                ok = resp.status_code == 200 and not json.loads(resp.text)["result"]["isError"]
                errors[0] += 0 if ok else 1

        t0 = time.perf_counter()
        with anyio.fail_after(600):
            async with anyio.create_task_group() as tg:
                for _ in range(clients):
                    tg.start_soon(client)
        return calls / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--http-calls", type=int, default=400)
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--only", choices=["pgbouncer", "replicas"])
    args = ap.parse_args(argv)

    from pg_mcp.core.settings import load_settings
    from pg_mcp.db import embedded
    from pg_mcp.db.discovery import admin_dsn, server_dsn
    from pg_mcp_dev.fixtures import ensure_loaded

    base = load_settings()
    admin = admin_dsn(base)
    reader = server_dsn(base)
    if not base.dsn:  # the embedded server: its superuser and its reader role
        reader = embedded.reader_dsn(base.home)
    ensure_loaded(admin, ["small"])
    print(f"clients: {args.clients}")
    print(f"cpus: {os.cpu_count()}")
    if args.only in (None, "pgbouncer"):
        bench_pgbouncer(args, reader, admin)
    if args.only in (None, "replicas"):
        bench_replicas(args, reader)
    return 0


if __name__ == "__main__":
    sys.exit(main())
