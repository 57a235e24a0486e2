"""Regenerate src/pg_mcp/core/data/builtin_functions.tsv, the reviewed table of built-in functions.

    .venv/bin/python scripts/classify_functions.py           # write it
    .venv/bin/python scripts/classify_functions.py --check   # exit 1 when it is stale

Input: fixtures/pg_catalog/pg_proc-<major>.txt (one per supported major version, made by
scripts/dump_pg_proc.py from a real server) and the rules in src/pg_mcp/core/functions.py
(deny FAMILIES, HARMLESS_VOLATILE). To support a new major version: dump it, add it to
functions.SUPPORTED_MAJORS, run this, and review every new line of the diff.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from pg_mcp.core import functions  # noqa: E402

DUMPS = ROOT / "fixtures" / "pg_catalog"
TABLE = ROOT / "src" / "pg_mcp" / "core" / "data" / "builtin_functions.tsv"


def generate(dumps_dir: Path = DUMPS) -> str:
    dumps = {
        major: functions.read_dump((dumps_dir / f"pg_proc-{major}.txt").read_text("utf-8"))
        for major in functions.SUPPORTED_MAJORS
    }
    return functions.render_table(dumps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    a = ap.parse_args(argv)
    text = generate()
    if a.check:
        same = TABLE.exists() and TABLE.read_text("utf-8") == text
        print(f"{TABLE}: {'up to date' if same else 'STALE: run scripts/classify_functions.py'}")
        return 0 if same else 1
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(text, encoding="utf-8")
    rows = text.count("\n") - 2
    denied = text.count("\tdeny:")
    print(f"{TABLE}: {rows} functions, {rows - denied} allowed, {denied} denied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
