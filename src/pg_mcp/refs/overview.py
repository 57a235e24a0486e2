"""The database-wide parts of a reference (pure): the header every page shares (title,
summary line, server, search path, the keys note, the notes people keep) and the overview
(schemas, enums, domains, composite types, extensions, functions, sequences), as records for
the templates.
"""

from __future__ import annotations

from collections import defaultdict

from pg_mcp.core.datatext import quote_text, sql_literal
from pg_mcp.core.model import DatabaseSchema
from pg_mcp.refs.markdown import (
    MAX_CELL,
    NOTE_CAP,
    approx_bytes,
    cell,
    code,
    ident,
    one_line,
    plural,
    quoted,
)
from pg_mcp.refs.pages import Record
from pg_mcp.refs.relations import Context, keys_note

EXAMPLE_SQL_LINES = 30  # lines of a verified example's SQL shown


def overview_view(ctx: Context) -> Record:
    db = ctx.db
    counts: dict[str, dict[str, int]] = {s: defaultdict(int) for s in db.schemas}
    for t in db.tables:
        if t.partition_of:
            continue
        counts.setdefault(t.schema, defaultdict(int))[t.kind] += 1
    schemas = []
    for s in db.schemas:
        c = counts.get(s, {})
        schemas.append(
            Record(
                name=cell(ident(s)),
                tables=c.get("table", 0)
                + c.get("partitioned table", 0)
                + c.get("foreign table", 0),
                views=c.get("view", 0) + c.get("materialized view", 0),
                comment=quoted(db.schema_comments.get(s)),
            )
        )
    functions = [
        Record(
            signature=code(f"{_qual(db, f.schema, f.name)}({f.arguments})"),
            returns=cell(f.returns or "—", MAX_CELL),
            kind=f.kind,
            language=cell(f.language),
            volatility=f.volatility,
            comment=quoted(f.comment),
        )
        for f in db.functions
        if f.extension is None  # extension members are the extension's documentation's
    ]
    return Record(
        {
            "schemas": schemas,
            "enums": [
                code(_qual(db, e.schema, e.name))
                + ": "
                + ", ".join(sql_literal(v, None) for v in e.labels)
                + (f" — {quote_text(e.comment)}" if e.comment else "")
                for e in db.enums
            ],
            "domains": [
                code(_qual(db, d.schema, d.name))
                + ": "
                + " ".join(
                    [d.base_type]
                    + ([] if d.nullable else ["NOT NULL"])
                    + ([f"DEFAULT {one_line(d.default)}"] if d.default else [])
                    + [one_line(c) for c in d.checks]
                )
                + (f" — {quote_text(d.comment)}" if d.comment else "")
                for d in db.domains
            ],
            "composites": [
                code(_qual(db, c.schema, c.name))
                + " ("
                + ", ".join(f"{ident(f.name)} {f.type}" for f in c.fields)
                + ")"
                + (f" — {quote_text(c.comment)}" if c.comment else "")
                for c in db.composites
            ],
            "extensions": [
                f"{code(e.name)} {e.version} (schema {ident(e.schema)})"
                + (f" — {quote_text(e.comment)}" if e.comment else "")
                for e in db.extensions
            ],
            "functions": functions,
            "sequences": [
                code(_qual(db, s.schema, s.name))
                + f" {s.data_type}"
                + (f" (owned by {s.owned_by})" if s.owned_by else "")
                + (f" — {quote_text(s.comment)}" if s.comment else "")
                for s in db.sequences
                if not s.owned_by or s.comment
            ],
            "owned_sequences": sum(1 for s in db.sequences if s.owned_by and not s.comment),
        }
    )


def _qual(db: DatabaseSchema, schema: str, name: str) -> str:
    if db.search_path and schema == db.search_path[0]:
        return ident(name)
    return f"{ident(schema)}.{ident(name)}"


def _counts(db: DatabaseSchema) -> Record:
    c: dict[str, int] = defaultdict(int)
    for t in db.tables:
        if not t.partition_of:
            c[t.kind] += 1
    return Record(
        {
            "schemas": len(db.schemas),
            "tables": c["table"] + c["partitioned table"] + c["foreign table"],
            "views": c["view"],
            "matviews": c["materialized view"],
            "functions": sum(1 for f in db.functions if f.extension is None),
        }
    )


def summary(db: DatabaseSchema) -> str:
    """One line: schemas, tables, views, size (rounded), for headers and README."""
    c = _counts(db)
    bits = [
        plural(c["schemas"], "schema"),
        plural(c["tables"], "table"),
        plural(c["views"], "view"),
    ]
    if c["matviews"]:
        bits.append(plural(c["matviews"], "materialized view"))
    if c["functions"]:
        bits.append(plural(c["functions"], "function"))
    bits.append("~" + approx_bytes(db.size_bytes))
    return ", ".join(bits)


def notes_view(db: DatabaseSchema) -> Record | None:
    """The notes people keep, for the ``_notes.md.j2`` section (None: there are none)."""
    shared = set(db.glossary_shared)  # the shared data words help ask; not listed per database
    if not (db.note or set(db.glossary) - shared or db.examples):
        return None
    glossary = [
        f"{quote_text(term, 60)}: {quote_text(meaning, NOTE_CAP)}"
        for term, meaning in sorted(db.glossary.items())
        if term not in shared
    ]
    examples = []
    for ex in db.examples:
        sql = str(ex.get("sql", "")).strip().rstrip(";")
        lines = [ln.rstrip() for ln in sql.splitlines() if ln.strip()][:EXAMPLE_SQL_LINES]
        examples.append(
            Record(
                question=quote_text(str(ex.get("question", "")), NOTE_CAP),
                verified=cell(str(ex.get("verified") or "")),
                sql="\n".join(lines).replace("```", "` ` `"),
            )
        )
    return Record(
        description=quote_text(db.note, NOTE_CAP * 2) if db.note else "",
        glossary=glossary,
        examples=examples,
    )


def header_view(db: DatabaseSchema) -> Record:
    major = db.server_version.split()[0] if db.server_version else "?"
    return Record(
        {
            "name": db.name,
            "title": cell(db.name),
            "comment": quoted(db.comment),
            "summary": summary(db),
            "server": f"PostgreSQL {major}",
            "search_path": ", ".join(ident(s) for s in db.search_path) or "(empty)",
            "keys_note": keys_note(db),
            "notes": notes_view(db),
        }
    )
