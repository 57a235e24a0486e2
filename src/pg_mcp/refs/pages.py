"""Files of a reference (pure but for reading the templates): the size limits, the Jinja2
templates (``templates/``) and the records they read, a table's own page, and cutting any file
over ``PART_LIMIT`` into numbered parts at line boundaries.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pg_mcp.refs.markdown import DATA_NOTE

SINGLE_FILE_LIMIT = 50 * 1024  # a database larger than this gets the index layout
PART_LIMIT = 50 * 1024  # files are cut into parts of at most this size
MAX_FILE_BYTES = 60 * 1024  # hard limit asserted for every file
OVERVIEW_LIMIT = 24 * 1024  # in the index layout, a bigger overview gets its own file


class Record:
    """A record templates read as attributes (plain attribute lookups: fast in Jinja)."""

    def __init__(self, data: Any = None, **fields: Any) -> None:
        if data is not None:
            self.__dict__.update(vars(data) if isinstance(data, Record) else data)
        self.__dict__.update(fields)

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]


@lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _bytecode_cache() -> Any:
    """Compiled templates cached per user (compiling them costs more than rendering)."""
    import jinja2

    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


def warm() -> None:
    """Import Jinja2 and load the templates (callers overlap this with database work)."""
    env = _env()
    for name in TEMPLATES:
        env.get_template(name)


TEMPLATES = (  # every template, the included ones too (warm() loads them all ahead)
    "database.md.j2",
    "table_footer.md.j2",
    "index.md.j2",
    "schema_index.md.j2",
    "overview.md.j2",
    "overview_page.md.j2",
    "readme.md.j2",
    "_header.md.j2",
    "_howto.md.j2",
    "_entries.md.j2",
    "_notes.md.j2",
)


def render_template(template: str, **ctx: Any) -> str:
    text = _env().get_template(template).render(data_note=DATA_NOTE, **ctx)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.rstrip("\n") + "\n"


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


def table_page(section: str, footer: str) -> str:
    """A table's own file: its section under a level-1 heading, the data note, the footer."""
    heading, _, rest = section.partition("\n")
    return f"# {heading[4:]}\n\n{DATA_NOTE}\n{rest}\n{footer}"  # "### title" -> "# title"


def split_parts(files: dict[str, str]) -> dict[str, str]:
    """Cut any file over PART_LIMIT into numbered parts at line boundaries."""
    out: dict[str, str] = {}
    for path, text in sorted(files.items()):
        if len(text) * 4 <= PART_LIMIT or utf8_size(text) <= PART_LIMIT:  # UTF-8: <= 4 bytes/char
            out[path] = text
            continue
        stem = path[:-3]
        title = text.splitlines()[0].lstrip("# ").strip() if text else path
        parts: list[list[str]] = [[]]
        size = 0
        table_header: list[str] = []
        in_code = False
        budget = PART_LIMIT - 900  # room for the part header, the data note, the next-part link
        for line in text.splitlines():
            if line.startswith("```"):
                in_code = not in_code
            n = len(line.encode("utf-8")) + 1
            if size + n > budget and parts[-1]:
                carry: list[str] = []
                if line.startswith("|") and table_header:
                    carry = list(table_header)
                if in_code and not line.startswith("```"):
                    parts[-1].append("```")
                    carry = ["```sql", *carry]
                parts.append(carry)
                size = sum(len(x.encode("utf-8")) + 1 for x in carry)
            parts[-1].append(line)
            size += n
            # remember the header of the table being written (header row + separator row)
            if line.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip()):
                prev = parts[-1][-2] if len(parts[-1]) >= 2 else ""
                table_header = [prev, line]
            elif not line.startswith("|"):
                table_header = []
        total = len(parts)
        names = [path] + [f"{stem}~{i}.md" for i in range(2, total + 1)]
        for i, lines in enumerate(parts):
            body = "\n".join(lines).rstrip("\n") + "\n"
            if i > 0:
                body = f"# {title} (part {i + 1} of {total})\n\n{DATA_NOTE}\n\n" + body
            if i + 1 < total:
                nxt = names[i + 1].rsplit("/", 1)[-1]
                body += f"\nContinued in [{nxt}]({nxt}).\n"
            out[names[i]] = body
    return dict(sorted(out.items()))
