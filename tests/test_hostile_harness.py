"""The hostile-corpus harness: nothing pg-mcp lets through can change anything.

Every case of tests/corpus/hostile.txt and tests/corpus/harness.txt goes through validate_sql
and run_readonly (validation on, as every door runs it) in the WORST configuration a user might
choose: a superuser DSN with ``policy.allow_privileged_role = true``, on a database holding the
objects the payloads aim at (a BRIN index with unsummarized ranges, a GIN index with a pending
list, a sequence, a table) and, on the contrib server, the extensions they need (xml2, dblink,
pageinspect, pg_stat_statements, adminpack, tablefunc). Every case must be refused; and a
fingerprint taken before and after must be identical:

- the database: every table's content, sequences, the catalogs' row counts, roles (with their
  password hashes), per-database/role settings, the OID counter (pg_nextoid probes before and
  after), statistics reset times;
- its files: every file of the database's directory (name, size, content, after a CHECKPOINT),
  postgresql.auto.conf, and the names of every file under the data directory;
- files the server's OS user owns in /tmp;
- other sessions (a victim session must still answer) and locks (no advisory lock left);
- the random() a pooled connection produces (a leaked setseed would show).

Two servers: the shared embedded PostgreSQL 18 (no contrib extensions: the wheel ships only
plpgsql and pgvector), and a private Debian PostgreSQL 15 with contrib, skipped with a clear
reason where /usr/lib/postgresql/15 is not installed (.ci/run installs it).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.checker import validate_sql
from pg_mcp.db.discovery import database_dsn
from pg_mcp.db.executor import Pools, run_readonly
from test_validator_corpus import CORPUS, load_hostile

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
DB = "pgmcp_harness"
CONTRIB = ("xml2", "dblink", "pageinspect", "pg_stat_statements", "adminpack", "tablefunc")
SETUP = """
CREATE TABLE harness_t (id int PRIMARY KEY, label text) WITH (autovacuum_enabled = false);
INSERT INTO harness_t SELECT g, 'row ' || g FROM generate_series(1, 2000) g;
CREATE INDEX harness_brin ON harness_t USING brin (id) WITH (pages_per_range = 1, autosummarize = off);
CREATE TABLE harness_docs (id int, doc text, words tsvector) WITH (autovacuum_enabled = false);
CREATE INDEX harness_gin ON harness_docs USING gin (words) WITH (fastupdate = on);
CREATE SEQUENCE harness_seq;
SELECT nextval('harness_seq');
CREATE TABLE docs (id int, doc text) WITH (autovacuum_enabled = false);
INSERT INTO docs SELECT g, '<a>' || g || '</a>' FROM generate_series(1, 50) g;
"""
# after VACUUM (which would summarize BRIN ranges and empty the GIN pending list), then read
# once so that every tuple's hint bits are set before the first fingerprint
LATE = """
INSERT INTO harness_t SELECT g, 'late ' || g FROM generate_series(2001, 6000) g;  -- unsummarized
INSERT INTO harness_docs SELECT g, '<a>' || g || '</a>', to_tsvector('simple', 'w' || g)
  FROM generate_series(1, 500) g;  -- in the GIN pending list
