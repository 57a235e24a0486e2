"""pg-mcp eval: execution accuracy of candidate SQL (or of ask) against fixtures/TEST_QUERIES.md.

Two modes:

- ``--candidates FILE``: JSON lines ``{"id": 12, "sql": "SELECT ..."}`` (optionally ``attempts``,
  ``tokens``, ``latency_ms``, ``score``, or ``error`` when no SQL was produced), e.g. written by an
  agent following the Claude Code skill;
- without it: each case's question goes to ``pg_mcp.ask.loop.Asker`` (an OpenAI-compatible endpoint
  from OPENAI_BASE_URL / OPENAI_API_KEY) with ``return_type="sql"``.

Candidate and expected SQL both run through ``run_readonly`` and their results are compared by
``pg_mcp_dev.evaluate``. The exit code is 0 whatever the accuracy (this is a measurement); usage and
configuration errors exit non-zero.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings

COMPARE_MAX_ROWS = 10_000
COMPARE_MAX_BYTES = 64_000_000


def load_candidates(path: str | Path) -> dict[int, dict[str, Any]]:
    """Read a JSONL candidates file: id -> the line's object. Strict, with line numbers."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PgMcpError(
            "CONFIG_ERROR", f"cannot read candidates file {p}: {exc.strerror or exc}"
        ) from None
    out: dict[int, dict[str, Any]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{p}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PgMcpError("CONFIG_ERROR", f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise PgMcpError("CONFIG_ERROR", f"{where}: each line must be a JSON object")
        raw_id = obj.get("id")
        try:
            if isinstance(raw_id, bool) or raw_id is None:
                raise ValueError
            cid = int(str(raw_id).strip().lstrip("#"))
        except ValueError:
            raise PgMcpError(
                "CONFIG_ERROR", f"{where}: 'id' must be a case number, got {raw_id!r}"
            ) from None
        sql = obj.get("sql")
        if sql is not None and not isinstance(sql, str):
            raise PgMcpError("CONFIG_ERROR", f"{where}: 'sql' must be a string")
        if sql is None and not obj.get("error"):
            raise PgMcpError(
                "CONFIG_ERROR", f"{where}: needs 'sql' (or 'error' when none was produced)"
            )
        if cid in out:
            raise PgMcpError("CONFIG_ERROR", f"{where}: duplicate candidate for case {cid}")
        out[cid] = obj
    return out


def _tokens(value: Any) -> int | None:
    """Token usage as one number: an int, or a usage dict's total (or its parts summed)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, Mapping):
        if "total_tokens" in value or "total" in value:
            return _tokens(value.get("total_tokens", value.get("total")))
        parts = [_tokens(v) for v in value.values()]
        nums = [p for p in parts if p is not None]
        return sum(nums) if nums else None
    return None


def _field(obj: Any, *names: str) -> Any:
    for n in names:
        v = obj.get(n) if isinstance(obj, Mapping) else getattr(obj, n, None)
        if v is not None:
            return v
    return None


def make_asker(settings: Settings, pools: Any) -> Any:
    """Build pg_mcp.ask.loop.Asker for mode (a); clear errors when ask is unavailable or unconfigured."""
    if not (settings.openai_api_key or settings.openai_base_url):
        raise PgMcpError(
            "LLM_NOT_CONFIGURED",
            "eval without --candidates scores ask, which needs a model endpoint",
            hint="set OPENAI_BASE_URL (and OPENAI_API_KEY), or pass --candidates FILE",
        )
    try:
        from pg_mcp.ask.loop import Asker
    except ImportError as exc:
        raise PgMcpError(
            "CONFIG_ERROR", f"ask is not available in this installation: {exc}"
        ) from None
    return Asker(settings, pools=pools)


def _ask_once(asker: Any, question: str, database: str) -> Any:
    sync = getattr(asker, "ask_sync", None)
    if callable(sync):
        return sync(question, database=database, return_type="sql")
    answer = asker.ask(question, database=database, return_type="sql")
    if inspect.isawaitable(answer):
        import asyncio

        return asyncio.run(answer)  # type: ignore[arg-type]
    return answer


def ask_candidate(asker: Any, case: Any, *, rate_retries: int = 30) -> dict[str, Any]:
    """One ask call -> candidate metadata (sql, attempts, tokens, latency_ms, score or error).

    RATE_LIMITED is waited out (the configured rate is respected); other ask failures
    (NO_ANSWER, LLM_ERROR, ...) become the case's error; configuration errors are raised.
    """
    t0 = time.perf_counter()
    for _ in range(rate_retries + 1):
        try:
            answer = _ask_once(asker, case.question, case.database)
            break
        except PgMcpError as exc:
            if exc.code == "RATE_LIMITED":
                time.sleep(min(5.0, float((exc.details or {}).get("retry_after") or 1.0)))
                continue
            if exc.code in ("LLM_NOT_CONFIGURED", "CONFIG_ERROR"):
                raise
            details = exc.details or {}
            return {
                "error": f"{exc.code} {exc.message}",
                "sql": details.get("sql"),
                "attempts": details.get("attempts"),
                "tokens": _tokens(details.get("tokens")),
                "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
            }
    else:
        return {
            "error": "RATE_LIMITED ask stayed rate limited",
            "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
        }
    latency = round((time.perf_counter() - t0) * 1000, 1)
    if hasattr(answer, "to_dict") and not isinstance(answer, Mapping):
        answer = answer.to_dict()
    sql = _field(answer, "sql")
    meta: dict[str, Any] = {
        "sql": sql,
        "attempts": _field(answer, "attempts"),
        "tokens": _tokens(_field(answer, "tokens", "usage")),
        "latency_ms": latency,
        "score": _field(answer, "score"),
        "low_confidence": _field(answer, "low_confidence"),
    }
    if isinstance(meta["attempts"], list):
        meta["attempts"] = len(meta["attempts"])
    if not sql:
        meta["error"] = "ask returned no SQL"
    return meta


def refresh_schemas(settings: Settings, databases: list[str]) -> None:
    """Introspect each database now: a measurement must not be skewed by a stale schema cache
    (validation checks names against it). An unreachable database is a configuration error."""
    from pg_mcp.db.cache import SchemaCache

    cache = SchemaCache(settings)
    for name in databases:
        cache.refresh(name)


def evaluate_cases(
    cases: list[Any],
    settings: Settings,
    candidate_for: Callable[[Any], dict[str, Any] | None],
    pools: Any,
    progress: Callable[[str], None] | None = None,
) -> list[Any]:
    """Run expected and candidate SQL for every case and score them."""
    from pg_mcp.db.executor import run_readonly
    from pg_mcp_dev.evaluate import score_case

    def run(sql: str, database: str) -> Any:
        return run_readonly(
            sql, database, settings=settings, pools=pools, max_rows=COMPARE_MAX_ROWS
        )

    verdicts = []
    for case in cases:
        expected = run(case.sql, case.database)
        meta = candidate_for(case)
        candidate = None
        if meta is not None and meta.get("sql") and not meta.get("error"):
            candidate = run(meta["sql"], case.database)
        v = score_case(case, expected, candidate, meta)
        verdicts.append(v)
        if progress:
            progress(f"#{v.id:<4} {v.database} {v.level:<8} {v.status:<9} {v.reason}")
    return verdicts


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.db.executor import Pools
    from pg_mcp_dev.evaluate import format_summary, summarise
    from pg_mcp_dev.testqueries import QueryFileError, load_test_queries, select_cases

    try:
        cases = select_cases(load_test_queries(args.queries), args.db, args.level)
    except QueryFileError as exc:
        raise PgMcpError("CONFIG_ERROR", str(exc)) from None
    if not cases:
        raise PgMcpError("CONFIG_ERROR", "no test cases match the --db / --level filters")

    settings = settings.with_(max_bytes=max(settings.max_bytes, COMPARE_MAX_BYTES))
    candidates: dict[int, dict[str, Any]] | None = None
    unknown: list[int] = []
    if args.candidates:
        candidates = load_candidates(args.candidates)
        all_ids = {c.id for c in load_test_queries(args.queries)}
        unknown = sorted(set(candidates) - all_ids)

    progress = None if args.json else (lambda line: print(line, flush=True))
    refresh_schemas(settings, sorted({c.database for c in cases}))
    with Pools(settings) as pools:
        if candidates is not None:

            def candidate_for(case: Any) -> dict[str, Any] | None:
                c = candidates.get(case.id)
                if c is None:
                    return None
                return {**c, "tokens": _tokens(c.get("tokens"))}
        else:
            asker = make_asker(settings, pools)

            def candidate_for(case: Any) -> dict[str, Any] | None:
                return ask_candidate(asker, case)

        verdicts = evaluate_cases(cases, settings, candidate_for, pools, progress)
        close = getattr(locals().get("asker"), "close", None)
        if callable(close):
            close()

    summary = summarise(verdicts)
    report = {
        "mode": "candidates" if candidates is not None else "ask",
        "queries": str(args.queries),
        "candidates": str(args.candidates) if args.candidates else None,
        "model": None if candidates is not None else settings.model,
        "filters": {"db": args.db or [], "level": args.level or []},
        "summary": summary.to_dict(),
        "unknown_candidate_ids": unknown,
        "cases": [v.to_dict() for v in verdicts],
    }
    report_path = Path(args.report)
    try:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(
            json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
        )
    except OSError as exc:
        raise PgMcpError(
            "CONFIG_ERROR", f"cannot write the report {report_path}: {exc.strerror or exc}"
        ) from None

    if args.json:
        print(
            json.dumps(
                {"ok": True, "report": str(report_path), **summary.to_dict()}, ensure_ascii=False
            )
        )
    else:
        print()
        print(format_summary(summary))
        if unknown:
            print(f"candidates for unknown case ids ignored: {', '.join(map(str, unknown))}")
        print(f"report: {report_path}")
    return 0
