"""The JSON schema cache: memory, disk, TTL, background refresh, fingerprints, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.cache import SchemaCache
from pg_mcp.db.discovery import database_dsn


@pytest.fixture
def db(pg_dsn: str, scratch_db: str) -> str:
    with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute("CREATE TABLE first_table (id int PRIMARY KEY, kind text)")
    return scratch_db


def _add_table(pg_dsn: str, dbname: str, name: str) -> None:
    with psycopg.connect(database_dsn(pg_dsn, dbname), autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int)")


def _settings(dsn: str, home: Path, **kw: object) -> Settings:
    return Settings(dsn=dsn, home=home, **kw)  # type: ignore[arg-type]


def test_round_trip_through_disk(pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path) -> None:
    settings = _settings(reader_dsn, tmp_path)
    first = SchemaCache(settings).get(db)
    assert first.table("first_table") is not None
    path = SchemaCache(settings).path(db)
    envelope = json.loads(path.read_text(encoding="utf-8"))
    assert envelope["database"] == db and envelope["format"] == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]

    _add_table(pg_dsn, db, "second_table")
    other = SchemaCache(settings)  # a new process: memory empty, file fresh
    again = other.get(db)
    assert again == first and again.table("second_table") is None  # served from the file
    assert other.databases() and db in other.databases()
    assert other.cached() == [db]
    refreshed = other.refresh(db)
    assert refreshed.table("second_table") is not None
    assert SchemaCache(settings).get(db).table("second_table") is not None


def test_a_stale_file_is_introspected_again(
    pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    SchemaCache(_settings(reader_dsn, tmp_path)).get(db)
    _add_table(pg_dsn, db, "second_table")
    stale = SchemaCache(_settings(reader_dsn, tmp_path, cache_ttl=0.0))
    assert stale.info(db)["state"] == "stale"
    assert stale.get(db).table("second_table") is not None


def test_stale_memory_is_served_while_refreshing(
    pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    cache = SchemaCache(_settings(reader_dsn, tmp_path, cache_ttl=0.0))  # always stale once held
    held = cache.get(db)
    _add_table(pg_dsn, db, "second_table")
    served = cache.get(db)  # never waits: the old copy, and a refresh starts behind it
    assert served is held and served.table("second_table") is None
    thread = cache.refresh_in_background(db)  # the running refresh, not a second one
    thread.join(timeout=60)
    assert not cache.refreshing(db)
    assert cache.get(db).table("second_table") is not None
    assert not cache.errors


def test_background_refresh_failure_is_recorded_not_raised(
    pg_dsn: str, reader_dsn: str, tmp_path: Path
) -> None:
    cache = SchemaCache(_settings(reader_dsn, tmp_path))
    thread = cache.refresh_in_background("pgmcp_no_such_database_here")
    thread.join(timeout=60)
    assert "UNKNOWN_DATABASE" in cache.errors["pgmcp_no_such_database_here"]
    with pytest.raises(PgMcpError) as err:
        cache.get("pgmcp_no_such_database_here")
    assert err.value.code == "UNKNOWN_DATABASE"


def test_concurrent_gets_share_one_model(
    pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    cache = SchemaCache(_settings(reader_dsn, tmp_path))
    results: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(cache.get(db))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 8
    assert all(r == results[0] for r in results)


def test_policy_or_server_change_invalidates_the_file(
    pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path
) -> None:
    SchemaCache(_settings(reader_dsn, tmp_path)).get(db)
    hidden = SchemaCache(
        _settings(reader_dsn, tmp_path, policy=Policy(deny_tables=("*.first_table",)))
    )
    assert hidden.load(db) is None  # written under another policy: not used
    assert hidden.get(db).table("first_table") is None
    no_samples = SchemaCache(_settings(reader_dsn, tmp_path, samples=False))
    assert no_samples.load(db) is None


def test_a_corrupt_file_is_ignored(pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path) -> None:
    cache = SchemaCache(_settings(reader_dsn, tmp_path))
    cache.path(db).parent.mkdir(parents=True)
    cache.path(db).write_text("{not json", encoding="utf-8")
    assert cache.info(db)["state"].startswith("unusable")
    assert cache.get(db).table("first_table") is not None


def test_odd_database_names_get_safe_file_names(tmp_path: Path) -> None:
    cache = SchemaCache(Settings(home=tmp_path))
    assert cache.path("a/b c").name == "a%2Fb%20c.json"
    assert cache.path("a/b c").parent == tmp_path / "cache"


def test_cache_cli(pg_dsn: str, reader_dsn: str, db: str, tmp_path: Path) -> None:
    env = {**os.environ, "PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path)}
    env.pop("PG_MCP_CONFIG", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pg_mcp.cli.main", "cache", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    shown = cli("show")
    assert shown.returncode == 0 and "no cached databases" in shown.stdout
    refreshed = cli("refresh", "--db", db)
    assert refreshed.returncode == 0 and f"{db}: refreshed" in refreshed.stdout
    shown = cli("show")
    assert shown.returncode == 0 and f"{db}: fresh" in shown.stdout
    assert cli("path").stdout.strip() == str(tmp_path / "cache")
    assert cli("path", "--db", db).stdout.strip() == str(tmp_path / "cache" / f"{db}.json")
    missing = cli("refresh", "--db", "pgmcp_no_such_database_here")
    assert missing.returncode == 1 and "UNKNOWN_DATABASE" in missing.stderr
