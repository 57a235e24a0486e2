"""`pg-mcp references` end to end: every catalog object appears, runs are reproducible,
files stay small, the cache is written, and the access policy is obeyed.

The expected objects are read from the catalogs with plain SQL, independently of
pg_mcp.db.introspect, for each fixture database and for pagila/northwind when
../shared/databases is present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pg_mcp.cli.commands.references import MANIFEST, _replace_files, generate
from pg_mcp.core.datatext import quote_text, sql_literal
from pg_mcp.core.settings import Policy, Settings
from pg_mcp.db.cache import SchemaCache
from pg_mcp.db.discovery import database_dsn
from pg_mcp.refs.render import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "databases"
FIXTURES = ("db_pg_mcp_small", "db_pg_mcp_medium", "db_pg_mcp_large")
SAMPLES = ("pagila", "northwind")
GOLDEN_SQL = Path(__file__).parent / "golden" / "small_schema.sql"

_SYSTEM = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"
    " AND n.nspname NOT LIKE 'pg\\_temp%'"
)


def _not_ext(catalog: str, oid: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass"
        f" AND d.objid = {oid} AND d.deptype = 'e')"
    )


# What a reference must mention: (what, name) pairs, read straight from the catalogs.
EXPECTED_SQL = f"""
WITH rel AS (
  SELECT c.oid, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_SYSTEM} AND {_not_ext("pg_class", "c.oid")}
), typ AS (
  SELECT t.oid, t.typname, t.typtype, t.typrelid FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE (t.typtype IN ('e', 'd')
         OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
    AND {_SYSTEM} AND {_not_ext("pg_type", "t.oid")}
)
SELECT 'relation', relname FROM rel
UNION ALL
SELECT 'column', a.attname FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid
  WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'type', typname FROM typ
UNION ALL
SELECT 'type field', a.attname FROM typ JOIN pg_attribute a ON a.attrelid = typ.typrelid
  WHERE typ.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'enum label', e.enumlabel FROM pg_enum e JOIN typ ON typ.oid = e.enumtypid
UNION ALL
SELECT 'index', ic.relname FROM pg_index i JOIN rel ON rel.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid
UNION ALL
SELECT 'function', p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE {_SYSTEM} AND {_not_ext("pg_proc", "p.oid")}
UNION ALL
SELECT 'comment', d.description FROM pg_description d
  WHERE (d.classoid = 'pg_class'::regclass AND (d.objoid IN (SELECT oid FROM rel)
          OR d.objoid IN (SELECT i.indexrelid FROM pg_index i JOIN rel ON rel.oid = i.indrelid)))
     OR (d.classoid = 'pg_type'::regclass AND d.objoid IN (SELECT oid FROM typ))
     OR (d.classoid = 'pg_proc'::regclass AND d.objoid IN (
          SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          WHERE {_SYSTEM} AND {_not_ext("pg_proc", "p.oid")}))
     OR (d.classoid = 'pg_namespace'::regclass AND d.objoid IN (
          SELECT n.oid FROM pg_namespace n WHERE {_SYSTEM}))
     OR (d.classoid = 'pg_constraint'::regclass AND d.objoid IN (
          SELECT co.oid FROM pg_constraint co JOIN rel ON rel.oid = co.conrelid
          WHERE co.contype IN ('p', 'u', 'f', 'c', 'x')))
UNION ALL
SELECT 'comment', shobj_description(oid, 'pg_database') FROM pg_database
  WHERE datname = current_database() AND shobj_description(oid, 'pg_database') IS NOT NULL
"""


def _norm(text: str) -> str:
    return " ".join(text.split()).replace("\\|", "|")


def _shown(what: str, name: str) -> str:
    """How the reference writes a catalog object: comments quoted and capped, enum labels as
    SQL literals (database text is data: pg_mcp.core.datatext), names as they are."""
    if what == "comment":  # the catalog query returns them as `name` (63 bytes): a prefix
        return _norm(quote_text(name))[:-1]
    if what == "enum label":
        return _norm(sql_literal(name, None))
    return _norm(name)


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _texts(out: Path, db: str) -> dict[str, str]:
    files = {f"{db}.md": (out / f"{db}.md").read_text(encoding="utf-8")}
    if (out / db).is_dir():
        for p in sorted((out / db).rglob("*.md")):
            files[p.relative_to(out).as_posix()] = p.read_text(encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def sample_dbs(pg_dsn: str) -> dict[str, str]:
    if not SHARED.is_dir():
        return {}
    try:
        from pg_mcp_dev.fixtures import ensure_sample_dbs
    except ImportError:
        return {}
    return ensure_sample_dbs(pg_dsn, SHARED)


Generated = Callable[[str], tuple[Path, Settings, str]]


@pytest.fixture(scope="module")
def generated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Generated:
    """db -> (references folder, settings, server DSN); generated once per database."""
    done: dict[str, tuple[Path, Settings, str]] = {}

    def get(db: str) -> tuple[Path, Settings, str]:
        if db not in done:
            if db in FIXTURES:
                server = request.getfixturevalue("fixture_dsn")
            else:
                loaded = request.getfixturevalue("sample_dbs")
                if loaded.get(db) not in ("loaded", "up to date"):
                    pytest.skip(
                        f"{db} is not available (../shared/databases missing or incomplete)"
                    )
                server = request.getfixturevalue("pg_dsn")
            settings = Settings(dsn=server, home=tmp_path_factory.mktemp(f"home-{db}"))
            out = tmp_path_factory.mktemp(f"refs-{db}")
            (result,) = generate(settings, names=[db], out=out)
            assert result.database == db and result.files >= 1
            done[db] = (out, settings, server)
        return done[db]

    return get


DATABASES = FIXTURES + SAMPLES


@pytest.mark.parametrize("db", DATABASES)
def test_every_catalog_object_appears(db: str, generated: Generated) -> None:
    out, _, server = generated(db)
    text = _norm("\n".join(_texts(out, db).values()))
    with psycopg.connect(database_dsn(server, db), autocommit=True) as conn:
        expected = conn.execute(EXPECTED_SQL).fetchall()
    assert expected, "the catalog query found nothing"
    missing = sorted({(what, name) for what, name in expected if _shown(what, name) not in text})
    assert not missing, (
        f"{len(missing)} catalog objects missing from the {db} references: {missing[:20]}"
    )


@pytest.mark.parametrize("db", DATABASES)
def test_files_are_small_and_linked(db: str, generated: Generated) -> None:
    out, _, _ = generated(db)
    texts = _texts(out, db)
    assert all(len(t.encode()) <= MAX_FILE_BYTES for t in texts.values()), {
        k: len(v.encode()) for k, v in texts.items() if len(v.encode()) > MAX_FILE_BYTES
    }
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert f"[{db}]({db}.md)" in readme
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert sorted(manifest[db]["files"]) == sorted(texts)
    if len(texts) > 1:  # the index layout: every other file is linked from some file
        linked = "\n".join(texts.values())
        for path in texts:
            if path != f"{db}.md":
                assert Path(path).name in linked, f"{path} is not linked from anywhere"


@pytest.mark.parametrize("db", DATABASES)
def test_two_runs_produce_identical_trees(
    db: str, generated: Generated, tmp_path_factory: pytest.TempPathFactory
) -> None:
    first, settings, _ = generated(db)
    # autovacuum may analyse a freshly loaded database between two runs (estimates and
    # samples then legitimately change): two consecutive runs must agree within 3 tries
    previous = _tree(first)
    for _ in range(3):
        again = tmp_path_factory.mktemp(f"again-{db}")
        generate(settings, names=[db], out=again)
        current = _tree(again)
        if current == previous:
            break
        previous = current
    else:
        changed = sorted(
            k for k in set(previous) | set(current) if previous.get(k) != current.get(k)
        )
        pytest.fail(f"three runs of {db} differ: {changed[:10]}")
    # the same folder once more: no file left over or added, unchanged files not rewritten
    stamps = {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}
    generate(settings, names=[db], out=again)
    final = _tree(again)
    assert set(final) == set(current)
    for p, stamp in stamps.items():
        rel = p.relative_to(again).as_posix()
        if final[rel] == current[rel]:
            assert p.stat().st_mtime_ns == stamp, f"{rel} was rewritten unchanged"


@pytest.mark.parametrize("db", DATABASES)
def test_the_schema_cache_is_written(db: str, generated: Generated) -> None:
    _, settings, _ = generated(db)
    cache = SchemaCache(settings)
    loaded = cache.load(db)
    assert loaded is not None, "references did not write the schema cache"
    schema, _ = loaded
    assert cache.get(db) == schema  # served from the file, no new introspection needed
    assert schema.tables and all(t.columns for t in schema.tables if t.kind != "view" or t.columns)


# --- a scratch database: policy, stale files, the CLI ------------------------------------------


@pytest.fixture
def golden_db(pg_dsn: str, scratch_db: str) -> str:
    with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute(GOLDEN_SQL.read_text(encoding="utf-8"))
    return scratch_db


def test_denied_objects_are_absent_from_references_and_samples(
    pg_dsn: str, reader_dsn: str, golden_db: str, tmp_path: Path
) -> None:
    open_settings = Settings(dsn=reader_dsn, home=tmp_path / "h1")
    generate(open_settings, names=[golden_db], out=tmp_path / "open")
    visible = (tmp_path / "open" / f"{golden_db}.md").read_text(encoding="utf-8")
    assert "products" in visible and "| country |" in visible and "'GB'" in visible

    policy = Policy(deny_tables=("shop.products",), deny_columns=("shop.customers.country",))
    settings = Settings(dsn=reader_dsn, home=tmp_path / "h2", policy=policy)
    generate(settings, names=[golden_db], out=tmp_path / "closed")
    text = (tmp_path / "closed" / f"{golden_db}.md").read_text(encoding="utf-8")
    assert "products" not in text  # the table, its indexes, the foreign key to it
    assert "country" not in text and "'GB'" not in text and "ISO 3166" not in text
    cached = SchemaCache(settings).load(golden_db)
    assert cached is not None
    # The cache keeps only the denied column's name (so the validator can name it when
    # refusing SELECT *), never its type, comment or values.
    customers = cached[0].table("customers", "shop")
    assert customers is not None and customers.hidden_columns == ["country"]
    customers.hidden_columns = []
    assert "country" not in cached[0].to_json() and "'GB'" not in cached[0].to_json()


def test_stale_files_of_a_database_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "refs"
    (out / "shopdb").mkdir(parents=True)
    (out / "shopdb" / "public.gone.md").write_text("old", encoding="utf-8")
    (out / "shopdb~2.md").write_text("old part", encoding="utf-8")
    (out / "notes.md").write_text("not ours", encoding="utf-8")
    manifest: dict[str, dict] = {}
    # no manifest yet: what this tool would have written for the database goes
    _replace_files(out, "shopdb", {"shopdb.md": "new", "shopdb/public.kept.md": "kept"}, manifest)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.md")) == [
        "notes.md",
        "shopdb.md",
        "shopdb/public.kept.md",
    ]
    # with a manifest: exactly the files it lists, and the emptied folder
    manifest["shopdb"] = {"files": ["shopdb.md", "shopdb/public.kept.md"]}
    _replace_files(out, "shopdb", {"shopdb.md": "one file now"}, manifest)
    assert not (out / "shopdb").exists()
    assert (out / "notes.md").read_text(encoding="utf-8") == "not ours"


def test_references_cli(pg_dsn: str, reader_dsn: str, golden_db: str, tmp_path: Path) -> None:
    env = {**os.environ, "PG_MCP_DSN": reader_dsn, "PG_MCP_HOME": str(tmp_path / "home")}
    env.pop("PG_MCP_CONFIG", None)
    out = tmp_path / "refs"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pg_mcp.cli.main", "references", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )

    done = cli("--db", golden_db, "--out", str(out), "--no-samples")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"{golden_db}: 8 tables/views, 1 file, ") and line.endswith(" s")
    text = (out / f"{golden_db}.md").read_text(encoding="utf-8")
    body = text.split("## Overview")[1]
    assert "values:" not in body and "e.g." not in body
    assert (tmp_path / "home" / "cache" / f"{golden_db}.json").is_file()
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert (
        f"- [{golden_db}]({golden_db}.md): 3 schemas, 6 tables, 1 view, 1 materialized view"
        in readme
    )

    missing = cli("--db", "pgmcp_no_such_database_here", "--out", str(out))
    assert missing.returncode == 1 and "UNKNOWN_DATABASE" in missing.stderr
