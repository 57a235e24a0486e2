"""The reviewed table of built-in functions (src/pg_mcp/core/data/builtin_functions.tsv).

It must classify every core pg_catalog function of every supported major version, be
exactly what scripts/classify_functions.py generates from the committed dumps, and cover
the live server: a server version that brings a function nobody classified fails here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg
import pytest

from pg_mcp.core import functions
from pg_mcp.core.functions import (
    HARMLESS_VOLATILE,
    SUPPORTED_MAJORS,
    SWITCH_PENDING,
    builtin,
    builtins,
)

ROOT = Path(__file__).resolve().parent.parent
DUMPS = ROOT / "fixtures" / "pg_catalog"
TABLE = ROOT / "src" / "pg_mcp" / "core" / "data" / "builtin_functions.tsv"


def dump(major: int) -> dict[str, set[str]]:
    return functions.read_dump((DUMPS / f"pg_proc-{major}.txt").read_text("utf-8"))


def test_every_supported_major_has_a_dump() -> None:
    assert sorted(int(p.stem.split("-")[1]) for p in DUMPS.glob("pg_proc-*.txt")) == list(
        SUPPORTED_MAJORS
    )


@pytest.mark.parametrize("major", SUPPORTED_MAJORS)
def test_every_dumped_function_is_classified(major: int) -> None:
    table = builtins()
    names = dump(major)
    assert len(names) > 2500  # a whole catalog, not a fragment
    missing = sorted(n for n in names if n not in table)
    assert missing == []
    for name, vols in names.items():
        entry = table[name]
        assert major in entry.versions
        assert vols <= set(entry.volatility.split(","))


def test_the_table_is_what_the_script_generates() -> None:
    spec = importlib.util.spec_from_file_location(
        "classify_functions", ROOT / "scripts" / "classify_functions.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert TABLE.read_text("utf-8") == mod.generate(DUMPS), (
        "stale: run .venv/bin/python scripts/classify_functions.py and review the diff"
    )


def test_the_live_server_brings_no_unclassified_function(pg_dsn: str) -> None:
    """The server the tests run on: every core pg_catalog function is in the table, with its
    volatility (a new major version, or a minor one that adds a function, fails here)."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        major = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        rows = conn.execute(
            """SELECT p.proname, p.provolatile FROM pg_proc p
               WHERE p.pronamespace = 'pg_catalog'::regnamespace
                 AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                 AND d.objid = p.oid AND d.deptype = 'e')"""
        ).fetchall()
    assert major is not None and major[0] in SUPPORTED_MAJORS, (
        f"PostgreSQL {major}: dump it (scripts/dump_pg_proc.py), add it to SUPPORTED_MAJORS"
    )
    table = builtins()
    unclassified = sorted({name for name, _ in rows if name not in table})
    assert unclassified == [], "run scripts/dump_pg_proc.py and scripts/classify_functions.py"
    for name, vol in rows:
        assert vol in table[name].volatility, name


def test_the_reviewed_lists_name_real_functions() -> None:
    table = builtins()
    for name in HARMLESS_VOLATILE:
        assert name in table and "v" in table[name].volatility, name
        assert table[name].allowed
    for name in SWITCH_PENDING:
        assert name in table and table[name].allowed, name


def test_every_verdict_names_a_family() -> None:
    keys = functions.families_by_key()
    for b in builtins().values():
        assert b.verdict == "allow" or b.verdict.partition(":")[2] in keys, b
        assert b.reason
        if not b.allowed:
            assert b.family is not None


def test_volatile_builtins_are_denied_unless_reviewed() -> None:
    for b in builtins().values():
        if "v" in b.volatility and b.allowed:
            assert b.name in HARMLESS_VOLATILE or b.name.startswith(
                functions.HARMLESS_VOLATILE_PREFIXES
            ), b


@pytest.mark.parametrize(
    ("name", "family"),
    [
        # the list (10, item 1)
        ("pg_read_file_old", "files"),
        ("brin_summarize_new_values", "index_maintenance"),
        ("brin_summarize_range", "index_maintenance"),
        ("brin_desummarize_range", "index_maintenance"),
        ("gin_clean_pending_list", "index_maintenance"),
        ("pg_nextoid", "catalog_writes"),
        ("setseed", "seed"),
        ("pg_terminate_backend", "admin"),
        ("pg_cancel_backend", "admin"),
        ("pg_reload_conf", "admin"),
        ("pg_rotate_logfile", "admin"),
        ("txid_current", "xid"),
        ("pg_current_xact_id", "xid"),
        ("pg_export_snapshot", "snapshots"),
        ("currtid2", "snapshots"),
        ("nextval", "sequences"),
        ("setval", "sequences"),
        ("set_config", "set_config"),
        ("pg_notify", "notify"),
        ("pg_sleep", "sleep"),
        ("lo_import", "large_objects"),
        ("query_to_xml", "sql_text"),
        ("table_to_xml", "sql_text"),
        ("pg_advisory_lock", "advisory_locks"),
        ("pg_hba_file_rules", "secret_files"),
        ("bthandler", "volatile"),
    ],
)
def test_known_harmful_builtins_are_denied(name: str, family: str) -> None:
    b = builtin(name)
    assert b is not None and not b.allowed and b.family is not None
    assert b.family.key == family


@pytest.mark.parametrize(
    "name",
    ["random", "now", "clock_timestamp", "gen_random_uuid", "currval", "count", "length",
     "to_char", "pg_backend_pid", "current_setting", "pg_relation_size", "txid_current_if_assigned",
     "jsonb_path_query", "ts_rewrite", "timezone"],
)  # fmt: skip
def test_harmless_builtins_are_allowed(name: str) -> None:
    b = builtin(name)
    assert b is not None and b.allowed, b


def test_arity_rules_stay_with_the_call() -> None:
    assert builtin("ts_rewrite", 3).allowed  # type: ignore[union-attr]
    two = builtin("ts_rewrite", 2)
    assert two is not None and not two.allowed and two.family.key == "sql_text"  # type: ignore[union-attr]


def test_lookups_are_exact() -> None:
    assert builtin("RANDOM") is None  # PostgreSQL folds unquoted names; the caller does too
    assert builtin("no_such_function") is None
