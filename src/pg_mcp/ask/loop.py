"""``ask``: a question in, safe SQL (and its result) out.

The loop, per attempt (at most ``settings.max_attempts``):

1. generate SQL with the model (structured output: tables, sql, explanation; plus the
   database when ask is choosing one);
2. validate it (``pg_mcp.core.validator.validate_sql`` against the cached schema); a rejection
   goes back to the model with its code, message and hint, and the schema of any table
   it referenced that the prompt did not show;
3. run it read-only with a small row cap (``pg_mcp.db.executor.run_readonly`` in a worker
   thread); a database error goes back with its code and SQLSTATE;
4. judge it (question, SQL, a sample of rows) for a 0-10 score; below
   ``settings.min_score`` the judge's reasoning goes back and the model tries again.

An attempt scoring at least ``min_score`` is returned at once. Otherwise the best
attempt that ran is returned with ``low_confidence: true``; if none ever ran, NO_ANSWER.
A model failure (LLM_ERROR / LLM_TIMEOUT) after some attempt already ran also returns
that attempt, low-confidence, with a ``warning``; before that it is raised.

Decisions:

* Deadline: ``settings.llm_deadline`` covers the whole ask call (every model call and
  retry in it); each HTTP request is capped at ``min(llm_timeout, time left)``.
* ``return_type="sql"`` still validates, runs (cap: ``judge_rows`` rows) and judges, so
  the score means the same thing in every mode; only the rows are left out of the answer.
  ``"result"`` and ``"both"`` both return the SQL and the result (capped at ``max_rows``).
* Database choice (``database=None``): with one reachable database, that one. Otherwise
  every reachable database's cached schema is scored against the question
  (``context.rank_databases``); a clear winner (score at least twice the runner-up) is
  used directly. When it is close, or nothing matches (e.g. a Chinese question on an
  English schema), the top candidates (3, or 6 when nothing matched) go to the model
  together, each with its own share of the context budget, and the generation schema
  gains an enum property ``database``: the model picks, at no extra call. The answer
  says ``database_chosen: true`` (and lists ``database_candidates`` when the model chose).
* What goes to the model provider: the question, the schema context (names, types,
  comments, and sample values and enum labels unless ``[ask] send_samples = false``), the
  generated SQL with the validator's and PostgreSQL's feedback, and for the judge up to
  ``judge_rows`` result rows, cells cut at ``datatext.CELL_CAP`` characters (only the columns
  and the row count with ``[ask] send_rows = false``). Database text in the prompts is quoted
  (``pg_mcp.core.datatext``) and the system prompts say it is data, never instructions.
* The rate limit (token bucket: ``ask_rate``/s, burst ``ask_burst``) is checked first and
  costs nothing when refused: RATE_LIMITED with ``retry_after`` seconds. There is one bucket
  per ``client`` (the authenticated HTTP client: a static token's hash or a JWT's subject;
  at most 1,024 kept, least recently used dropped); calls without one share a bucket.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pg_mcp.ask import context as ctxmod
from pg_mcp.ask import prompts
from pg_mcp.ask.llm import LLM, Completion, Usage
from pg_mcp.ask.ratelimit import KeyedBuckets
from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.logs import log_event
from pg_mcp.core.model import DatabaseSchema
from pg_mcp.core.policy import is_function_allowed
from pg_mcp.core.secrets import Redactor
from pg_mcp.core.settings import Settings

log = logging.getLogger("pg_mcp.ask.loop")

RETURN_TYPES = ("sql", "result", "both")
MODEL_FAILURES = ("LLM_ERROR", "LLM_TIMEOUT")


@dataclass
class Attempt:
    n: int
    database: str
    sql: str = ""
    explanation: str = ""
    tables: list[str] = field(default_factory=list)
    outcome: str = "reply"  # reply | validate | run | judge | ok | low_score
    code: str | None = None
    message: str | None = None
    result: dict[str, Any] | None = None
    score: int | None = None
    reasoning: str | None = None

    @property
    def ran(self) -> bool:
        return self.result is not None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attempt": self.n,
            "database": self.database,
            "sql": self.sql,
            "outcome": self.outcome,
        }
        if self.code:
            out["code"] = self.code
        if self.message:
            out["message"] = self.message
        if self.score is not None:
            out["score"] = self.score
        if self.ran and self.result is not None:
            out["row_count"] = self.result.get("row_count")
        return out


@dataclass
class _Db:
    name: str
    schema: DatabaseSchema
    ctx: ctxmod.Context
    shown: set[str] = field(default_factory=set)  # tables rendered to the model so far


class Asker:
    """The ask loop. One instance is meant to be shared (rate limit and breaker live here)."""

    def __init__(
        self,
        settings: Settings,
        pools: Any = None,
        cache: Any = None,
        metrics: Any = None,
        client: LLM | None = None,
        *,
        discovery: Any = None,
        max_rows: int = 50,
        judge_rows: int = 20,
    ) -> None:
        self.settings = settings
        self.pools = pools
        self._cache = cache
        self.metrics = metrics
        self.llm = client if client is not None else LLM(settings)
        if discovery is None:  # standalone (CLI, scripts): its own, kept across this Asker's asks
            from pg_mcp.db.discovery import Discovery

            discovery = Discovery(settings)
        self.discovery = discovery  # the server passes its own: one resolution, one discovery
        self.buckets = KeyedBuckets(settings.ask_rate, settings.ask_burst, max_keys=1024)
        self.max_rows = max(1, min(max_rows, settings.max_rows))
        self.judge_rows = max(1, judge_rows)
        self.redact = Redactor(settings.secrets())

    # ---- collaborators --------------------------------------------------------
    @property
    def cache(self) -> Any:
        if self._cache is None:
            from pg_mcp.db.cache import SchemaCache

            self._cache = SchemaCache(self.settings)
        return self._cache

    def _reachable(self) -> list[str]:
        return list(self.discovery.names())

    def _resolve(self, name: str) -> str:
        return str(self.discovery.resolve(name))

    def _validate(self, sql: str, database: str, schema: DatabaseSchema) -> Any:
        from pg_mcp.core.validator import validate_sql

        return validate_sql(sql, database, settings=self.settings, schema=schema)

    def _run(self, sql: str, database: str, cap: int) -> Any:
        """Run SQL that ``_validate`` has just accepted against the same schema: not validated
        a second time (the executor's read-only envelope still holds), as the server does."""
        from pg_mcp.db.executor import run_readonly

        return run_readonly(
            sql, database, settings=self.settings, pools=self.pools, max_rows=cap, validate=False
        )

    def _count_tokens(self, total: Usage, used: Usage) -> None:
        total.add(used)
        if self.metrics is not None:
            try:
                self.metrics.add_tokens("prompt", used.prompt)
                self.metrics.add_tokens("completion", used.completion)
            except Exception:  # metrics must never break ask
                log.debug("metrics.add_tokens failed", exc_info=True)

    # ---- public ---------------------------------------------------------------
    async def ask(
        self,
        question: str,
        database: str | None = None,
        return_type: str = "result",
        *,
        client: str | None = None,
    ) -> dict[str, Any]:
        """Answer ``question``; see the module docstring. Raises PgMcpError on failure.

        ``client`` picks the rate-limit bucket (None: the shared one)."""
        started = time.monotonic()
        question = (question or "").strip()
        if not question:
            raise PgMcpError("EMPTY", "the question is empty", hint="ask a question about the data")
        if return_type not in RETURN_TYPES:
            raise PgMcpError(
                "CONFIG_ERROR",
                f"return_type must be one of {', '.join(RETURN_TYPES)}, not {return_type!r}",
            )
        self.llm.ensure_configured()  # LLM_NOT_CONFIGURED before the bucket or any database work
        ok, wait = self.buckets.try_acquire(client)
        if not ok:
            raise PgMcpError(
                "RATE_LIMITED",
                f"too many ask calls (limit {self.settings.ask_rate:g}/s, burst {self.settings.ask_burst})",
                hint=f"retry in {wait:.1f} s",
                details={"retry_after": round(wait, 3)},
            )
        deadline = started + self.settings.llm_deadline

        dbs, chosen = await self._databases(question, database)
        usage = Usage()
        try:
            answer = await self._loop(question, dbs, return_type, deadline, usage)
        except PgMcpError as exc:
            exc.details.setdefault("tokens", usage.to_dict())
            exc.message = self.redact(exc.message)
            raise
        if chosen:
            answer["database_chosen"] = True
            if len(dbs) > 1:
                answer["database_candidates"] = [d.name for d in dbs]
        answer["tokens"] = usage.to_dict()
        answer["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
        log_event(
            log,
            "ask.done",
            database=answer["database"],
            attempts=answer["attempts"],
            score=answer["score"],
            low_confidence=answer["low_confidence"],
            tokens=usage.total,
            elapsed_ms=answer["elapsed_ms"],
        )
        return answer

    def ask_sync(
        self, question: str, database: str | None = None, return_type: str = "result"
    ) -> dict[str, Any]:
        """Blocking ``ask`` (CLI, scripts). Safe to call from inside a running event loop too."""

        async def once() -> dict[str, Any]:
            try:
                return await self.ask(question, database, return_type)
            finally:
                await self.llm.aclose()  # the HTTP client belongs to this event loop

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(once())
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, once()).result()

    async def aclose(self) -> None:
        await self.llm.aclose()

    def close(self) -> None:
        """Drop the model client (sync callers). Pools and cache belong to whoever passed them."""
        self.llm.forget_clients()

    # ---- database choice and context -------------------------------------------
    async def _databases(self, question: str, database: str | None) -> tuple[list[_Db], bool]:
        budget = self.settings.context_token_budget
        if database:
            name = await asyncio.to_thread(self._resolve, database)
            schema = await asyncio.to_thread(self._schema, name)
            return [await asyncio.to_thread(self._db, name, schema, question, budget)], False
        names = await asyncio.to_thread(self._reachable)
        if not names:
            raise PgMcpError(
                "UNKNOWN_DATABASE",
                "no database is reachable",
                hint="check PG_MCP_DSN and the include/exclude settings",
            )
        if len(names) == 1:
            schema = await asyncio.to_thread(self._schema, names[0])
            return [await asyncio.to_thread(self._db, names[0], schema, question, budget)], True
        loaded = await asyncio.gather(
            *(asyncio.to_thread(self._schema, n) for n in names), return_exceptions=True
        )
        schemas: dict[str, DatabaseSchema] = {}
        for n, s in zip(names, loaded, strict=True):
            if isinstance(s, BaseException):
                if not isinstance(s, PgMcpError):
                    raise s
                log_event(log, "ask.skip_database", level=logging.WARNING, database=n, code=s.code)
            elif ctxmod.candidate_tables(s):
                schemas[n] = s
        if not schemas:
            raise PgMcpError(
                "DATABASE_REQUIRED",
                "no reachable database has any table",
                hint="reachable: " + ", ".join(names[:20]),
            )
        ranked = ctxmod.rank_databases(schemas, question)
        best = ranked[0][1]
        if len(ranked) == 1 or (best > 0 and ranked[1][1] * 2 <= best):
            pick = [ranked[0][0]]
        elif best > 0:
            pick = [n for n, s in ranked if s * 2 > best][:3]
        else:
            pick = [n for n, _ in ranked[:6]]
        share = max(300, budget // len(pick))
        log_event(
            log,
            "ask.choose_database",
            candidates=pick,
            scores={n: round(s, 2) for n, s in ranked[:6]},
        )
        return [
            await asyncio.to_thread(self._db, n, schemas[n], question, share) for n in pick
        ], True

    def _schema(self, name: str) -> DatabaseSchema:
        """The cached schema with the notes people keep applied (descriptions, units, the
        glossary, verified examples: ``pg_mcp.refs.notes``; applying them again is harmless)."""
        from pg_mcp.refs import notes

        schema = self.cache.get(name)
        return notes.apply_from(self.settings.references_dir, schema)

    def _db(self, name: str, schema: DatabaseSchema, question: str, budget: int) -> _Db:
        policy = self.settings.policy
        ctx = ctxmod.select_context(
            schema,
            question,
            budget,
            samples=self.settings.ask_send_samples,
            # only the user functions validate_sql would accept (policy.allow_functions)
            allowed=lambda f: is_function_allowed(policy, f.schema, f.name),
        )
        return _Db(name, schema, ctx, set(ctx.tables) - set(ctx.brief))

    # ---- the loop ---------------------------------------------------------------
    async def _loop(
        self, question: str, dbs: list[_Db], return_type: str, deadline: float, usage: Usage
    ) -> dict[str, Any]:
        choosing = len(dbs) > 1
        by_name = {d.name: d for d in dbs}
        context_text = "\n\n".join(d.ctx.text for d in dbs)
        from pg_mcp.ask.examples import nearest

        examples = []  # the notes' verified examples (their SQL quotes values: send_samples)
        if self.settings.ask_send_samples:
            examples = [(d.name, nearest(d.schema.examples, question)) for d in dbs]
        messages = prompts.generation_messages(
            question, context_text, choosing=choosing, examples=[e for e in examples if e[1]]
        )
        prompt_tokens = sum(ctxmod.estimate_tokens(m["content"]) for m in messages)
        gen_schema = prompts.generation_schema([d.name for d in dbs] if choosing else None)
        cap = self.judge_rows if return_type == "sql" else self.max_rows
        attempts: list[Attempt] = []
        warning: str | None = None
        final: Attempt | None = None

        for n in range(1, self.settings.max_attempts + 1):
            try:
                comp = await self.llm.complete_json(
                    messages,
                    name="sql_query",
                    schema=gen_schema,
                    reply=prompts.ChoosingReply if choosing else prompts.GenerationReply,
                    deadline=deadline,
                )
            except PgMcpError as exc:
                if exc.code in MODEL_FAILURES and any(a.ran for a in attempts):
                    warning = f"{exc.code}: {exc.message}"
                    break
                raise
            self._count_tokens(usage, comp.usage)
            att = Attempt(n, dbs[0].name)
            attempts.append(att)
            messages.append({"role": "assistant", "content": comp.raw[:4000] or "(empty reply)"})
            problem, extra = await self._try(
                att, comp, question, by_name, choosing, cap, deadline, usage
            )
            log_event(
                log,
                "ask.attempt",
                attempt=n,
                database=att.database,
                outcome=att.outcome,
                code=att.code,
                score=att.score,
            )
            if att.outcome == "ok":
                final = att
                break
            if att.outcome == "judge" and att.code in MODEL_FAILURES:
                warning = f"{att.code}: {att.message}"
                break
            messages.append(prompts.feedback_message(n, self.redact(problem), extra))

        ran = [a for a in attempts if a.ran]
        if final is None:
            if not ran:
                last = attempts[-1] if attempts else None
                raise PgMcpError(
                    "NO_ANSWER",
                    f"no acceptable query after {len(attempts)} attempt(s)"
                    + (
                        f"; last problem: {last.code}: {last.message}" if last and last.code else ""
                    ),
                    hint="rephrase the question, name the tables or columns, or pass the database",
                    details={
                        "sql": last.sql if last else None,
                        "attempts": len(attempts),
                        "history": [a.summary() for a in attempts],
                    },
                )
            final = max(ran, key=lambda a: (a.score if a.score is not None else -1, a.n))
        low = final.outcome != "ok"
        d = by_name[final.database]
        out: dict[str, Any] = {
            "question": question,
            "database": final.database,
            "sql": final.sql,
            "explanation": final.explanation,
            "tables": final.tables,
            "score": final.score,
            "reasoning": final.reasoning,
            "attempts": len(attempts),
            "low_confidence": low,
            "context": {"prompt_tokens": prompt_tokens, **d.ctx.to_dict()},
            "history": [a.summary() for a in attempts],
        }
        if warning:
            out["warning"] = self.redact(warning)
        if return_type in ("result", "both") and final.result is not None:
            r = final.result
            out["result"] = {
                "columns": r.get("columns", []),
                "rows": r.get("rows", []),
                "row_count": r.get("row_count", 0),
                "truncated": bool(r.get("truncated", False)),
            }
        return out

    async def _try(
        self,
        att: Attempt,
        comp: Completion,
        question: str,
        by_name: dict[str, _Db],
        choosing: bool,
        cap: int,
        deadline: float,
        usage: Usage,
    ) -> tuple[str, str]:
        """Fill in one attempt; return (feedback for the model, extra schema text)."""
        if comp.data is None:
            att.outcome, att.code, att.message = "reply", "LLM_ERROR", comp.error
            return (
                f"Your reply was unusable: {comp.error}. Reply with exactly one JSON object"
                " with the properties the format asks for.",
                "",
            )
        data = comp.data
        att.sql = str(data.get("sql") or "").strip()
        att.explanation = str(data.get("explanation") or "").strip()
        att.tables = [str(t) for t in (data.get("tables") or []) if isinstance(t, str | int)]
        if choosing:
            name = str(data.get("database") or "")
            if name not in by_name:
                att.outcome, att.code = "reply", "UNKNOWN_DATABASE"
                att.message = f"database {name!r} is not one of {', '.join(by_name)}"
                return f"{att.message}. Choose one of: {', '.join(by_name)}.", ""
            att.database = name
        db = by_name[att.database]
        if not att.sql:
            att.outcome, att.code, att.message = "reply", "EMPTY", "the reply had no SQL"
            return 'Your reply had an empty "sql" property. Write the query.', ""

        verdict = await asyncio.to_thread(self._validate, att.sql, db.name, db.schema)
        if not getattr(verdict, "ok", False):
            att.outcome = "validate"
            att.code = getattr(verdict, "code", None) or "PARSE_ERROR"
            att.message = getattr(verdict, "message", "") or "rejected"
            hint = getattr(verdict, "hint", None)
            text = f"The validator rejected it: {att.code}: {att.message}"
            if hint:
                text += f" Hint: {hint}"
            suggestions = [str(x) for x in (getattr(verdict, "suggestions", None) or [])]
            if suggestions and "did you mean" not in (hint or "").lower():
                text += f" Did you mean: {', '.join(suggestions[:5])}?"
            elif att.code == "UNKNOWN_OBJECT":
                text += self._did_you_mean(att, db)
            return text, self._extra_schema(att, verdict, db)

        run = await asyncio.to_thread(self._run, att.sql, db.name, cap)
        result = run.to_dict() if hasattr(run, "to_dict") else dict(run)
        if not result.get("ok", False):
            att.outcome = "run"
            att.code = result.get("code") or "DB_ERROR"
            att.message = result.get("message") or "failed"
            sqlstate = result.get("sqlstate")
            text = (
                f"PostgreSQL reported {att.code}"
                + (f" (SQLSTATE {sqlstate})" if sqlstate else "")
                + f": {att.message}"
            )
            if result.get("hint"):
                text += f" Hint: {result['hint']}"
            return text, self._extra_schema(att, verdict, db)
        att.result = result

        # judge
        used = [t for t in (getattr(verdict, "tables", None) or []) if isinstance(t, str)]
        tables_text = self._tables_text(db, used or att.tables)
        jmsgs = prompts.judge_messages(
            question,
            att.sql,
            att.explanation,
            result,
            tables_text,
            sample_rows=self.judge_rows,
            send_rows=self.settings.ask_send_rows,
        )
        judged: Completion | None = None
        for _ in range(2):  # one more try when the judge's reply is unusable
            try:
                judged = await self.llm.complete_json(
                    jmsgs, name="judgement", schema=prompts.JUDGE_SCHEMA, deadline=deadline
                )
            except PgMcpError as exc:
                if exc.code in MODEL_FAILURES:
                    att.outcome, att.code, att.message = "judge", exc.code, exc.message
                    return "", ""
                raise
            self._count_tokens(usage, judged.usage)
            if judged.data is not None:
                break
        if judged is None or judged.data is None:
            att.outcome, att.code = "judge", "LLM_ERROR"
            att.message = f"the judge's reply was unusable: {judged.error if judged else 'none'}"
            return "", ""
        try:
            score = round(float(judged.data.get("score", 0)))
        except (TypeError, ValueError):
            score = 0
        att.score = max(0, min(10, score))
        att.reasoning = str(judged.data.get("reasoning") or "").strip()
        if att.score >= self.settings.min_score:
            att.outcome = "ok"
            return "", ""
        att.outcome = "low_score"
        rows = result.get("row_count", 0)
        return (
            f"It ran ({rows} row(s)) but a reviewer scored it {att.score}/10"
            f" (needs {self.settings.min_score}): {att.reasoning}",
            self._extra_schema(att, verdict, db),
        )

    # ---- helpers ----------------------------------------------------------------------
    def _extra_schema(self, att: Attempt, verdict: Any, db: _Db) -> str:
        """Full schema of tables the model referenced that it has not been shown yet."""
        names = [t for t in (getattr(verdict, "tables", None) or []) if isinstance(t, str)]
        parts: list[str] = []
        for name in dict.fromkeys(names + att.tables):
            t = _lookup(db.schema, name)
            if t is None or t.partition_of or t.qualified in db.shown:
                continue
            db.shown.add(t.qualified)
            parts.append(ctxmod.render_table(t, samples=self.settings.ask_send_samples))
            if len(parts) >= 4:
                break
        return "\n".join(parts)

    def _did_you_mean(self, att: Attempt, db: _Db) -> str:
        names = [t.qualified for t in ctxmod.candidate_tables(db.schema)]
        bare = {t.name: t.qualified for t in ctxmod.candidate_tables(db.schema)}
        guesses: list[str] = []
        for name in att.tables:
            if _lookup(db.schema, name) is None:
                close = difflib.get_close_matches(name, names, n=2) or [
                    bare[m]
                    for m in difflib.get_close_matches(name.rsplit(".", 1)[-1], list(bare), n=2)
                ]
                guesses.extend(close)
        tables = {t.qualified: t for t in ctxmod.candidate_tables(db.schema)}
        shown = [ctxmod.sql_name(tables[g].schema, tables[g].name) for g in dict.fromkeys(guesses)]
        return f" Existing tables with similar names: {', '.join(shown)}." if shown else ""

    def _tables_text(self, db: _Db, names: list[str], budget: int = 1500) -> str:
        parts: list[str] = []
        used = 0
        for name in names:
            t = _lookup(db.schema, name)
            if t is None:
                continue
            text = ctxmod.render_table(t, samples=self.settings.ask_send_samples)
            cost = ctxmod.estimate_tokens(text)
            if used + cost > budget:
                text = ctxmod.render_table(t, full=False)
                cost = ctxmod.estimate_tokens(text)
                if used + cost > budget:
                    break
            parts.append(text)
            used += cost
        return "\n".join(parts)


def _lookup(schema: DatabaseSchema, name: str) -> Any:
    name = name.strip().strip('"')
    if "." in name:
        s, _, t = name.rpartition(".")
        return schema.table(t.strip('"'), s.strip('"'))
    return schema.table(name)


def ask_sync(
    question: str,
    database: str | None = None,
    return_type: str = "result",
    *,
    settings: Settings | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """One-shot blocking ask with settings from the environment (or the given ones)."""
    if settings is None:
        from pg_mcp.core.settings import load_settings

        settings = load_settings()
    return Asker(settings, **kwargs).ask_sync(question, database, return_type)
