"""Markdown references from the schema model (pure: model in, ``{relative path: text}`` out).

Layout for one database ``<db>``:

- small: everything in ``<db>.md`` (overview, then one compact section per table/view);
- larger than ``SINGLE_FILE_LIMIT``: ``<db>.md`` is an index (every table with its
  purpose and columns at a glance) and each table gets ``<db>/<schema>.<table>.md``;
- index still too large: ``<db>.md`` lists schemas and each schema gets its own index
  ``<db>/<schema>.md``; an overview too large moves to ``<db>/_overview.md``;
- any file still over ``PART_LIMIT`` is cut at line boundaries into ``name.md``,
  ``name~2.md``, ... (tables keep their header row), so no file exceeds ``MAX_FILE_BYTES``;
- names differing only in case or in characters a file name cannot hold get ``+2``, ``+3``.

Output is deterministic: stable sort orders, rounded figures, no timestamps.

Text from the database is data (``pg_mcp.core.datatext``): comments are written as quoted JSON
strings, sample values and enum labels as SQL literals, odd names as ``U&"..."``, each on
one line, capped and Markdown-inert; every file says so once, under its title (DATA_NOTE).

This module holds the entry points (``render_database``, ``render_readme``,
``readme_entry``, ``warm``) and the layout decision above; the rest lives by job:

- ``markdown``: spelling helpers (identifiers, code spans, cells, rounded figures, file names);
- ``relations``: the per-database context (names, foreign keys, inferred relationships) and
  a table's one-line purpose;
- ``columns``: a column's row and its notes (samples, profile);
- ``sections``: one table's or view's section;
- ``overview``: the header and the database-wide overview;
- ``pages``: size limits, the Jinja2 templates, table pages, cutting files into parts.

The page layouts are Jinja2 templates (``templates/``). The per-table section and the
index entries, rendered a thousand times for a large database, are built with plain
string joins instead (``sections.table_section``, ``columns.column_row``): the same
Markdown, several times faster than a template loop over attribute records.

The names other modules import from here (``ident``, ``cell``, ``safe_filename``,
``MAX_FILE_BYTES``, ...) are re-exported from where they live.
"""

from __future__ import annotations

from collections import defaultdict

from pg_mcp.core.model import DatabaseSchema
from pg_mcp.refs.columns import profile_notes, profile_range
from pg_mcp.refs.markdown import (
    DATA_NOTE,
    MAX_CELL,
    NOTE_CAP,
    approx_bytes,
    approx_count,
    cell,
    code,
    ident,
    one_line,
    plural,
    quoted,
    rows_label,
    safe_filename,
)
from pg_mcp.refs.overview import EXAMPLE_SQL_LINES, header_view, notes_view, overview_view, summary
from pg_mcp.refs.pages import (
    MAX_FILE_BYTES,
    OVERVIEW_LIMIT,
    PART_LIMIT,
    SINGLE_FILE_LIMIT,
    TEMPLATES,
    Record,
    render_template,
    split_parts,
    table_page,
    utf8_size,
    warm,
)
from pg_mcp.refs.relations import build_context, keys_note, purpose
from pg_mcp.refs.sections import VIEW_LINES, table_sections

__all__ = [
    "DATA_NOTE",
    "EXAMPLE_SQL_LINES",
    "MAX_CELL",
    "MAX_FILE_BYTES",
    "NOTE_CAP",
    "OVERVIEW_LIMIT",
    "PART_LIMIT",
    "SINGLE_FILE_LIMIT",
    "TEMPLATES",
    "VIEW_LINES",
    "approx_bytes",
    "approx_count",
    "cell",
    "code",
    "ident",
    "keys_note",
    "notes_view",
    "one_line",
    "profile_notes",
    "profile_range",
    "purpose",
    "readme_entry",
    "render_database",
    "render_readme",
    "rows_label",
    "safe_filename",
    "summary",
    "warm",
]


