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

This module is the factory: the tools, resources and routes registered on one
``MCPServer``. What they return is in ``pg_mcp.server.models``, the state they share in
``pg_mcp.server.state``, the frame of each tool call (log line, metrics, ToolError) in
``pg_mcp.server.calls``.
"""

from __future__ import annotations

import inspect
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError
from mcp_types import ToolAnnotations
from pydantic import Field

from pg_mcp import __version__
from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.logs import log_event
from pg_mcp.core.secrets import Redactor, redact_dsn
from pg_mcp.core.settings import Settings
from pg_mcp.server.calls import ToolCall, error_text, instrumented
from pg_mcp.server.metrics import CONTENT_TYPE, Metrics
from pg_mcp.server.models import AskAnswer, AskRows, QueryResult, ResultColumn, SqlVerdict
from pg_mcp.server.state import REFRESH_ON_UNKNOWN, ServerState

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

    from pg_mcp.core.model import DatabaseSchema
    from pg_mcp.db.discovery import DatabaseInfo
    from pg_mcp.server.auth import HttpAuth

__all__ = [
    "INSTRUCTIONS",
    "READ_ONLY",
    "REFRESH_ON_UNKNOWN",
    "AskAnswer",
    "AskRows",
    "QueryResult",
    "ResultColumn",
    "ServerState",
    "SqlVerdict",
    "build_server",
    "error_text",
]

log = logging.getLogger("pg_mcp.server.app")

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


READ_ONLY = dict(read_only_hint=True, destructive_hint=False, open_world_hint=False)


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

        async def body(call: ToolCall) -> SqlVerdict:
            if database is not None:
                call.database = await state.resolve(database)
            verdict = await check(sql, call.database)
            data = verdict.to_dict()
            data["database"] = call.database
            out = SqlVerdict.model_validate(data)
            call.outcome = "ok" if out.ok else (out.code or "REJECTED")
            return out

        return await instrumented(state, "validate_sql", body)

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

        async def body(call: ToolCall) -> QueryResult:
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

        return await instrumented(state, "run_readonly", body)

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

        async def body(call: ToolCall) -> AskAnswer:
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

        return await instrumented(state, "ask", body)

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
