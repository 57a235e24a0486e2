"""The JSON schema cache: introspect once, serve the model from memory or disk.

``SchemaCache(settings).get(db)`` answers from memory, else from
``<cache_dir>/<db>.json`` when it is younger than ``settings.cache_ttl`` seconds
(``0`` = always stale), else introspects and saves. A long-running process (the
MCP server) never waits for a refresh once it holds a copy: a stale in-memory copy
is served while ``refresh_in_background`` replaces it. Thread-safe; files are written
atomically (temporary file + rename). A cache file written for another server, policy
or sampling setting is ignored (its fingerprint differs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.model import DatabaseSchema
from pg_mcp.core.settings import Settings

FORMAT = 1


def _log() -> Any:
    import logging  # only for background-refresh warnings: kept off the CLI's start-up

    return logging.getLogger("pg_mcp.db.cache")


def fingerprint(settings: Settings) -> str:
    """What a cached model depends on besides the database: server, policy, sampling."""
    from pg_mcp.core.secrets import redact_dsn

    dsn = settings.introspection_dsn or settings.dsn
    server = redact_dsn(dsn) if dsn else f"embedded:{settings.home.resolve()}"
    parts = [server, repr(settings.policy), str(settings.samples), str(settings.max_samples)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class SchemaCache:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fingerprint = fingerprint(settings)
        self._lock = threading.RLock()
        self._mem: dict[str, tuple[DatabaseSchema, float]] = {}  # db -> (model, introspected at)
        self._db_locks: dict[str, threading.Lock] = {}
        self._threads: dict[str, threading.Thread] = {}
        self.errors: dict[str, str] = {}  # last background-refresh failure per database

    # --- paths -----------------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        return self.settings.cache_dir

    def path(self, database: str) -> Path:
        return self.directory / (quote(database, safe="") + ".json")

    def cached(self) -> list[str]:
        """Databases with a cache file (fresh or not)."""
        if not self.directory.is_dir():
            return []
        return sorted(unquote(p.name[:-5]) for p in self.directory.glob("*.json"))

    def databases(self) -> list[str]:
        """Databases the configured role can reach (include/exclude applied)."""
        from pg_mcp.db.discovery import list_databases

        return [d.name for d in list_databases(self.settings)]

    # --- reading ---------------------------------------------------------------------------
    def _fresh(self, introspected_at: float) -> bool:
        return (time.time() - introspected_at) < self.settings.cache_ttl

    def get(self, database: str) -> DatabaseSchema:
        """The model of ``database``; introspects only when no usable copy exists."""
        with self._lock:
            held = self._mem.get(database)
        if held is not None:
            schema, at = held
            if not self._fresh(at):
                self.refresh_in_background(database)  # serve the old copy meanwhile
            return schema
        loaded = self.load(database)
        if loaded is not None and self._fresh(loaded[1]):
            with self._lock:
                self._mem.setdefault(database, loaded)
                return self._mem[database][0]
        return self.refresh(database)

    def age(self, database: str) -> float | None:
        """Seconds since the in-memory model of ``database`` was introspected (None: none held)."""
        with self._lock:
            held = self._mem.get(database)
        return None if held is None else max(0.0, time.time() - held[1])

    def load(self, database: str) -> tuple[DatabaseSchema, float] | None:
        """The cached model from disk and when it was introspected, or None if unusable."""
        try:
            data = json.loads(self.path(database).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("fingerprint") != self._fingerprint
            or data.get("database") != database
        ):
            return None
        try:
            return DatabaseSchema.from_dict(data["schema"]), float(data["introspected_at"])
        except (KeyError, TypeError, ValueError):
            return None

    def info(self, database: str) -> dict[str, Any]:
        """Status of one database's cache, for ``pg-mcp cache show``."""
        path = self.path(database)
        loaded = self.load(database)
        if loaded is None:
            state = "unusable (other server, policy or format)" if path.exists() else "missing"
            return {"database": database, "path": str(path), "state": state}
        schema, at = loaded
        age = max(0.0, time.time() - at)
        return {
            "database": database,
            "path": str(path),
            "state": "fresh" if self._fresh(at) else "stale",
            "age_seconds": round(age, 1),
            "relations": len(schema.tables),
            "functions": len(schema.functions),
            "bytes": path.stat().st_size,
        }

    # --- writing ---------------------------------------------------------------------------
    def refresh(self, database: str) -> DatabaseSchema:
        """Introspect now (one introspection per database at a time), save, and return it."""
        with self._lock:
            db_lock = self._db_locks.setdefault(database, threading.Lock())
        with db_lock:
            from pg_mcp.db.discovery import database_dsn, introspection_dsn, resolve_database
            from pg_mcp.db.introspect import introspect

            server = introspection_dsn(self.settings)
            name = resolve_database(self.settings, database, server)
            started = time.time()
            schema = introspect(database_dsn(server, name), name, self.settings)
            self.put(schema, introspected_at=started)
            return schema

    def put(self, schema: DatabaseSchema, *, introspected_at: float | None = None) -> Path:
        """Store a freshly introspected model in memory and on disk (atomically)."""
        at = time.time() if introspected_at is None else introspected_at
        with self._lock:
            self._mem[schema.name] = (schema, at)
            self.errors.pop(schema.name, None)
        return self.save(schema, at)

    def save(self, schema: DatabaseSchema, introspected_at: float) -> Path:
        envelope = {
            "format": FORMAT,
            "fingerprint": self._fingerprint,
            "database": schema.name,
            "introspected_at": introspected_at,
            "schema": schema,
        }
        # default=vars serialises the dataclasses as they are met: twice as fast as to_dict()
        text = json.dumps(
            envelope, ensure_ascii=False, separators=(",", ":"), default=vars, check_circular=False
        )
        import tempfile

        path = self.path(schema.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def refresh_in_background(self, database: str) -> threading.Thread:
        """Start a refresh in a daemon thread (at most one per database); return at once."""
        with self._lock:
            running = self._threads.get(database)
            if running is not None and running.is_alive():
                return running
            thread = threading.Thread(
                target=self._background,
                args=(database,),
                name=f"pg-mcp-refresh-{database}",
                daemon=True,
            )
            self._threads[database] = thread
            thread.start()
            return thread

    def _background(self, database: str) -> None:
        try:
            self.refresh(database)
        except PgMcpError as exc:
            with self._lock:
                self.errors[database] = str(exc)
            _log().warning("schema cache refresh of %s failed: %s", database, exc)
        except Exception as exc:  # a background thread must not die loudly
            with self._lock:
                self.errors[database] = f"{type(exc).__name__}: {exc}"
            _log().warning("schema cache refresh of %s failed: %s", database, type(exc).__name__)

    def refreshing(self, database: str) -> bool:
        with self._lock:
            t = self._threads.get(database)
            return t is not None and t.is_alive()

    def forget(self, database: str) -> None:
        """Drop the in-memory copy (the file stays)."""
        with self._lock:
            self._mem.pop(database, None)
