"""pg-mcp references [--db NAME ...] [--out DIR] [--no-samples]: Markdown references.

Introspects each database (up to four at once: the catalog statements run on the
server while this process loads the renderer and renders the previous database),
renders it, writes the files, removes files a previous run wrote for the same
database that are no longer produced, rewrites ``README.md`` and stores the model
in the schema cache.
``<out>/.manifest.json`` remembers which files belong to which database (so only
files this tool wrote are ever removed) and the README line of each database.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pg_mcp.errors import PgMcpError
from pg_mcp.settings import Settings

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

MANIFEST = ".manifest.json"
# Databases pg-mcp itself creates for tests and benchmarks: never part of an unfiltered run.
SCRATCH_PATTERNS = ("pgmcp_scratch_*", "pgmcp_bench_*")


@dataclass
class Result:
    database: str
    tables: int
    files: int
    bytes: int
    seconds: float


def run(args: argparse.Namespace, settings: Settings) -> int:
    import gc

    if getattr(args, "no_samples", False):
        settings = settings.with_(samples=False)
    gc.disable()  # a short-lived process building many small objects: collection is pure cost
    try:
        results = generate(settings, names=args.db or None, out=Path(args.out))
    finally:
        gc.enable()
    for r in results:
        print(
            f"{r.database}: {r.tables} tables/views, {r.files} file{'s' if r.files != 1 else ''}, "
            f"{r.bytes / 1024:.1f} KiB, {r.seconds:.2f} s"
        )
    if not results:
        print("no databases to describe")
    return 0


def generate(
    settings: Settings, names: list[str] | None = None, out: Path = Path("references")
) -> list[Result]:
    """Introspect, render and write the references of ``names`` (default: every reachable db)."""
    from pg_mcp.discovery import database_dsn, server_dsn

    server = server_dsn(settings)
    if names:
        chosen = list(dict.fromkeys(names))
        for n in chosen:
            if not _selected(n, settings):
                _unknown(settings, n, server)
    else:
        from pg_mcp.discovery import list_databases

        available = [d.name for d in list_databases(settings, server)]
        chosen = [
            n for n in available if not any(fnmatch.fnmatchcase(n, p) for p in SCRATCH_PATTERNS)
        ]
    if not chosen:
        return []

    from pg_mcp import introspect

    # The catalog queries run on the server while this process loads the renderer.
    window = 4
    started: dict[str, tuple[float, introspect.Introspection]] = {}
    queue = list(chosen)

    def launch() -> None:
        while queue and len(started) < window:
            name = queue.pop(0)
            started[name] = (
                time.perf_counter(),
                introspect.start(database_dsn(server, name), name, settings),
            )

    launch()
    from pg_mcp import render
    from pg_mcp.cache import SchemaCache

    render.warm()
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(out)
    cache = SchemaCache(settings)
    results = []
    # File system calls release the GIL: files are written while the next step computes.
    from concurrent.futures import ThreadPoolExecutor

    writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pg-mcp-write")
    writes: list[Future[object]] = []
    try:
        for name in chosen:
            launch()
            began, pending = started.pop(name)
            try:
                schema = pending.result()
            except PgMcpError as exc:
                if exc.code == "UNKNOWN_DATABASE":
                    _unknown(settings, name, server)
                raise
            files = render.render_database(schema)
            too_big = [p for p, t in files.items() if len(t.encode()) > render.MAX_FILE_BYTES]
            if too_big:  # render guarantees this; never write a file an agent cannot read whole
                raise PgMcpError(
                    "DB_ERROR", f"rendered file over {render.MAX_FILE_BYTES} bytes: {too_big[0]}"
                )
            writes.extend(_replace_files(out, name, files, manifest, writer))
            manifest[name] = {**render.readme_entry(schema, files), "files": sorted(files)}
            writes.append(writer.submit(cache.put, schema))  # overlaps the next database
            tables = sum(1 for t in schema.tables if not t.partition_of)
            size = sum(len(t.encode("utf-8")) for t in files.values())
            results.append(Result(name, tables, len(files), size, time.perf_counter() - began))
            launch()
        for w in writes:
            w.result()  # re-raise any write error
    finally:
        for _, pending in started.values():
            pending.cancel()  # a failure above: do not leave psql processes behind
        writer.shutdown()
    if not names:  # a full run: databases no longer reachable lose their references
        for gone in sorted(set(manifest) - set(chosen)):
            _replace_files(out, gone, {}, manifest)
            del manifest[gone]
    for gone in [n for n, e in manifest.items() if not (out / e.get("link", "")).is_file()]:
        del manifest[gone]
    readme = render.render_readme(
        [{k: v for k, v in e.items() if k != "files"} for e in manifest.values()]
    )
    _write_if_changed(out / "README.md", readme)
    _write_if_changed(
        out / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    )
    return results


def _selected(name: str, settings: Settings) -> bool:
    """The include/exclude globs of the configuration (as discovery applies them)."""
    if settings.include and not any(fnmatch.fnmatchcase(name, p) for p in settings.include):
        return False
    return not any(fnmatch.fnmatchcase(name, p) for p in settings.exclude)


def _unknown(settings: Settings, name: str, server: str) -> None:
    """Raise UNKNOWN_DATABASE with discovery's hints (did you mean ...)."""
    from pg_mcp.discovery import resolve_database

    resolve_database(settings, name, server)
    raise PgMcpError("UNKNOWN_DATABASE", f"no reachable database named {name!r}")


def _load_manifest(out: Path) -> dict[str, dict]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _replace_files(
    out: Path,
    name: str,
    files: dict[str, str],
    manifest: dict[str, dict],
    pool: ThreadPoolExecutor | None = None,
) -> list[Future[None]]:
    """Write ``files`` and delete what an earlier run wrote for ``name`` that is not in it.

    With a ``pool`` the writes run there (futures returned), else here.
    """
    from pg_mcp.render import safe_filename

    old: set[str] = set(manifest.get(name, {}).get("files", []))
    stem = safe_filename(name)
    if not old:  # no manifest: what this tool would have written for the database
        old.update(p.relative_to(out).as_posix() for p in out.glob(f"{stem}~*.md"))
        if (out / f"{stem}.md").is_file():
            old.add(f"{stem}.md")
        folder = out / stem
        if folder.is_dir():
            old.update(p.relative_to(out).as_posix() for p in folder.rglob("*.md"))
    for rel in sorted(old - set(files)):
        path = out / rel
        if path.is_file() and out.resolve() in path.resolve().parents:
            path.unlink()
    for rel in sorted({str(Path(r).parent) for r in old - set(files)}, key=len, reverse=True):
        folder = out / rel
        if rel not in (".", "") and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    for folder in sorted({(out / rel).parent for rel in files}):
        folder.mkdir(parents=True, exist_ok=True)
    items = [(out / rel, text) for rel, text in files.items()]
    if pool is None:
        _write_all(items)
        return []
    half = (len(items) + 1) // 2
    return [pool.submit(_write_all, part) for part in (items[:half], items[half:]) if part]


def _write_all(items: list[tuple[Path, str]]) -> None:
    for path, text in items:
        _write_if_changed(path, text, mkdir=False)


def _write_if_changed(path: Path, text: str, *, mkdir: bool = True) -> None:
    """Write only when the content differs (unchanged files keep their timestamps)."""
    data = text.encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    except OSError:
        pass
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
