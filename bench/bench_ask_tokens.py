"""Benchmark: ask's prompt tokens with table selection vs the whole schema in the prompt.

For the questions of one fixture database in fixtures/TEST_QUERIES.md (default
db_pg_mcp_large, falling back to the largest fixture loaded), builds the first
generation prompt exactly as ``ask`` does (system prompt + selected context +
question) and the same prompt with every table rendered, and prints averages:

    ask_prompt_tokens: x        (with table selection, settings.context_token_budget)
    whole_schema_tokens: y      (every table rendered in full)
    ratio: x / y
    context_table_recall: r     (share of the tables each expected SQL reads that the
                                 selected context details)

No model is called; tokens are pg-mcp's estimate (~4 chars per token, 1 per CJK char).

    uv run python bench/bench_ask_tokens.py [--db NAME] [--questions N] [--budget TOKENS]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

FALLBACK = ("db_pg_mcp_large", "db_pg_mcp_medium", "db_pg_mcp_small")
# used when TEST_QUERIES.md has no questions for the database (no recall is computed then)
DEFAULT_QUESTIONS = (
    "What is the total invoiced amount per legal entity in 2025?",
    "Top 10 customers by sales order value in 2025",
    "Which suppliers delivered the most purchase orders late?",
    "How many open support tickets are there per priority?",
    "每个仓库的库存数量是多少？",
    "各部门的员工人数是多少？",
)


def expected_tables(sql: str) -> set[str]:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except sqlglot.errors.ParseError:
        return set()
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    out = set()
    for t in tree.find_all(exp.Table):
        if t.name and t.name not in ctes:
            out.add(f"{t.db or 'public'}.{t.name}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--db", help="database (default: db_pg_mcp_large, else the largest fixture loaded)"
    )
    ap.add_argument(
        "--questions", type=int, default=0, help="use the first N questions (default: all)"
    )
    ap.add_argument("--budget", type=int, help="context token budget (default: settings)")
    ap.add_argument("--queries", default=str(ROOT / "fixtures" / "TEST_QUERIES.md"))
    args = ap.parse_args()

    from pg_mcp.ask import context, prompts
    from pg_mcp.core.settings import load_settings
    from pg_mcp.db.cache import SchemaCache
    from pg_mcp.db.discovery import list_databases
    from pg_mcp_dev.testqueries import load_test_queries

    settings = load_settings()
    if args.budget:
        settings = settings.with_(context_token_budget=args.budget)
    reachable = {d.name for d in list_databases(settings)}
    db = args.db or next((n for n in FALLBACK if n in reachable), None)
    if db is None or db not in reachable:
        print(
            f"error: database {db or FALLBACK[0]} is not loaded (run `make fixtures`)",
            file=sys.stderr,
        )
        return 1
    cases: list[tuple[str, str | None]] = [
        (c.question, c.sql) for c in load_test_queries(args.queries) if c.database == db
    ] or [(q, None) for q in DEFAULT_QUESTIONS]
    if args.questions:
        cases = cases[: args.questions]

    schema = SchemaCache(settings).get(db)
    budget = settings.context_token_budget
    whole_text = context.render_schema(schema)
    selected, whole, recall, seconds = [], [], [], []
    for question, sql in cases:
        t0 = time.perf_counter()
        ctx = context.select_context(schema, question, budget)
        seconds.append(time.perf_counter() - t0)
        msgs = prompts.generation_messages(question, ctx.text)
        selected.append(sum(context.estimate_tokens(m["content"]) for m in msgs))
        msgs = prompts.generation_messages(question, whole_text)
        whole.append(sum(context.estimate_tokens(m["content"]) for m in msgs))
        need = expected_tables(sql) if sql else set()
        if need:
            have = {t.lower() for t in ctx.tables}
            recall.append(len({t.lower() for t in need} & have) / len(need))

    x, y = statistics.mean(selected), statistics.mean(whole)
    print(f"database: {db}")
    print(f"tables: {len(context.candidate_tables(schema))}")
    print(f"questions: {len(cases)}")
    print(f"context_token_budget: {budget}")
    print(f"ask_prompt_tokens: {x:.0f}")
    print(f"whole_schema_tokens: {y:.0f}")
    print(f"ratio: {x / y:.3f}")
    if recall:
        print(f"context_table_recall: {statistics.mean(recall):.3f}")
    print(f"select_context_ms: {statistics.median(seconds) * 1000:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
