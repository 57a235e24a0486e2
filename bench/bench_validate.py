"""Benchmark: validate_sql latency vs a bare ``sqlglot.parse`` of the same texts, same run.

Texts: the expected SQL of fixtures/TEST_QUERIES.md and the queries of tests/corpus/legit.sql
(accepted: the full path, parse and tree walk) and tests/corpus/hostile.txt (refused, most
before or right after parsing). Each text is timed ``--repeat`` times with both, interleaved;
a text's figure is its median, and the printed figures are medians over texts, in
microseconds::

    validate_median_us: ...            validate_sql(sql), no database (pure core)
    sqlglot_parse_median_us: ...       one reused postgres Tokenizer + Parser: tokenize, parse
    validate_vs_parse_ratio: ...       target <= 1.5
    sqlglot_parse_fresh_median_us: ... sqlglot.parse(sql, read="postgres") (context only)

The baseline reuses one tokenizer and one parser of the postgres dialect across calls, as the
validator does (per thread): building sqlglot's tokenizer core costs more than tokenizing a
short query, so a fresh ``sqlglot.parse`` per call (the ``fresh`` figure) would flatter the
validator. Both sides raise on errors (``ErrorLevel.RAISE``).

plus the same per corpus and the cached path. validate_sql keeps a small cache of recent
verdicts: it is emptied before every uncached timing (outside the timed region), so both
functions see exactly the same texts and only the uncached path is measured except where it
says ``cached``. (Earlier versions made each text unique with a leading comment instead; that
flattered validate_sql, which hands sqlglot the text after such a comment while the baseline
tokenises it.)

    uv run python bench/bench_validate.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def hostile_texts(path: Path = ROOT / "tests" / "corpus" / "hostile.txt") -> list[str]:
    """The SQL of every case ("@@ CODE | what" line, then SQL up to the next "@@")."""
    cases: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("@@"):
            cases.append([])
        elif cases:
            cases[-1].append(line)
    out = []
    for lines in cases:
        while lines and (not lines[-1].strip() or lines[-1].startswith("# ----")):
            lines.pop()
        text = "\n".join(lines).strip()
        if text:
            out.append(text)
    return out


def test_query_texts(path: Path = ROOT / "fixtures" / "TEST_QUERIES.md") -> list[str]:
    from pg_mcp_dev.testqueries import load_test_queries

    return [c.sql for c in load_test_queries(path)]


def legit_texts(path: Path = ROOT / "tests" / "corpus" / "legit.sql") -> list[str]:
    """The SQL of every query ("-- @@ what" line, then SQL up to the next such line)."""
    queries: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.startswith("-- @@"):
            queries.append([])
        elif queries:
            queries[-1].append(line)
    return [text for lines in queries if (text := "\n".join(lines).strip())]


def timed_us(fn: Callable[[str], object], sql: str) -> float:
    t0 = time.perf_counter_ns()
    fn(sql)
    return (time.perf_counter_ns() - t0) / 1000


def measure(
    texts: list[str], repeat: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per text: (validate, reused-parser parse, cached validate, fresh parse) medians in us."""
    import sqlglot
    from sqlglot.dialects.postgres import Postgres
    from sqlglot.errors import ErrorLevel

    from pg_mcp.core.settings import Settings
    from pg_mcp.db.checker import Checker

    checker = Checker(Settings())
    forget = checker.forget  # the verdict cache: emptied before uncached timings

    dialect = Postgres()
    tokenizer = dialect.tokenizer()
    parser = dialect.parser(error_level=ErrorLevel.RAISE)

    def parse(sql: str) -> object:
        """The fair baseline: the validator's own reuse of one tokenizer and one parser."""
        try:
            return parser.parse(tokenizer.tokenize(sql), sql)
        except Exception:  # hostile texts: a tokenise or parse error is a result too
            return None

    def parse_fresh(sql: str) -> object:
        """For context: a new tokenizer and parser per call (what ``sqlglot.parse`` does)."""
        try:
            return sqlglot.parse(sql, read="postgres")
        except Exception:
            return None

    def validate(sql: str) -> object:
        return checker.validate(sql)

    for sql in texts:  # warm-up: imports, sqlglot's tries, first-call costs
        forget()
        validate(sql)
        parse(sql)
        parse_fresh(sql)
    v_med, p_med, c_med, f_med = [], [], [], []
    for sql in texts:
        v, p, c, f = [], [], [], []
        for _ in range(repeat):
            forget()
            v.append(timed_us(validate, sql))
            p.append(timed_us(parse, sql))
            c.append(timed_us(validate, sql))  # the verdict just cached
            f.append(timed_us(parse_fresh, sql))
        v_med.append(statistics.median(v))
        p_med.append(statistics.median(p))
        c_med.append(statistics.median(c))
        f_med.append(statistics.median(f))
    return v_med, p_med, c_med, f_med


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15, help="timings per text and function")
    args = ap.parse_args(argv)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)

    corpora = {
        "test_queries": test_query_texts(),
        "legit": legit_texts(),
        "hostile": hostile_texts(),
    }
    results = {name: measure(texts, max(1, args.repeat)) for name, texts in corpora.items()}
    v_all = [x for r in results.values() for x in r[0]]
    p_all = [x for r in results.values() for x in r[1]]
    c_all = [x for r in results.values() for x in r[2]]
    f_all = [x for r in results.values() for x in r[3]]

    print(f"texts: {len(v_all)}")
    for name, texts in corpora.items():
        print(f"{name}_texts: {len(texts)}")
    v, p = statistics.median(v_all), statistics.median(p_all)
    print(f"validate_median_us: {v:.1f}")
    print(f"sqlglot_parse_median_us: {p:.1f}")
    print(f"validate_vs_parse_ratio: {v / p:.2f}")
    print(f"validate_total_vs_parse_total_ratio: {sum(v_all) / sum(p_all):.2f}")
    print(f"sqlglot_parse_fresh_median_us: {statistics.median(f_all):.1f}")
    print(f"validate_vs_parse_fresh_ratio: {v / statistics.median(f_all):.2f}")
    for name, (vs, ps, _, _) in results.items():
        vm, pm = statistics.median(vs), statistics.median(ps)
        print(f"validate_{name}_median_us: {vm:.1f}")
        print(f"sqlglot_parse_{name}_median_us: {pm:.1f}")
        print(f"validate_vs_parse_{name}_ratio: {vm / pm:.2f}")
    print(f"validate_p95_us: {statistics.quantiles(v_all, n=20)[-1]:.1f}")
    print(f"validate_cached_median_us: {statistics.median(c_all):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
