"""Validation against a live database's schema: the caller's side of the pure validator.

``pg_mcp.core.validator.validate_sql`` decides on the SQL and a schema it is handed. This module
supplies that schema from a :class:`~pg_mcp.db.cache.SchemaCache` (loaded only when a query got far
enough to need names checked), re-reads it once when a name is unknown and the cached copy is
older than ``STALE_SCHEMA_SECONDS`` (a table created since), and keeps the last verdicts so that
validating the SQL about to run costs nothing the second time. A :class:`Checker` is an explicit
object: the MCP server's lifespan owns one; a CLI call makes its own.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pg_mcp.core.settings import Settings
from pg_mcp.core.validator import Verdict
from pg_mcp.core.validator import validate_sql as decide

if TYPE_CHECKING:
    from pg_mcp.core.model import DatabaseSchema
    from pg_mcp.db.cache import SchemaCache

STALE_SCHEMA_SECONDS = 5.0  # an UNKNOWN_OBJECT against an older cached schema re-reads it
VERDICT_CACHE_SIZE = 256
VERDICT_CACHE_MAX_SQL = 10_000  # longer SQL is validated every time (bounds the cache's memory)
_UNCACHED = ("UNKNOWN_OBJECT", "TOO_COMPLEX")  # may go stale / depend on the clock


def _copy(verdict: Verdict) -> Verdict:
    new = Verdict(**verdict.__dict__)
    new.tables = list(verdict.tables)
    new.functions = list(verdict.functions)
    new.suggestions = list(verdict.suggestions)
    return new


class Checker:
    """Validates SQL for one Settings, with the schemas of its SchemaCache.

    The verdict cache is keyed by (SQL, database). An entry made with a database's schema holds
    while the SchemaCache still serves that very model object: a refresh replaces the object,
    so the entry lapses by itself. Verdicts for a caller's own ``schema`` are not cached (the
    caller may change it in place).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        cache: SchemaCache | None = None,
        size: int = VERDICT_CACHE_SIZE,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self._cache = cache
        self._size = size
        self._clock = clock
        self._lock = threading.Lock()
        self._verdicts: OrderedDict[tuple[str, str | None], tuple[Verdict, Any]] = OrderedDict()

    @property
    def cache(self) -> SchemaCache:
        if self._cache is None:
            from pg_mcp.db.cache import SchemaCache

            self._cache = SchemaCache(self.settings)
        return self._cache

    def validate(
        self, sql: Any, database: str | None = None, *, schema: DatabaseSchema | None = None
    ) -> Verdict:
        """The verdict on ``sql`` (names checked against ``database``'s schema, or ``schema``)."""
        key = None
        if schema is None and type(sql) is str and len(sql) <= VERDICT_CACHE_MAX_SQL:
            key = (sql, database)
            hit = self._cached(key)
            if hit is not None:
                return hit
        used: list[DatabaseSchema] = []
        verdict = self._decide(sql, database, schema, used)
        if verdict.code == "UNKNOWN_OBJECT" and schema is None and self._stale(database):
            # A table created (or a database reloaded) since the cached schema was read:
            # re-read it once and judge again, so a retry loop is not stuck on an old schema.
            used.clear()
            verdict = self._decide(sql, database, schema, used)
        if key is not None and verdict.code not in _UNCACHED:
            self._remember(key, verdict, used[0] if used else None, database)
        return verdict

    def cached(self, sql: str, database: str | None = None) -> bool:
        """Whether a verdict on (sql, database) is remembered (for tests and benchmarks)."""
        with self._lock:
            return (sql, database) in self._verdicts

    def forget(self) -> None:
        with self._lock:
            self._verdicts.clear()

    # -- internals ------------------------------------------------------------------------
    def _decide(
        self,
        sql: Any,
        database: str | None,
        schema: DatabaseSchema | None,
        used: list[DatabaseSchema],
    ) -> Verdict:
        loader = None
        if schema is None and database is not None:

            def loader() -> DatabaseSchema:
                model = self.cache.get(database)
                used.append(model)
                return model

        return decide(
            sql,
            database,
            schema=schema,
            settings=self.settings,
            clock=self._clock,
            load_schema=loader,
        )

    def _stale(self, database: str | None) -> bool:
        if database is None:
            return False
        cache = self.cache
        age = cache.age(database)
        if age is None or age < STALE_SCHEMA_SECONDS:
            return False
        try:
            cache.refresh(database)
        except Exception:
            return False
        return True

    def _cached(self, key: tuple[str, str | None]) -> Verdict | None:
        with self._lock:
            entry = self._verdicts.get(key)
            if entry is None:
                return None
            self._verdicts.move_to_end(key)
        verdict, schema_ref = entry
        database = key[1]
        if database is not None and schema_ref is not None:
            try:
                current = self.cache.get(database)  # in memory: this cache served it before
            except Exception:
                return None
            if current is not schema_ref():
                return None
        elif database is not None:
            return None
        return _copy(verdict)

    def _remember(
        self,
        key: tuple[str, str | None],
        verdict: Verdict,
        schema: DatabaseSchema | None,
        database: str | None,
    ) -> None:
        schema_ref: Any = None
        if database is not None:
            if schema is None:
                return  # the schema was not loaded (refused early, or the load failed)
            try:
                schema_ref = weakref.ref(schema)
            except TypeError:
                return
        with self._lock:
            self._verdicts[key] = (_copy(verdict), schema_ref)
            self._verdicts.move_to_end(key)
            while len(self._verdicts) > self._size:
                self._verdicts.popitem(last=False)


def validate_sql(
    sql: Any,
    database: str | None = None,
    *,
    schema: DatabaseSchema | None = None,
    settings: Settings | None = None,
    checker: Checker | None = None,
    clock: Callable[[], float] | None = None,
) -> Verdict:
    """One verdict: with ``database`` (and no ``schema``) names are checked against its schema,
    loaded through ``checker`` (or a Checker made for this call, on ``settings`` and ``clock``)."""
    if checker is None:
        checker = Checker(settings if settings is not None else Settings(), clock=clock)
    return checker.validate(sql, database, schema=schema)
