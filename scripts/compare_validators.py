"""Differential check of the validator against an earlier revision: same inputs, same verdicts.

    .venv/bin/python scripts/compare_validators.py [REF] [--mixes N]

REF (default wp/arch) names a revision whose src/pg_mcp/core/validator.py was the
single-module validator; it is loaded from git beside the current package and both judge
the bench corpora, the SQL literals of tests/test_*.py and N random splices of them, under
five schema/policy configurations. Prints the differences (exit 1 when any).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import logging
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench"), str(ROOT / "tests")]

import bench_validate  # noqa: E402

from pg_mcp.core.settings import Policy, Settings  # noqa: E402
from pg_mcp.core.validation import validate_sql  # noqa: E402
from rulekit import shop  # noqa: E402

_SQL = re.compile(
    r'"((?:SELECT|WITH|VALUES|TABLE|EXPLAIN|select|with|\(|INSERT|UPDATE|DELETE)[^"\\]*(?:\\.[^"\\]*)*)"'
)


def load_old(ref: str) -> Any:
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:src/pg_mcp/core/validator.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_validator.py"
    path.write_text(text, "utf-8")
    spec = importlib.util.spec_from_file_location("old_validator", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_validator"] = module
    spec.loader.exec_module(module)
    return module


def texts(mixes: int) -> list[str]:
    out = bench_validate.test_query_texts() + bench_validate.legit_texts()
    out += bench_validate.hostile_texts()
    for p in sorted((ROOT / "tests").glob("test_*.py")):
        for m in _SQL.finditer(p.read_text("utf-8")):
            with contextlib.suppress(Exception):
                out.append(ast.literal_eval('"' + m.group(1) + '"'))
    out = list(dict.fromkeys(out))
    rng = random.Random(7)
    for _ in range(mixes):
        a, b = rng.choice(out), rng.choice(out)
        out.append(a[: rng.randrange(len(a) + 1)] + b[rng.randrange(len(b) + 1) :])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ref", nargs="?", default="wp/arch")
    ap.add_argument("--mixes", type=int, default=3000)
    a = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # internal failures are logged by both
    old = load_old(a.ref)
    deny = Policy(
        deny_columns=["*.password_hash", "hr.employees.salary", "*.email"],
        deny_tables=["hr.*", "public.users"],
        deny_schemas=["analytics"],
    )
    configs: list[dict[str, Any]] = [
        {},
        {"schema": shop()},
        {"schema": shop(), "settings": Settings(policy=deny)},
        {"settings": Settings(policy=Policy(deny_columns=["*.password_hash"]))},
        {
            "schema": shop(),
            "settings": Settings(
                policy=Policy(
                    allow_functions=["public.*"],
                    allow_secret_catalogs=True,
                    allow_secret_settings=True,
                )
            ),
        },
    ]
    all_texts = texts(a.mixes)
    n = bad = 0
    for cfg in configs:
        for t in all_texts:
            before = old.validate_sql(t, "shop", **cfg).to_dict()
            after = validate_sql(t, "shop", **cfg).to_dict()
            n += 1
            if before != after:
                bad += 1
                print(f"DIFF {t!r:.200}\n  before {before}\n  after  {after}")
    print(f"texts: {len(all_texts)} comparisons: {n} differences: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