"""
READ_ALL = "SELECT (SELECT count(*) FROM harness_t), (SELECT count(*) FROM harness_docs)"

CASES = [(c, d, s) for c, d, s in load_hostile()] + [
    (c, d, s) for c, d, s in load_hostile(CORPUS / "harness.txt")
]


# --- servers -------------------------------------------------------------------------------------


class Target:
    """A server to run the corpus on: its administrator DSN, data directory, OS user."""

    def __init__(self, admin: str, datadir: Path, os_user: str | None, contrib: bool) -> None:
        self.admin, self.datadir, self.os_user, self.contrib = admin, datadir, os_user, contrib
        self.name = DB

    def db(self) -> str:
        return database_dsn(self.admin, self.name)


def _create(target: Target) -> None:
    with psycopg.connect(target.admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{target.name}"')
    with psycopg.connect(target.db(), autocommit=True) as conn:
        if target.contrib:
            for ext in CONTRIB:
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{ext}"')
        conn.execute(SETUP)
        conn.execute("ANALYZE")
        conn.execute("VACUUM (FREEZE)")  # every page, catalogs too: reads set no hint bits now
        conn.execute(LATE)
        conn.execute("CHECKPOINT")  # the commits reach disk (async commit defers hint bits)
        conn.execute(READ_ALL)  # a transaction of its own: hint bits set now, once
        conn.execute("ALTER SYSTEM SET autovacuum = off")  # nothing else writes while we look
        conn.execute("SELECT pg_reload_conf()")


def _drop(target: Target) -> None:
    with psycopg.connect(target.admin, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET autovacuum")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute(f'DROP DATABASE IF EXISTS "{target.name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["embedded", "debian15-contrib"])
def target(request: pytest.FixtureRequest, pg_server: tuple[str, str]) -> Iterator[Target]:
    if request.param == "embedded":
        kind, admin = pg_server
        if kind != "embedded":
            pytest.skip("the data-directory checks need the embedded server's data directory")
        from pg_mcp.db import embedded

        datadir = embedded.pgdata_dir(ROOT / ".pg-mcp")
        user = "pgserver" if os.geteuid() == 0 else None
        t = Target(admin, datadir, user, contrib=False)
        _create(t)
        try:
            yield t
        finally:
            _drop(t)
        return
    if not (DEBIAN_BIN / "postgres").exists():
        pytest.skip(
            "Debian's PostgreSQL 15 with contrib is not installed "
            "(apt-get install postgresql-15; .ci/run does it)"
        )
    from pgtemp import PgTemp

    pg = PgTemp(bin_dir=DEBIAN_BIN, settings={"shared_preload_libraries": "pg_stat_statements"})
    try:
        pg.start()
        t = Target(pg.dsn, pg.data, "pgserver" if os.geteuid() == 0 else None, contrib=True)
        _create(t)
        yield t
    finally:
        pg.close()


# --- the fingerprint -------------------------------------------------------------------------------

_VOLATILE_DIRS = {"pg_wal", "pg_stat", "pg_stat_tmp", "pg_xact", "pg_subtrans", "pg_multixact",
                  "pg_logical", "log", "pg_notify", "pg_snapshots", "pg_dynshmem", "pgsql_tmp",
                  "pg_replslot", "pg_serial"}  # fmt: skip


def _db_state(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    q = lambda sql: conn.execute(sql).fetchall()  # noqa: E731
    tables = [
        r[0]
        for r in q(
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1"
        )
    ]
    content = {
        t: q(f"SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM {t} x")[0][0]
        for t in tables
    }  # fmt: skip
    return {
        "content": content,
        "sequences": q("SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2"),
        "catalogs": q(
            "SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_proc),"
            " (SELECT count(*) FROM pg_namespace), (SELECT count(*) FROM pg_type),"
            " (SELECT count(*) FROM pg_largeobject_metadata), (SELECT count(*) FROM pg_extension),"
            " (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_database)"
        ),
        "roles": q("SELECT rolname, rolsuper, md5(coalesce(rolpassword, '')) FROM pg_authid ORDER BY 1"),
        "role_settings": q("SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting ORDER BY 1, 2"),
        "stats_reset": q(
            "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
        ),
    }  # fmt: skip


def _files(target: Target, dboid: int) -> dict[str, Any]:
    base = target.datadir / "base" / str(dboid)
    rel = {}
    for p in sorted(base.iterdir()):
        if p.is_file():
            rel[p.name] = (p.stat().st_size, hashlib.md5(p.read_bytes()).hexdigest())
    names = set()
    for dirpath, dirnames, filenames in os.walk(target.datadir):
        dirnames[:] = [d for d in dirnames if d not in _VOLATILE_DIRS]
        names.update(os.path.relpath(os.path.join(dirpath, f), target.datadir) for f in filenames)
    names -= {"postmaster.pid", "postmaster.opts"}
    auto = (target.datadir / "postgresql.auto.conf").read_text(errors="replace")
    return {"relation_files": rel, "names": sorted(names), "auto_conf": auto}


def _tmp(target: Target) -> list[str]:
    uid = pwd.getpwnam(target.os_user).pw_uid if target.os_user else os.geteuid()
    tmp = Path(tempfile.gettempdir())
    return sorted(
        p.name for p in tmp.iterdir() if p.lstat().st_uid == uid or "pgmcp_harness" in p.name
    )


def fingerprint(target: Target, victim: psycopg.Connection[Any]) -> dict[str, Any]:
    with psycopg.connect(target.db(), autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        state = _db_state(conn)
        dboid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]  # type: ignore[index]  # fmt: skip
        # the OID counter: the probe itself takes one OID, so two probes differ by exactly one
        # when nothing else allocated any in between
        state["oid_probe"] = conn.execute(
            "SELECT pg_nextoid('pg_catalog.pg_class', 'oid', 'pg_catalog.pg_class_oid_index')::int8"
        ).fetchone()[0]  # type: ignore[index]
        state["advisory_locks"] = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        ).fetchone()
    state["files"] = _files(target, dboid)
    state["tmp"] = _tmp(target)
    state["victim_alive"] = victim.execute("SELECT 1").fetchone() == (1,)
    return state


def _diff(before: dict[str, Any], after: dict[str, Any], path: str = "") -> list[str]:
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{path}{key}.")
        elif a != b:
            out.append(f"{path}{key}: {str(a)[:200]} -> {str(b)[:200]}")
    return out


# --- the run ---------------------------------------------------------------------------------------


def worst_settings(target: Target, home: Path) -> Settings:
    return Settings(
        dsn=target.admin,
        home=home,
        policy=Policy(allow_privileged_role=True),  # the worst a user might configure
        statement_timeout=5.0,
        pool_max_size=1,
    )


def run_corpus(
    target: Target, cases: list[tuple[str, str, str]], home: Path, *, validate: bool = True
) -> list[str]:
    """Run ``cases``; the problems found (what was accepted or ran, what changed)."""
    settings = worst_settings(target, home)
    victim = psycopg.connect(target.db(), autocommit=True, application_name="pgmcp-harness-victim")
    try:
        with psycopg.connect(target.db(), autocommit=True) as seeded:
            seeded.execute("SELECT setseed(0.5)")
            after_seed = seeded.execute("SELECT random()").fetchone()[0]  # type: ignore[index]
        before = fingerprint(target, victim)
        problems: list[str] = []
        with Pools(settings) as pools:
            for code, desc, sql in cases:
                if validate and validate_sql(sql, target.name, settings=settings).ok:
                    problems.append(f"the validator accepted: {code} | {desc}")
                result = run_readonly(sql, target.name, pools=pools, validate=validate)
                if validate and result.ok:
                    problems.append(f"run_readonly ran: {code} | {desc}")
            again = run_readonly("SELECT random()", target.name, pools=pools, validate=False)
        if not (again.ok and again.rows[0][0] != after_seed):
            problems.append("changed: setseed leaked into the next use of the pooled connection")
        after = fingerprint(target, victim)
        used = after.pop("oid_probe") - before.pop("oid_probe") - 1
        if used:
            problems.append(f"changed: the OID counter advanced by {used}")
        problems += [f"changed: {c}" for c in _diff(before, after)]
    finally:
        victim.close()
    return problems


def test_nothing_changes_whatever_the_corpus_tries(target: Target, tmp_path: Path) -> None:
    problems = run_corpus(target, CASES, tmp_path)
    assert not problems, "\n".join(problems)


LEGIT = [
    ("", "reads", "SELECT id, label FROM harness_t ORDER BY id LIMIT 50"),
    ("", "aggregates", "SELECT count(*), max(id), min(label) FROM harness_t"),
    ("", "index scan", "SELECT label FROM harness_t WHERE id BETWEEN 10 AND 20"),
    ("", "gin", "SELECT id FROM harness_docs WHERE words @@ to_tsquery('simple', 'w7')"),
    ("", "sequence read", "SELECT last_value FROM harness_seq"),
    ("", "catalog", "SELECT relname FROM pg_class WHERE relkind = 'r' ORDER BY 1 LIMIT 20"),
    ("", "explain", "EXPLAIN SELECT * FROM harness_t WHERE id = 5"),
    ("", "sort to disk", "SELECT md5(label) FROM harness_t ORDER BY 1 LIMIT 5"),
]


def test_control_legitimate_queries_change_nothing(target: Target, tmp_path: Path) -> None:
    """The fingerprint does not move for reads: a change it reports is a real one."""
    problems = run_corpus(target, LEGIT * 3, tmp_path)
    assert not [p for p in problems if p.startswith("changed")], "\n".join(problems)


CONTROLS = [
    ("", "index pages", "SELECT brin_summarize_new_values('harness_brin')"),
    ("", "pending list", "SELECT gin_clean_pending_list('harness_gin')"),
    ("", "OID counter", "SELECT pg_nextoid('pg_catalog.pg_class', 'oid', 'pg_catalog.pg_class_oid_index')"),
    ("", "seed", "SELECT setseed(0.5)"),
]  # fmt: skip


def test_control_the_fingerprint_sees_each_red_team_effect(target: Target, tmp_path: Path) -> None:
    """Each effect the red team produced, run with validation off as a superuser, is seen."""
    home = tmp_path
    for case in CONTROLS:
        target.name = f"{DB}_control"
        _create(target)
        try:
            changed = [
                p
                for p in run_corpus(target, [case], home, validate=False)
                if p.startswith("changed")
            ]
        finally:
            _drop(target)
            target.name = DB
            _create(target)  # the shared harness database, untouched for the next test
        assert changed, f"the fingerprint missed: {case[1]}"
