"""System prompts, message builders and the JSON schemas of the ask loop (pure)."""

from __future__ import annotations

import json
from typing import Any

GENERATE_SYSTEM = """\
You translate questions about a PostgreSQL database into ONE read-only SQL query.
Rules:
- PostgreSQL dialect. Exactly one SELECT (a WITH ... SELECT is fine). No semicolon.
- Never write: no INSERT/UPDATE/DELETE/MERGE, DDL, SET, locking clauses, SELECT INTO.
- Use only the tables and columns listed in the schema; qualify tables with their schema.
  Tables under OTHER TABLES exist but their columns are not shown: do not guess columns; if
  you need one, name it in "tables" and its columns will be sent back after a rejection.
- Join along the foreign keys shown. Use the enum labels and sample values shown for filters.
- Give computed columns readable aliases. Order results meaningfully. When the question asks
  for a list without a size, add LIMIT 100.
- The question may be in Chinese or English; table comments may be in Chinese. Write the
  explanation in the language of the question, in one or two sentences.
Reply with JSON: "tables" (the schema-qualified tables you use), "sql", "explanation"."""

CHOOSE_ADDENDUM = """
Several databases could hold the answer; their schemas follow. First choose the one database
that answers the question ("database"), then write the query for that database only."""

JUDGE_SYSTEM = """\
You review an answer to a question about a PostgreSQL database: the question, the SQL that
was run, and a sample of its result. Judge whether the query answers the question as asked:
right tables and joins, filters, grouping and aggregation, ordering/limits, units, and
whether the result looks plausible. An empty result can be correct. Do not penalise style.
Score 0-10: 10 exactly right; 8-9 right with trivial issues; 7 acceptable; 4-6 partly wrong
(missing filter, wrong grouping, wrong column); 0-3 wrong or unrelated.
Reply with JSON: "reasoning" (brief, concrete: what is wrong and how to fix it), "score" (integer)."""


def generation_schema(databases: list[str] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if databases:
        props["database"] = {
            "type": "string",
            "enum": list(databases),
            "description": "the database the query is for",
        }
    props["tables"] = {
        "type": "array",
        "items": {"type": "string"},
        "description": "schema-qualified tables the query reads",
    }
    props["sql"] = {"type": "string", "description": "one read-only PostgreSQL query, no semicolon"}
    props["explanation"] = {"type": "string", "description": "one or two sentences"}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string", "description": "what is right or wrong, briefly"},
        "score": {"type": "integer", "description": "0 (wrong) to 10 (exactly right)"},
    },
    "required": ["reasoning", "score"],
    "additionalProperties": False,
}


def generation_messages(
    question: str, context_text: str, *, choosing: bool = False
) -> list[dict[str, str]]:
    system = GENERATE_SYSTEM + (CHOOSE_ADDENDUM if choosing else "")
    user = f"Schema:\n{context_text}\n\nQuestion: {question}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def feedback_message(attempt: int, problem: str, extra_schema: str = "") -> dict[str, str]:
    text = f"Attempt {attempt} failed. {problem}\nWrite a corrected query (same JSON format)."
    if extra_schema:
        text += f"\nSchema of tables you referenced that were not listed:\n{extra_schema}"
    return {"role": "user", "content": text}


def judge_messages(
    question: str,
    sql: str,
    explanation: str,
    result: dict[str, Any],
    tables_text: str = "",
    *,
    sample_rows: int = 20,
    max_cell: int = 120,
) -> list[dict[str, str]]:
    cols = result.get("columns") or []
    rows = (result.get("rows") or [])[:sample_rows]
    col_desc = ", ".join(f"{c.get('name')} ({c.get('type')})" for c in cols) or "(none)"
    lines = [
        json.dumps([_cell(v, max_cell) for v in row], ensure_ascii=False, default=str)
        for row in rows
    ]
    parts = [
        f"Question: {question}",
        f"SQL:\n{sql}",
        f"Explanation given: {explanation or '(none)'}",
    ]
    if tables_text:
        parts.append(f"Tables used:\n{tables_text}")
    parts.append(
        f"Result: {result.get('row_count', len(rows))} row(s)"
        + (" (truncated by the row cap)" if result.get("truncated") else "")
        + f"; columns: {col_desc}"
        + (f"; first {len(lines)} rows:\n" + "\n".join(lines) if lines else "; no rows")
    )
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _cell(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    if isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= limit else text[:limit] + "..."
    return value
