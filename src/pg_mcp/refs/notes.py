"""Notes people add about a database: ``<references dir>/notes/<db>.toml``, kept in the repo.

What only people know: what a table or column means, units, business terms ("fired" means
``termination_date IS NOT NULL``), Chinese words for English table names, and verified
question -> SQL examples. They are merged into the references (``pg-mcp references``) and
into ``ask``'s context (descriptions, the glossary terms the question uses, the nearest
examples). ``_glossary.toml`` in the same folder holds terms shared by every database (the
Chinese -> English data words that help a Chinese question find English tables).

    description = "What this database is for"
    [tables]
    "orders" = "One row per order; cancelled ones stay"        # or "schema.table"
    [columns]
    "orders.total" = { description = "after discount", unit = "EUR" }
    [glossary]
    "fired" = "employees.termination_date IS NOT NULL"
    "订单" = "order"
    [[examples]]
    question = "How many orders were cancelled?"
    sql = "SELECT count(*) FROM orders WHERE status = 'cancelled'"
    verified = "2026-12-07"

Notes are people's text, but they are rendered like database text: quoted, one line,
capped (``pg_mcp.core.datatext``). ``pg-mcp notes add-example`` appends an example only after the
SQL passed the validator and ran read-only (``commands/notes.py``).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.model import DatabaseSchema, Table

SHARED = "_glossary"  # notes/_glossary.toml: terms for every database
MAX_EXAMPLES_IN_PROMPT = 3


@dataclass
class Example:
    question: str
    sql: str
    verified: str | None = None


@dataclass
class Notes:
    database: str
    description: str | None = None
    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    glossary: dict[str, str] = field(default_factory=dict)
    examples: list[Example] = field(default_factory=list)
    shared_terms: list[str] = field(default_factory=list)  # glossary terms from _glossary.toml


def notes_dir(references_dir: Path) -> Path:
    return references_dir / "notes"


def notes_path(references_dir: Path, database: str) -> Path:
    from pg_mcp.refs.render import safe_filename

    return notes_dir(references_dir) / f"{safe_filename(database)}.toml"


def parse(text: str, database: str, source: str = "notes") -> Notes:
    """The notes in ``text`` (TOML); CONFIG_ERROR with the line when it is malformed."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PgMcpError("CONFIG_ERROR", f"{source}: not valid TOML: {exc}") from None
    notes = Notes(database)
    notes.description = _text(data.get("description"), f"{source}: description")
    for key, value in _table(data, "tables", source).items():
        if isinstance(value, dict):
            value = value.get("description")
        notes.tables[key] = _text(value, f"{source}: tables.{key}") or ""
    for key, value in _table(data, "columns", source).items():
        if isinstance(value, str):
            value = {"description": value}
        if not isinstance(value, dict):
            raise PgMcpError("CONFIG_ERROR", f"{source}: columns.{key} must be text or a table")
        notes.columns[key] = {
            k: _text(v, f"{source}: columns.{key}.{k}") or ""
            for k, v in value.items()
            if k in ("description", "unit")
        }
    for key, value in _table(data, "glossary", source).items():
        notes.glossary[key] = _text(value, f"{source}: glossary.{key}") or ""
    examples = data.get("examples", [])
    if not isinstance(examples, list):
        raise PgMcpError("CONFIG_ERROR", f"{source}: examples must be an array of tables")
    for i, ex in enumerate(examples, 1):
        if not isinstance(ex, dict) or not ex.get("question") or not ex.get("sql"):
            raise PgMcpError("CONFIG_ERROR", f"{source}: example {i} needs question and sql")
        notes.examples.append(
            Example(str(ex["question"]), str(ex["sql"]), _text(ex.get("verified"), "verified"))
        )
    return notes


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PgMcpError("CONFIG_ERROR", f"{source}: [{key}] must be a table")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise PgMcpError("CONFIG_ERROR", f"{where} must be text")
    return str(value)


def load(references_dir: Path, database: str) -> Notes:
    """The database's notes, with the shared glossary under its own terms (none: empty)."""
    notes = Notes(database)
    path = notes_path(references_dir, database)
    if path.is_file():
        notes = parse(path.read_text(encoding="utf-8"), database, str(path))
    shared = notes_dir(references_dir) / f"{SHARED}.toml"
    if shared.is_file():
        common = parse(shared.read_text(encoding="utf-8"), SHARED, str(shared))
        notes.shared_terms = sorted(set(common.glossary) - set(notes.glossary))
        notes.glossary = {**common.glossary, **notes.glossary}
    return notes


def apply(db: DatabaseSchema, notes: Notes) -> list[str]:
    """Put the notes on the model (``Table.note``, ``Column.note``/``unit``, the glossary and
    examples); returns the keys that name nothing in the database (to warn about)."""
    unknown = []
    db.note = notes.description
    db.glossary = dict(notes.glossary)
    db.glossary_shared = list(notes.shared_terms)
    db.examples = [vars(e).copy() for e in notes.examples]
    for key, text in notes.tables.items():
        t = _find_table(db, key)
        if t is None:
            unknown.append(f"tables.{key}")
        else:
            t.note = text
    for key, entry in notes.columns.items():
        table_key, _, column = key.rpartition(".")
        t = _find_table(db, table_key) if table_key else None
        col = t.column(column) if t is not None else None
        if col is None:
            unknown.append(f"columns.{key}")
            continue
        col.note = entry.get("description") or None
        col.unit = entry.get("unit") or None
    return unknown


def _find_table(db: DatabaseSchema, key: str) -> Table | None:
    schema, _, name = key.rpartition(".")
    return db.table(name, schema or None)


def apply_from(references_dir: Path, db: DatabaseSchema) -> DatabaseSchema:
    """``apply(db, load(...))`` for callers holding only the references folder."""
    apply(db, load(references_dir, db.name))
    return db


# --- examples -------------------------------------------------------------------------------


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's, ``\\u`` included)."""
    return json.dumps(text, ensure_ascii=False)


def append_example(path: Path, example: Example) -> None:
    """Append one ``[[examples]]`` entry to a notes file (created when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    block = (
        "\n[[examples]]\n"
        f"question = {toml_string(example.question)}\n"
        f"sql = {toml_string(example.sql)}\n"
        f"verified = {toml_string(example.verified or '')}\n"
    )
    if before and not before.endswith("\n"):
        block = "\n" + block
    text = before + block
    parse(text, path.stem, str(path))  # never write a file the next load would refuse
    path.write_text(text, encoding="utf-8")


def normalise_question(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()
