"""Load with real processes: a 2,000,000-row result in bounded memory, and 40 concurrent MCP
calls over streamable HTTP within the connection pool.

Both run against a private PostgreSQL (tests/pgtemp.py), so the connection counts seen in
pg_stat_activity are pg-mcp's alone and nothing shared is disturbed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import serving
from pgtemp import PASSWORD, PgTemp, pgtemp_fixture  # noqa: F401

BIN = Path(sys.executable).parent
PGMCP = str(BIN / "pg-mcp")
DB = "loaddb"
ITEMS = 1000
POOL = 4
CALLS = 40


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def load_db(pgtemp: PgTemp) -> str:
    return pgtemp.create_database(
        DB,
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(8,2));"
        f"INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, {ITEMS}) g;"
        "ANALYZE items;",
    )


def env_for(pg: PgTemp, tmp_path: Path, limits: str = "") -> dict[str, str]:
    config = tmp_path / "pg-mcp.toml"
    config.write_text(
        f'[databases]\ninclude = ["{DB}", "postgres"]\n\n[limits]\nconnect_timeout = 5\n{limits}'
    )
    return {
        "PATH": os.environ.get("PATH", ""),
        "PG_MCP_DSN": pg.reader_dsn,
        "PG_MCP_HOME": str(tmp_path / "home"),
        "PG_MCP_CONFIG": str(config),
    }


# --- a 2,000,000-row result ---------------------------------------------------------------------


# Runs one command and reports its peak RSS. A fresh, small interpreter in between: on Linux a
# child's ru_maxrss starts from its parent's RSS at fork time, and pytest's can be large.
MEASURE = """
import resource, subprocess, sys
with open(sys.argv[1], "wb") as out:
    code = subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=out, stderr=out).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_kib(args: list[str], env: dict[str, str], out: Path) -> tuple[int, int]:
    """(exit code, peak resident set size in KiB) of one fresh child process."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(out), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    code, kib = proc.stdout.split()
    return int(code), int(kib)  # KiB on Linux


def test_two_million_row_result_peak_memory_close_to_a_ten_row_query(
    pgtemp: PgTemp, load_db: str, tmp_path: Path
) -> None:
    env = env_for(pgtemp, tmp_path)
    queries = {
        "big": "SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 2000000) g",
        "small": "SELECT g AS n, md5(g::text) AS h FROM generate_series(1, 10) g",
    }
    peaks: dict[str, list[int]] = {"big": [], "small": []}
    for round_ in range(2):  # alternate, take each one's smaller peak (noise only adds)
        for name, sql in queries.items():
            out = tmp_path / f"{name}{round_}.out"
            code, kib = peak_rss_kib(
                [PGMCP, "run", "--db", "postgres", "--max-rows", "100", "--json", sql], env, out
            )
            text = out.read_text()
            assert code == 0, text
            result = json.loads(text)
            assert result["ok"] is True
            if name == "big":
                assert result["row_count"] == 100 and result["truncated"] is True
            else:
                assert result["row_count"] == 10 and result["truncated"] is False
            assert PASSWORD not in text
            peaks[name].append(kib)
    big, small = min(peaks["big"]), min(peaks["small"])
    print(f"[figures] peak RSS: 2M-row query at --max-rows 100 {big} KiB, 10-row query {small} KiB")
    # The bound: at most 1.25x (the whole result would be ~150 MB more).
    assert big <= 1.25 * small, (big, small, peaks)


# --- 40 concurrent MCP calls over streamable HTTP -------------------------------------------------


@pytest.fixture
def http_server(
    pgtemp: PgTemp, load_db: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    env = env_for(pgtemp, tmp_path, f"pool_max_size = {POOL}\nstatement_timeout = 30\n")
    env["PG_MCP_LOG_LEVEL"] = "INFO"
    with serving.http_server(env, tmp_path) as served:
        yield served.base, served.proc, tmp_path


class ActivitySampler:
    """Polls pg_stat_activity from its own connection while the burst runs."""

    QUERY = """
        SELECT count(*) FILTER (WHERE application_name = 'pg-mcp'),
               count(*) FILTER (WHERE application_name = 'pg-mcp' AND datname = %(db)s),
               count(*) FILTER (WHERE state LIKE 'idle in transaction%%'),
               count(*) FILTER (WHERE state = 'active' AND application_name = 'pg-mcp'),
               count(*)
        FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
    """

    def __init__(self, pg: PgTemp) -> None:
        self.pg = pg
        self.samples: list[tuple[int, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(
            self.pg.dsn, autocommit=True, application_name="pgmcp-test-sampler"
        ) as conn:
            while not self._stop.is_set():
                row = conn.execute(self.QUERY, {"db": DB}).fetchone()
                assert row is not None
                self.samples.append(tuple(int(v) for v in row))
                self._stop.wait(0.005)

    def __enter__(self) -> ActivitySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def peak(self, i: int) -> int:
        return max((s[i] for s in self.samples), default=0)


def activity(pg: PgTemp) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT application_name, datname, state, query FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()


def expected(i: int) -> list[int]:
    ids = [g for g in range(1, ITEMS + 1) if g % CALLS == i]
    return [len(ids), sum(ids)]


@pytest.mark.anyio
async def test_forty_concurrent_mcp_calls_over_http_stay_within_the_pool(
    pgtemp: PgTemp, http_server: tuple[str, subprocess.Popen[bytes], Path]
) -> None:
    from mcp.client import Client

    base, proc, workdir = http_server
    results: dict[int, Any] = {}
    # The startup warm-up (discovery, schema cache) opens connections of its own: let it
    # finish, so that every connection seen during the burst is a tool call's.
    deadline = time.monotonic() + 60
    while "warm_up_done" not in (workdir / "serve.err").read_text():
        assert time.monotonic() < deadline, (workdir / "serve.err").read_text()
        await anyio.sleep(0.05)

    async def one(i: int) -> None:
        """One client session, one call: run_readonly for even i, validate_sql for odd i."""
        async with Client(f"{base}/mcp") as client:
            if i % 2 == 0:
                sql = (
                    "SELECT count(*)::int AS n, sum(id)::int AS s,"
                    " (SELECT count(*) FROM generate_series(1, 300000)) AS busy"
                    f" FROM items WHERE id % {CALLS} = {i}"
                )
                results[i] = await client.call_tool("run_readonly", {"sql": sql, "database": DB})
            else:
                sql = f"SELECT name, price FROM items WHERE id = {i} ORDER BY name"
                results[i] = await client.call_tool("validate_sql", {"sql": sql, "database": DB})

    with ActivitySampler(pgtemp) as sampler:
        t0 = time.monotonic()
        with anyio.fail_after(120):  # a hang fails the test instead of blocking CI
            async with anyio.create_task_group() as tg:
                for i in range(CALLS):
                    tg.start_soon(one, i)
        elapsed = time.monotonic() - t0
        await anyio.sleep(0.2)  # a few samples after the burst too

    assert len(results) == CALLS
    failed = {i: r for i, r in results.items() if r.is_error}
    assert not failed, {i: r.content for i, r in failed.items()}
    for i, res in results.items():
        data = res.structured_content
        if i % 2 == 0:
            assert data["rows"] == [[*expected(i), 300000]], (i, data)
        else:
            assert data["ok"] is True and data["tables"] == ["public.items"], (i, data)

    peak_pool, peak_pool_db, _, peak_active, peak_all = (sampler.peak(k) for k in range(5))
    print(
        f"[figures] {CALLS} concurrent MCP calls over HTTP in {elapsed:.2f} s; "
        f"{len(sampler.samples)} samples; peak pg-mcp connections {peak_pool} "
        f"(active {peak_active}), all connections {peak_all}, pool_max_size {POOL}"
    )
    assert sampler.samples, "the sampler saw nothing"
    assert peak_active >= 1  # the burst did reach the database while sampled
    assert peak_pool <= POOL, sampler.samples
    assert peak_pool_db <= POOL
    # outside the pool: at most the one discovery connection of the first run_readonly (the
    # executor resolves a database name once; concurrent first calls wait for that one)
    assert peak_all <= POOL + 1, sampler.samples

    # afterwards: nothing left inside a transaction, the pool within its size
    deadline = time.monotonic() + 5
    while True:
        rows = activity(pgtemp)
        stuck = [r for r in rows if str(r[2]).startswith("idle in transaction")]
        if not stuck or time.monotonic() > deadline:
            break
        await anyio.sleep(0.1)
    assert stuck == [], stuck
    assert sum(1 for r in rows if r[0] == "pg-mcp") <= POOL, rows
    assert all(r[2] in ("idle", None) for r in rows if r[0] == "pg-mcp"), rows

    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        metrics = resp.read().decode().splitlines()
    assert f'pg_mcp_tool_calls_total{{tool="run_readonly",outcome="ok"}} {CALLS // 2}' in metrics
    assert f'pg_mcp_tool_calls_total{{tool="validate_sql",outcome="ok"}} {CALLS // 2}' in metrics

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    stderr = (workdir / "serve.err").read_text()
    assert PASSWORD not in stderr and PASSWORD not in (workdir / "serve.out").read_text()
