"""pg-mcp references [--db NAME ...] [--out DIR] [--no-samples]: Markdown references.

Introspects each database (up to four at once, each on its own thread: the catalog
statements run on the server while this process loads the renderer and renders the
previous database),
renders it, writes the files, removes files a previous run wrote for the same
database that are no longer produced, rewrites ``README.md`` and stores the model
in the schema cache.
``<out>/.manifest.json`` remembers which files belong to which database (so only
files this tool wrote are ever removed) and the README line of each database.
Files whose content is unchanged are not rewritten (their timestamps stay).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings

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
    whole_process = _whole_process()
    gc.disable()  # a short-lived process building many small objects: collection is pure cost
    try:
        results = generate(settings, names=args.db or None, out=Path(args.out))
    finally:
        if not whole_process:  # the command runs inside a longer-lived program
            gc.enable()
    for r in results:
        print(
            f"{r.database}: {r.tables} tables/views, {r.files} file{'s' if r.files != 1 else ''}, "
            f"{r.bytes / 1024:.1f} KiB, {r.seconds:.2f} s"
        )
    if not results:
        print("no databases to describe")
    if whole_process:
        # Done, and nothing else runs in this process: leave without the interpreter's
        # teardown (a final collection, then every object of the run freed one by one).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _whole_process() -> bool:
    """Is this the ``pg-mcp`` command itself (console script or ``python -m pg_mcp.cli.main``)?"""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "pg_mcp.cli.main":
        return True
    cli = sys.modules.get("pg_mcp.cli.main")
    return cli is not None and getattr(main, "main", None) is getattr(cli, "main", None)


def generate(
    settings: Settings, names: list[str] | None = None, out: Path = Path("references")
) -> list[Result]:
    """Introspect, render and write the references of ``names`` (default: every reachable db)."""
    from pg_mcp.db.discovery import database_dsn, introspection_dsn

    server = introspection_dsn(settings)
    if names:
        chosen = list(dict.fromkeys(names))
        for n in chosen:
            if not _selected(n, settings):
                _unknown(settings, n, server)
    else:
        from pg_mcp.db.discovery import list_databases

        available = [d.name for d in list_databases(settings, server)]
        chosen = [
            n for n in available if not any(fnmatch.fnmatchcase(n, p) for p in SCRATCH_PATTERNS)
        ]
    if not chosen:
        return []

    from pg_mcp.db import introspect

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
    from pg_mcp.db.cache import SchemaCache
    from pg_mcp.refs import notes, render

    render.warm()
    out.mkdir(parents=True, exist_ok=True)
    manifest = _load_manifest(out)
    cache = SchemaCache(settings)
    results = []
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
            launch()
            cache.put(schema)  # the database's own description, without the notes
            for key in notes.apply(schema, notes.load(out, name)):
                print(f"warning: {out}/notes: {key} names nothing in {name}", file=sys.stderr)
            files = render.render_database(schema)
            blobs = {path: text.encode("utf-8") for path, text in files.items()}
            too_big = [p for p, b in blobs.items() if len(b) > render.MAX_FILE_BYTES]
            if too_big:  # render guarantees this; never write a file an agent cannot read whole
                raise PgMcpError(
                    "DB_ERROR", f"rendered file over {render.MAX_FILE_BYTES} bytes: {too_big[0]}"
                )
            _replace_files(out, name, blobs, manifest)
            manifest[name] = {**render.readme_entry(schema, files), "files": sorted(files)}
            tables = sum(1 for t in schema.tables if not t.partition_of)
            size = sum(len(b) for b in blobs.values())
            results.append(Result(name, tables, len(files), size, time.perf_counter() - began))
    finally:
        for _, pending in started.values():
            pending.cancel()  # a failure above: stop the introspections still running
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
    from pg_mcp.db.discovery import resolve_database

    resolve_database(settings, name, server)
    raise PgMcpError("UNKNOWN_DATABASE", f"no reachable database named {name!r}")


def _load_manifest(out: Path) -> dict[str, dict]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _replace_files(
    out: Path, name: str, files: dict[str, str] | dict[str, bytes], manifest: dict[str, dict]
) -> None:
    """Write ``files`` and delete what an earlier run wrote for ``name`` that is not in it."""
    from pg_mcp.refs.render import safe_filename

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
    base = str(out)
    for folder in sorted({rel.rpartition("/")[0] for rel in files} - {""}):
        os.makedirs(os.path.join(base, folder), exist_ok=True)
    for rel, data in files.items():
        path = os.path.join(base, rel)
        _write_bytes_if_changed(path, data.encode("utf-8") if isinstance(data, str) else data)


def _write_if_changed(path: Path, text: str, *, mkdir: bool = True) -> None:
    """Write only when the content differs (unchanged files keep their timestamps)."""
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_bytes_if_changed(str(path), text.encode("utf-8"))


def _write_bytes_if_changed(path: str, data: bytes) -> None:
    try:  # a new file: created and written in one go (the common case of a fresh folder)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
    except FileExistsError:
        try:
            with open(path, "rb") as fh:
                if os.fstat(fh.fileno()).st_size == len(data) and fh.read() == data:
                    return
        except OSError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
