"""pg-mcp notes add-example --db DB QUESTION SQL: store a verified question -> SQL example.

The SQL goes through the same doors as ``pg-mcp run``: the validator (one read-only query,
names checked against the database), then the executor (a read-only transaction, always
rolled back, with the configured timeouts and caps). Only when it ran is the example
appended to ``<references dir>/notes/<db>.toml`` with today's date as ``verified``; a refusal
or a database error exits 1 with its code and stores nothing, and so does a question the
file already holds. ``pg-mcp references`` then shows the example, and ``ask`` puts the
nearest examples to a question into its prompt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings

CHECK_ROWS = 20  # rows fetched to prove the SQL runs (the rows are not stored)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.cli.commands.validate import read_sql
    from pg_mcp.db.discovery import resolve_database
    from pg_mcp.db.executor import run_readonly
    from pg_mcp.refs import notes

    question = " ".join(args.question.split())
    if not question:
        raise PgMcpError("PARSE_ERROR", "the question is empty")
    sql = read_sql(args.sql).strip().rstrip(";").strip()
    database = resolve_database(settings, args.db)
    path = notes.notes_path(settings.references_dir, database)
    existing = notes.load(settings.references_dir, database)
    if any(
        notes.normalise_question(e.question) == notes.normalise_question(question)
        for e in existing.examples
    ):
        raise PgMcpError(
            "CONFIG_ERROR",
            f"{path} already holds an example for this question",
            hint="edit the file to change it",
        )
    result = run_readonly(sql, database, settings=settings, max_rows=CHECK_ROWS)
    if not result.ok:
        raise PgMcpError(
            result.code or "DB_ERROR",
            f"not stored: {result.message}",
            hint=result.hint,
            position=result.position,
        )
    example = notes.Example(question, sql, dt.date.today().isoformat())
    notes.append_example(path, example)
    rows = f"{result.row_count}{'+' if result.truncated else ''} row{'s' if result.row_count != 1 else ''}"
    if getattr(args, "json", False):
        print(
            json.dumps(
                {
                    "ok": True,
                    "database": database,
                    "file": str(path),
                    "rows": result.row_count,
                    "truncated": result.truncated,
                },
                ensure_ascii=False,
            )
        )
    else:
        print(f"stored in {path} (validated, ran read-only: {rows})")
        if result.row_count == 0:
            print("note: the query returned no rows; is that the right answer?", file=sys.stderr)
    return 0
