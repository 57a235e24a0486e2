"""What one server instance holds (``ServerState``): settings, redactor, metrics and, created
on first use in worker threads, the connection pools, the schema cache, the database discovery
and the asker; the background warm-up; the references rendered from the cached schemas.
Nothing lives in module globals.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.logs import log_event
from pg_mcp.core.secrets import Redactor
from pg_mcp.core.settings import Settings
from pg_mcp.server.metrics import Metrics

if TYPE_CHECKING:
    from pg_mcp.core.model import DatabaseSchema
    from pg_mcp.db.discovery import DatabaseInfo

log = logging.getLogger("pg_mcp.server.app")  # the server's logger: its name is in the log lines

REFRESH_ON_UNKNOWN = 30.0  # seconds between forced schema refreshes of one database


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
        files = await anyio.to_thread.run_sync(render_files, schema)
        self._rendered[database] = (schema, files)
        return files

    async def resolve(self, name: str | None) -> str:
        """The database to use: ``name`` if reachable, the only one when omitted."""
        return await anyio.to_thread.run_sync(
            partial(self.discovery().resolve, name, how="name one with the database argument")
        )


def render_files(schema: DatabaseSchema) -> dict[str, str]:
    """A database's reference rendered from its schema: ``{relative path: Markdown}``."""
    from pg_mcp.refs.render import render_database

    return render_database(schema)