def render_database(
    db: DatabaseSchema, *, single_file_limit: int = SINGLE_FILE_LIMIT
) -> dict[str, str]:
    """All files of one database's reference: ``{posix relative path: Markdown}``."""
    ctx = build_context(db)
    header = header_view(db)
    overview = overview_view(ctx)
    shown = [t for t in db.tables if not t.partition_of or t.partition_of not in ctx.tables]
    mainfile = safe_filename(db.name) + ".md"
    sections = table_sections(ctx, shown)

    # (characters never outnumber UTF-8 bytes: a long text is over the limit without encoding)
    chars = sum(map(len, sections))
    if chars < single_file_limit and sum(map(utf8_size, sections)) < single_file_limit:
        full = render_template("database.md.j2", h=header, o=overview, sections=sections)
        if utf8_size(full) <= single_file_limit:
            return split_parts({mainfile: full})

    folder = safe_filename(db.name)
    back = "../" + mainfile
    files: dict[str, str] = {}
    used: set[str] = set()
    detail: dict[str, str] = {}
    footer = render_template("table_footer.md.j2", h=header, back=back)
    for t, section in zip(shown, sections, strict=True):
        base = f"{safe_filename(t.schema)}.{safe_filename(t.name)}"
        name, n = base, 2
        while name.lower() in used:  # also distinct on case-insensitive file systems
            name, n = f"{base}+{n}", n + 1  # "+" and "~" never come out of safe_filename
        used.add(name.lower())
        path = detail[t.qualified] = f"{folder}/{name}.md"
        files[path] = table_page(section, footer)

    # index entries, as (title, path, the rest): "- [title](link) (kind) · rows — purpose",
    # then "  columns: ..." (the link is relative to the index that lists the entry)
    entries_by_schema: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for t in shown:
        rest = "" if t.kind == "table" else f" ({t.kind})"
        if t.kind != "view":
            rest += " · " + rows_label(t.row_estimate)
        why = purpose(ctx, t)
        if why:
            rest += " — " + why
        rest += "\n  columns: " + ", ".join([ident(c.name) for c in t.columns])
        title = f"{ident(t.schema)}.{ident(t.name)}"
        entries_by_schema[t.schema].append((title, detail[t.qualified], rest))

    overview_link = ""
    if utf8_size(render_template("overview.md.j2", o=overview, level="##")) > OVERVIEW_LIMIT:
        overview_link = f"{folder}/_overview.md"
        files[overview_link] = render_template(
            "overview_page.md.j2", h=header, o=overview, back=back
        )

    schemas_with = [s for s in db.schemas if entries_by_schema.get(s)]
    schemas_with += sorted(set(entries_by_schema) - set(schemas_with))
    flat = [
        Record(name=ident(s), entries=[f"- [{e[0]}]({e[1]}){e[2]}" for e in entries_by_schema[s]])
        for s in schemas_with
    ]
    index = ""
    if sum(len(e) for s in flat for e in s.entries) <= single_file_limit:  # else too long anyway
        index = render_template(
            "index.md.j2",
            h=header,
            o=overview,
            overview_link=overview_link,
            schemas=flat,
            per_schema=False,
        )
    if not index or utf8_size(index) > single_file_limit:
        links = []
        for s in schemas_with:
            path = f"{folder}/{safe_filename(s)}.md"
            while path in files:
                path = path[:-3] + "+s.md"
            entries = [  # links to siblings in the same folder
                f"- [{e[0]}]({e[1].split('/', 1)[1]}){e[2]}" for e in entries_by_schema[s]
            ]
            comment = quoted(db.schema_comments.get(s))
            files[path] = render_template(
                "schema_index.md.j2",
                h=header,
                schema=ident(s),
                comment=comment,
                entries=entries,
                back=back,
            )
            links.append(
                Record(
                    name=ident(s),
                    link=path,
                    count=plural(len(entries), "table or view", "tables and views"),
                    comment=comment,
                )
            )
        index = render_template(
            "index.md.j2",
            h=header,
            o=overview,
            overview_link=overview_link,
            schemas=links,
            per_schema=True,
        )
    files[mainfile] = index
    return split_parts(files)


def render_readme(entries: list[dict[str, str]]) -> str:
    """``references/README.md``: one line per database (entries from ``readme_entry``)."""
    return render_template("readme.md.j2", databases=sorted(entries, key=lambda e: e["name"]))


def readme_entry(db: DatabaseSchema, files: dict[str, str]) -> dict[str, str]:
    main = safe_filename(db.name) + ".md"
    return {
        "name": db.name,
        "link": main,
        "summary": summary(db),
        "comment": quoted(db.comment),
        "layout": "one file"
        if len(files) == 1
        else f"index + {len(files) - 1} files under {safe_filename(db.name)}/",
    }
