"""pg-mcp cache [refresh|show|path] [--db NAME ...]: the JSON schema cache.

- ``show`` (default): one line per cached database (or per ``--db``): state, age, size;
- ``refresh``: introspect now (every reachable database, or the ``--db`` ones);
- ``path``: the cache folder (or the file of each ``--db``).
"""

from __future__ import annotations

import argparse
import time

from pg_mcp.core.settings import Settings


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from pg_mcp.db.cache import SchemaCache

    cache = SchemaCache(settings)
    names: list[str] = list(dict.fromkeys(args.db or []))
    if args.action == "path":
        if not names:
            print(cache.directory)
        for n in names:
            print(cache.path(n))
        return 0
    if args.action == "refresh":
        from concurrent.futures import ThreadPoolExecutor

        targets = names or cache.databases()

        def one(name: str) -> tuple[str, int, float]:
            started = time.perf_counter()
            schema = cache.refresh(name)
            return name, len(schema.tables), time.perf_counter() - started

        with ThreadPoolExecutor(max_workers=max(1, min(4, len(targets)))) as pool:
            for name, tables, seconds in pool.map(one, targets):
                print(
                    f"{name}: refreshed, {tables} relations, {seconds:.2f} s -> {cache.path(name)}"
                )
        if not targets:
            print("no databases to cache")
        return 0
    # show
    targets = names or cache.cached()
    if not targets:
        print(f"no cached databases in {cache.directory}")
        return 0
    for name in targets:
        info = cache.info(name)
        if "age_seconds" in info:
            print(
                f"{name}: {info['state']}, age {_age(info['age_seconds'])}, {info['relations']} relations, "
                f"{info['functions']} functions, {info['bytes'] / 1024:.1f} KiB, {info['path']}"
            )
        else:
            print(f"{name}: {info['state']} ({info['path']})")
    return 0
