"""The MCP server: ``validate_sql``, ``run_readonly`` and ``ask`` on the one safety core.

``build_server(settings)`` returns an :class:`MCPServer` (MCP Python SDK 2.x). Nothing lives
in module globals: the server's state (settings, redactor, metrics, and lazily the
connection pools, the schema cache and the asker) is created per server, and its lifespan
owns the resources: it starts a background warm-up (discover the reachable databases, open
the pools, load or refresh each database's schema cache) and closes the pools on shutdown.
The warm-up never delays ``initialize`` or ``tools/list``: heavy modules (psycopg, sqlglot,
openai, jinja2) are imported in worker threads, only when first needed.

Tools (all annotated read-only, with structured output):

- ``validate_sql(sql, database=None)`` -> the verdict. A refused query is a normal result
  (``ok: false`` with its code): the verdict *is* the answer. Bad arguments (an unknown
  database) are failures.
- ``run_readonly(sql, database=None, max_rows=None)`` -> columns, rows, row_count, truncated,
  elapsed_ms, database.
- ``ask(question, database=None, return_type="result")`` -> SQL, explanation, result,
  the judge's score and reasoning, attempts, tokens, the database chosen.

Every failure raises ``ToolError("CODE: message")`` (then ``hint: ...`` on its own line), so
the client sees ``is_error=True`` with the text ``Error executing tool <name>: CODE: message``
(the prefix is the SDK's); a successful result never carries an error string. ``database`` may be
omitted when exactly one database is reachable (else ``DATABASE_REQUIRED``); ``ask`` then
chooses from the question.

Resources: ``databases://list`` (JSON: every reachable database with a short summary) and
``references://{database}`` (the database's Markdown reference: ``references/<db>.md`` when
present, else rendered from the schema cache). Under the HTTP transport ``/metrics`` serves
the Prometheus metrics and ``/healthz`` a liveness probe.

HTTP auth (``auth``, from :func:`pg_mcp.server.auth.load_http_auth`) is the SDK's own: its
middleware checks the bearer token on ``/mcp`` with our verifier, and the same
``RequireAuthMiddleware`` guards ``/metrics`` (its labels name databases and tools).
``/healthz`` stays open for load balancers and says only ``{"status": "ok"}``. The ``ask``
rate limit is per authenticated client, read from the SDK's auth context.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from pg_mcp import __version__
from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.logs import bind, log_event
from pg_mcp.core.secrets import Redactor, redact_dsn
from pg_mcp.core.settings import Settings
from pg_mcp.server.metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    from pg_mcp.core.model import DatabaseSchema
    from pg_mcp.db.discovery import DatabaseInfo
    from pg_mcp.server.auth import HttpAuth

log = logging.getLogger("pg_mcp.server.app")
T = TypeVar("T")

INSTRUCTIONS = """\
pg-mcp answers questions about PostgreSQL databases safely. Every query is validated \
(exactly one read-only statement, access policy, known tables and columns) and runs in a \
read-only transaction with a timeout and row/byte caps.
- Read databases://list to see the databases, and references://{database} for a database's \
tables, columns, relationships and sample values before writing SQL.
- validate_sql checks SQL without running it; run_readonly runs it; ask turns a question in \
plain language (English or Chinese) into SQL and, when asked, its result.
- Failures are tool errors whose text starts with a stable code (NOT_READ_ONLY, TIMEOUT, \
UNKNOWN_DATABASE, ...) followed by a hint."""


# --- structured output -----------------------------------------------------------------


class SqlVerdict(BaseModel):
    """What validate_sql decided about one piece of SQL."""

    ok: bool = Field(
        description="True when the SQL is exactly one read-only query pg-mcp would run."
    )
    code: str | None = Field(
        None, description="Stable refusal code when ok is false (NOT_READ_ONLY, ...)."
    )
    message: str = Field("", description="One-line explanation.")
    hint: str | None = Field(None, description="How to fix the query, when there is a useful hint.")
    position: int | None = Field(
        None, description="Character offset of the problem in the SQL, if known."
    )
    kind: str | None = Field(
        None, description="Statement kind (select, values, show, explain, ...)."
    )
    tables: list[str] = Field(default_factory=list, description="Relations read, as schema.table.")
    functions: list[str] = Field(default_factory=list, description="Functions called.")
    suggestions: list[str] = Field(
        default_factory=list, description="Close matches for an unknown table or column name."
    )
    database: str | None = Field(
        None,
        description="Database whose schema the names were checked against (None: not checked).",
    )


class ResultColumn(BaseModel):
    name: str
    type: str = Field(description="PostgreSQL type name.")


class QueryResult(BaseModel):
    """Rows of one read-only query."""

    database: str = Field(description="Database the query ran on.")
    columns: list[ResultColumn]
    rows: list[list[Any]] = Field(description="One JSON array per row, values in column order.")
    row_count: int = Field(description="Rows returned (after the cap).")
    truncated: bool = Field(description="True when the row or byte cap cut the result short.")
    truncated_reason: str | None = Field(None, description="max_rows or max_bytes, when truncated.")
    elapsed_ms: float = Field(description="Execution time in milliseconds.")


class AskRows(BaseModel):
    """The rows ask's SQL returned (capped)."""

    columns: list[ResultColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool


class AskAnswer(BaseModel):
    """ask's answer: the SQL it settled on and, when asked for, the result."""

    model_config = ConfigDict(extra="allow")

    database: str = Field(description="Database the question was answered on.")
    database_chosen: bool = Field(
        False, description="True when ask chose the database itself (none was given)."
    )
    sql: str = Field(description="The validated, read-only SQL.")
    explanation: str | None = Field(None, description="A short explanation of the SQL.")
    tables: list[str] = Field(default_factory=list, description="Tables the SQL uses.")
    result: AskRows | None = Field(
        None, description="The rows (return_type result or both; absent for sql)."
    )
    score: int | None = Field(None, description="The judge's score, 0-10.")
    reasoning: str | None = Field(None, description="The judge's reasoning.")
    attempts: int = Field(description="Generation attempts used.")
    low_confidence: bool = Field(
        False, description="True when no attempt reached the minimum score (best attempt returned)."
    )
    warning: str | None = Field(None, description="Why the loop stopped early, if it did.")
    tokens: dict[str, int] = Field(
        default_factory=dict, description="Model tokens used: prompt, completion, total."
    )
    elapsed_ms: float | None = None


REFRESH_ON_UNKNOWN = 30.0  # seconds between forced schema refreshes of one database

READ_ONLY = dict(read_only_hint=True, destructive_hint=False, open_world_hint=False)


# --- state ------------------------------------------------------------------------------


@dataclass
class ServerState:
    """Everything one server instance holds; heavy parts are created on first use.

    Schema freshness is the cache's business (``SchemaCache.get`` serves its copy and
    refreshes it in the background after the TTL); the state only remembers the last copy
    it was handed, for summaries, and when it last forced a refresh of each database.
    """

    settings: Settings
    metrics: Metrics
    redact: Redactor
    warm_up: bool = True
    users: int = 0
    _pools: Any = None
    _cache: Any = None
    _asker: Any = None
    _discovery: Any = None  # discovery.Discovery: the one database resolution, shared with ask
    _schemas: dict[str, DatabaseSchema] = field(default_factory=dict)
    _forced: dict[str, float] = field(default_factory=dict)  # db -> monotonic time of refresh
    _rendered: dict[str, tuple[Any, dict[str, str]]] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _server_lock: threading.Lock = field(default_factory=threading.Lock)
    _server_ready: bool = False

    # --- blocking parts (run in worker threads) ----------------------------------------
    def server_sync(self) -> None:
        """Make sure the server is up, once: without PG_MCP_DSN this starts the embedded
        PostgreSQL, which must not happen from two threads at the same time."""
        if self._server_ready:
            return
        with self._server_lock:
            if not self._server_ready:
                from pg_mcp.db.discovery import server_dsn

                server_dsn(self.settings)
                self._server_ready = True

    def pools_sync(self) -> Any:
        self.server_sync()
        with self._lock:
            if self._pools is None:
                from pg_mcp.db.executor import Pools

                self._pools = Pools(self.settings)
            return self._pools

    def cache_sync(self) -> Any:
        with self._lock:
            if self._cache is None:
                from pg_mcp.db.cache import SchemaCache

                self._cache = SchemaCache(self.settings)
            return self._cache

    def discovery(self) -> Any:
        """The server's database discovery (``discovery.Discovery``), made once; ``ask`` uses it too."""
        with self._lock:
            if self._discovery is None:
                from pg_mcp.db.discovery import Discovery

                self._discovery = Discovery(self.settings, before=self.server_sync)
            return self._discovery

    def databases_sync(self, refresh: bool = False) -> list[DatabaseInfo]:
        return list(self.discovery().databases(refresh))

    def schema_sync(self, database: str, refresh: bool = False) -> DatabaseSchema:
        self.server_sync()
        cache = self.cache_sync()
        if refresh:
            self._forced[database] = time.monotonic()
            schema = cache.refresh(database)
        else:
            schema = cache.get(database)
        self._schemas[database] = schema
        return schema

    def asker_sync(self) -> Any:
        with self._lock:
            if self._asker is None:
                from pg_mcp.ask.loop import Asker

                self._asker = Asker(
                    settings=self.settings,
                    pools=self.pools_sync(),
                    cache=self.cache_sync(),
                    metrics=self.metrics,
                    discovery=self.discovery(),
                )
            return self._asker

    def close_sync(self) -> None:
        self._stop.set()
        with self._lock:
            pools, self._pools = self._pools, None
            asker, self._asker = self._asker, None
        for resource in (asker, pools):
            close = getattr(resource, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.exception("close failed")

    def warm_up_sync(self) -> None:
        """Discover databases, open the pools, load or refresh every schema cache."""
        started = time.perf_counter()
        try:
            databases = self.databases_sync(refresh=True)
            log_event(
                log,
                "databases_discovered",
                count=len(databases),
                databases=[d.name for d in databases],
            )
            if self._stop.is_set():
                return
            self.pools_sync()
            for info in databases:
                if self._stop.is_set():
                    return
                t0 = time.perf_counter()
                try:
                    schema = self.schema_sync(info.name)
                except PgMcpError as exc:
                    log_event(
                        log,
                        "schema_load_failed",
                        level=logging.WARNING,
                        database=info.name,
                        code=exc.code,
                        message=exc.message,
                    )
                    continue
                elapsed_ms = round((time.perf_counter() - t0) * 1000, 1)
                log_event(
                    log,
                    "schema_loaded",
                    database=info.name,
                    relations=len(schema.tables),
                    elapsed_ms=elapsed_ms,
                )
        except PgMcpError as exc:
            log_event(
                log, "warm_up_failed", level=logging.WARNING, code=exc.code, message=exc.message
            )
        except ImportError as exc:  # a part not installed: tools will say so when called
            log_event(log, "warm_up_skipped", level=logging.WARNING, message=str(exc))
        except Exception:
            log.exception("warm_up_crashed")
        else:
            log_event(
                log, "warm_up_done", elapsed_ms=round((time.perf_counter() - started) * 1000, 1)
            )

    # --- async faces -------------------------------------------------------------------
    async def pools(self) -> Any:
        return await anyio.to_thread.run_sync(self.pools_sync)

    async def databases(self, refresh: bool = False) -> list[DatabaseInfo]:
        return await anyio.to_thread.run_sync(self.databases_sync, refresh)

    async def schema(self, database: str, refresh: bool = False) -> DatabaseSchema:
        """The database's schema model from the cache (``refresh``: introspect now)."""
        return await anyio.to_thread.run_sync(self.schema_sync, database, refresh)

    async def schema_if_stale_names(self, database: str) -> DatabaseSchema | None:
        """Re-introspect after an UNKNOWN_OBJECT refusal (a table created since the cache
        was filled?), at most once per ``REFRESH_ON_UNKNOWN`` seconds per database."""
        last = self._forced.get(database)
        if last is not None and time.monotonic() - last < REFRESH_ON_UNKNOWN:
            return None
        return await self.schema(database, refresh=True)

    def loaded_schema(self, database: str) -> DatabaseSchema | None:
        return self._schemas.get(database)

    async def asker(self) -> Any:
        return await anyio.to_thread.run_sync(self.asker_sync)

    async def reference_files(self, database: str) -> dict[str, str]:
        """The database's reference rendered from its (cached) schema, kept per schema load."""
        schema = await self.schema(database)
        hit = self._rendered.get(database)
        if hit is not None and hit[0] is schema:
            return hit[1]
        files = await anyio.to_thread.run_sync(_render_files, schema)
        self._rendered[database] = (schema, files)
        return files

    async def resolve(self, name: str | None) -> str:
        """The database to use: ``name`` if reachable, the only one when omitted."""
        return await anyio.to_thread.run_sync(
            partial(self.discovery().resolve, name, how="name one with the database argument")
        )


# --- helpers ----------------------------------------------------------------------------


def error_text(
    code: str,
    message: str,
    hint: str | None = None,
    position: int | None = None,
    sqlstate: str | None = None,
) -> str:
    """``CODE: message`` (+ SQLSTATE, position), then ``hint: ...`` on its own line."""
    text = f"{code}: {message}"
    if sqlstate and sqlstate not in message:
        text += f" (SQLSTATE {sqlstate})"
    if position is not None and "position" not in message:
        text += f" (at character {position})"
    if hint:
        text += f"\nhint: {hint}"
    return text


_WARN_OUTCOMES = {"INTERNAL", "CONNECTION_ERROR", "LLM_ERROR", "LLM_TIMEOUT"}


@dataclass
class _Call:
    tool: str
    request_id: str
    database: str | None = None
    outcome: str = "ok"
    fields: dict[str, Any] = field(default_factory=dict)


async def _instrumented(state: ServerState, tool: str, body: Callable[[_Call], Awaitable[T]]) -> T:
    """Run one tool call with a request id, a log line, metrics, and errors as ToolError."""
    call = _Call(tool=tool, request_id=uuid.uuid4().hex[:16])
    started = time.perf_counter()
    code: str | None = None
    from pg_mcp.server.auth import current_client

    with bind(request_id=call.request_id, tool=tool, client=current_client()):
        try:
            return await body(call)
        except PgMcpError as exc:
            call.outcome = code = exc.code
            sqlstate = exc.details.get("sqlstate") if isinstance(exc.details, dict) else None
            raise ToolError(
                state.redact(error_text(exc.code, exc.message, exc.hint, exc.position, sqlstate))
            ) from None
        except ToolError:
            call.outcome = code = "INVALID_ARGUMENT"
            raise
        except Exception:
            call.outcome = code = "INTERNAL"
            log.exception("tool_crashed")
            raise
        except BaseException:
            call.outcome = "CANCELLED"
            raise
        finally:
            elapsed = time.perf_counter() - started
            state.metrics.observe(tool, call.outcome, elapsed)
            log_event(
                log,
                "tool_call",
                level=logging.WARNING if call.outcome in _WARN_OUTCOMES else logging.INFO,
                database=call.database,
                outcome=call.outcome,
                code=code,
                elapsed_ms=round(elapsed * 1000, 1),
                **call.fields,
            )


def _summary(info: DatabaseInfo, schema: DatabaseSchema | None) -> dict[str, Any]:
    from pg_mcp.core.datatext import plain

    out: dict[str, Any] = {
        "name": info.name,
        "size_bytes": info.size_bytes,
        "comment": plain(info.comment),  # database text: one line, capped (pg_mcp.core.datatext)
        "reference": f"references://{info.name}",
    }
    if schema is None:
        out["schema_loaded"] = False
        return out
    kinds: dict[str, int] = {}
    for t in schema.tables:
        kinds[t.kind] = kinds.get(t.kind, 0) + 1
    out.update(
        schema_loaded=True,
        schemas=list(schema.schemas),
        relations=kinds,
        tables_preview=[t.qualified for t in schema.tables if not t.is_view][:15],
    )
    return out


def _render_files(schema: DatabaseSchema) -> dict[str, str]:
    """A database's reference rendered from its schema: ``{relative path: Markdown}``."""
    from pg_mcp.refs.render import render_database

    return render_database(schema)


def _main_file(database: str) -> str:
    from pg_mcp.refs.render import safe_filename

    return f"{safe_filename(database)}.md"


# --- the server ---------------------------------------------------------------------------


def build_server(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    warm_up: bool = True,
    auth: HttpAuth | None = None,
) -> MCPServer:
    """Build the pg-mcp MCP server for ``settings`` (no I/O until it runs).

    ``metrics`` lets the caller (tests, an embedding app) hold the registry; ``warm_up=False``
    skips the background discovery and schema loading at startup. ``auth``: bearer auth of
    the HTTP transport (``/mcp`` and ``/metrics``); None serves HTTP without auth (stdio
    never has any).
    """
    state = ServerState(
        settings=settings,
        metrics=metrics or Metrics(),
        redact=Redactor(settings.secrets()),
        warm_up=warm_up,
    )

    @asynccontextmanager
    async def lifespan(_server: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        state.users += 1
        if state.users == 1:
            state._stop.clear()
            log_event(
                log,
                "server_start",
                version=__version__,
                dsn=redact_dsn(settings.dsn) if settings.dsn else "embedded",
                home=str(settings.home),
            )
            if state.warm_up:
                threading.Thread(
                    target=state.warm_up_sync, name="pg-mcp-warm-up", daemon=True
                ).start()
        try:
            yield state
        finally:
            state.users -= 1
            if state.users == 0:
                try:
                    asker = state._asker
                    if asker is not None and hasattr(asker, "aclose"):
                        with anyio.CancelScope(shield=True):
                            await asker.aclose()  # its HTTP client belongs to this event loop
                except Exception:
                    log.debug("asker.aclose failed", exc_info=True)
                finally:
                    # synchronous on purpose: no cancellation (a signal at shutdown) can cut
                    # the closing of the pools short
                    state.close_sync()
                    log_event(log, "server_stop")

    server: MCPServer[ServerState] = MCPServer(
        name="pg-mcp",
        title="pg-mcp: safe, read-only PostgreSQL",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        token_verifier=auth.verifier if auth else None,
        auth=auth.auth_settings if auth else None,
    )

    async def check(sql: str, database: str | None) -> Any:
        """The validator's verdict (names checked against ``database``'s cached schema)."""
        from pg_mcp.core.validator import validate_sql as validate

        schema = await state.schema(database) if database is not None else None
        verdict = await anyio.to_thread.run_sync(
            partial(validate, sql, database, schema=schema, settings=settings)
        )
        if not verdict.ok and verdict.code == "UNKNOWN_OBJECT" and database is not None:
            fresh = await state.schema_if_stale_names(database)  # created since?
            if fresh is not None:
                verdict = await anyio.to_thread.run_sync(
                    partial(validate, sql, database, schema=fresh, settings=settings)
                )
        return verdict

    # --- tools ---------------------------------------------------------------------------
    def tool(title: str, idempotent: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a read-only tool with structured output; its docstring is the description."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            annotations = ToolAnnotations(title=title, idempotent_hint=idempotent, **READ_ONLY)
            server.add_tool(
                fn,
                title=title,
                description=inspect.cleandoc(fn.__doc__ or ""),
                annotations=annotations,
                structured_output=True,
            )
            return fn

        return register

    @tool(title="Validate SQL", idempotent=True)
    async def validate_sql(
        sql: Annotated[str, Field(description="The SQL text to check.")],
        database: Annotated[
            str | None,
            Field(description="Also check table/column names and functions against this database."),
        ] = None,
    ) -> SqlVerdict:
        """Check that SQL is exactly one read-only query pg-mcp would run, without running it.

        A refused query is a normal result with ok=false and a stable code (NOT_READ_ONLY,
        MULTIPLE_STATEMENTS, ACCESS_DENIED, UNKNOWN_OBJECT, ...), a message and a hint: the
        verdict is the answer, so it is not a tool error. Without database only the
        statement itself and the access policy are checked (no database is contacted); with
        it, names and function volatility are checked against that database's schema. An
        unknown database is a tool error (UNKNOWN_DATABASE).
        """

        async def body(call: _Call) -> SqlVerdict:
            if database is not None:
                call.database = await state.resolve(database)
            verdict = await check(sql, call.database)
            data = verdict.to_dict()
            data["database"] = call.database
            out = SqlVerdict.model_validate(data)
            call.outcome = "ok" if out.ok else (out.code or "REJECTED")
            return out

        return await _instrumented(state, "validate_sql", body)

    @tool(title="Run read-only SQL", idempotent=True)
    async def run_readonly(
        sql: Annotated[
            str,
            Field(
                description="Exactly one read-only query (SELECT, WITH ... SELECT, VALUES, ...)."
            ),
        ],
        database: Annotated[
            str | None,
            Field(description="Database to run on; may be omitted when only one is reachable."),
        ] = None,
        max_rows: Annotated[
            int | None,
            Field(
                ge=1,
                description="Row cap; default and upper bound: the configured max_rows (500 unless set).",
            ),
        ] = None,
    ) -> QueryResult:
        """Validate, then run one read-only query with a statement timeout and row/byte caps.

        Returns the columns (name, type), rows as JSON arrays, row_count, truncated (the cap cut
        the result short), elapsed_ms and the database used. Any failure is a tool error
        carrying its stable code, "CODE: message" and a hint: a refusal (NOT_READ_ONLY,
        ACCESS_DENIED, ...), TIMEOUT, COST_LIMIT, DB_ERROR (with SQLSTATE), UNKNOWN_DATABASE,
        DATABASE_REQUIRED, CONNECTION_ERROR.
        """

        async def body(call: _Call) -> QueryResult:
            from pg_mcp.db.executor import run_readonly as execute

            started = time.perf_counter()
            call.database = db = await state.resolve(database)
            verdict = await check(sql, db)
            if not verdict.ok:
                # refused before execution: audited here, as the executor would have
                from pg_mcp.db import audit

                elapsed_ms = (time.perf_counter() - started) * 1000
                record = partial(
                    audit.record, settings, database=db, sql=sql, elapsed_ms=elapsed_ms
                )
                await anyio.to_thread.run_sync(partial(record, outcome=str(verdict.code)))
                raise PgMcpError.of(verdict)
            pools = await state.pools()
            cap = min(max_rows or settings.max_rows, settings.max_rows)
            # validated just above (same validator, the server's cached schema)
            run = partial(
                execute, sql, db, settings=settings, pools=pools, max_rows=cap, validate=False
            )
            result = await anyio.to_thread.run_sync(run)
            if not result.ok:
                raise PgMcpError.of(result)
            data = result.to_dict()
            data["database"] = db
            call.fields.update(row_count=data.get("row_count"), truncated=data.get("truncated"))
            return QueryResult.model_validate(data)

        return await _instrumented(state, "run_readonly", body)

    @tool(title="Ask a question", idempotent=False)
    async def ask(
        question: Annotated[
            str, Field(description="The question, in plain language (English or Chinese).")
        ],
        database: Annotated[
            str | None,
            Field(description="Database to answer on; chosen from the question when omitted."),
        ] = None,
        return_type: Annotated[
            Literal["result", "sql", "both"],
            Field(
                description="result: run the SQL and return rows; sql: only the SQL; both: SQL and rows."
            ),
        ] = "result",
    ) -> AskAnswer:
        """Answer a question with safe SQL generated by an OpenAI-compatible model.

        The model writes SQL from the schema; pg-mcp validates it, runs it read-only with a small
        row cap, has the model judge the result, and regenerates with the feedback until the
        score is good enough or attempts run out. Returns the SQL, a short explanation, the
        result when asked for, the judge's score and reasoning, attempts, tokens used and the
        database chosen. Failures are tool errors with a stable code (LLM_NOT_CONFIGURED,
        LLM_ERROR, LLM_TIMEOUT, RATE_LIMITED, NO_ANSWER, ...).
        """

        async def body(call: _Call) -> AskAnswer:
            from pg_mcp.server.auth import current_client

            chosen = await state.resolve(database) if database is not None else None
            call.database = chosen
            asker = await state.asker()
            client = current_client()  # one rate-limit bucket per authenticated client
            answer = await asker.ask(
                question, database=chosen, return_type=return_type, client=client
            )
            data = dict(answer) if not isinstance(answer, dict) else answer
            call.database = data.get("database") or chosen
            tokens = data.get("tokens") or {}
            call.fields.update(
                attempts=data.get("attempts"), score=data.get("score"), tokens=tokens or None
            )
            return AskAnswer.model_validate(data)

        return await _instrumented(state, "ask", body)

    # --- resources -------------------------------------------------------------------------
    @server.resource(
        "databases://list",
        name="databases",
        title="Reachable databases",
        description="Every database pg-mcp can reach, with size, comment and a short schema summary (JSON).",
        mime_type="application/json",
    )
    async def databases_resource() -> str:
        try:
            infos = await state.databases()
        except PgMcpError as exc:
            raise ResourceError(state.redact(error_text(exc.code, exc.message, exc.hint))) from None
        items = [_summary(i, state.loaded_schema(i.name)) for i in infos]
        return json.dumps({"databases": items}, ensure_ascii=False, indent=2)

    async def reference_page(database: str, page: str | None) -> str:
        try:
            name = await state.resolve(database)
        except PgMcpError as exc:
            text = state.redact(error_text(exc.code, exc.message, exc.hint))
            if exc.code == "UNKNOWN_DATABASE":
                raise ResourceNotFoundError(text) from None
            raise ResourceError(text) from None
        main = _main_file(name)
        rel = main if page is None else f"{main[:-3]}/{page}"
        folder = settings.references_dir.resolve()
        path = (folder / rel).resolve()
        if path.is_relative_to(folder) and path.is_file():  # written by `pg-mcp references`
            return await anyio.to_thread.run_sync(partial(path.read_text, encoding="utf-8"))
        try:
            files = await state.reference_files(name)
        except PgMcpError as exc:
            raise ResourceError(state.redact(error_text(exc.code, exc.message, exc.hint))) from None
        if rel not in files:
            raise ResourceNotFoundError(f"the reference of {name} has no page {page!r}")
        return files[rel]

    @server.resource(
        "references://{database}",
        name="reference",
        title="Database reference",
        description=(
            "A database's Markdown reference: tables, columns, keys, relationships, sample values. "
            "For a large database it is an index whose detail pages are references://{database}/{page}."
        ),
        mime_type="text/markdown",
    )
    async def reference_resource(database: str) -> str:
        return await reference_page(database, None)

    @server.resource(
        "references://{database}/{page}",
        name="reference_page",
        title="Database reference page",
        description="A detail page of a large database's reference (e.g. public.orders.md), as linked from its index.",
        mime_type="text/markdown",
    )
    async def reference_page_resource(database: str, page: str) -> str:
        return await reference_page(database, page)

    # --- HTTP-only routes ----------------------------------------------------------------------
    async def metrics_route(_request: Request) -> Response:
        from starlette.responses import Response

        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    metrics_endpoint: Any = metrics_route
    if auth is not None:
        from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware

        async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
            """/metrics as an ASGI app, behind the same RequireAuthMiddleware as /mcp."""
            from starlette.requests import Request

            response = await metrics_route(Request(scope, receive))
            await response(scope, receive, send)

        metrics_endpoint = RequireAuthMiddleware(
            metrics_app, list(auth.required_scopes), auth.resource_metadata_url
        )
    server.custom_route("/metrics", methods=["GET"], include_in_schema=False)(metrics_endpoint)

    @server.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def health_route(_request: Request) -> Response:
        """Liveness for load balancers, unauthenticated: the status and nothing else."""
        from starlette.responses import JSONResponse

        return JSONResponse({"status": "ok"})

    return server
