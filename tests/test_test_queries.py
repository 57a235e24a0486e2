"""fixtures/TEST_QUERIES.md: its format, the parser, and every expected SQL on its database."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_mcp_dev.testqueries import (
    LEVELS,
    Q_PREFIX,
    SQL_PREFIX,
    QueryCase,
    QueryFileError,
    has_top_level_order_by,
    load_test_queries,
    parse_test_queries,
    question_implies_order,
    select_cases,
)

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "fixtures" / "TEST_QUERIES.md"
DATABASES = ("db_pg_mcp_small", "db_pg_mcp_medium", "db_pg_mcp_large")
CJK = re.compile(r"[\u4e00-\u9fff]")
# phrases that clearly ask for an order: the expected SQL must then end in ORDER BY
STRONG_ORDER = re.compile(
    r"\btop \d+|\bfirst \d+|\b(sorted|ranked|ranking)\b|from (highest|lowest|largest|smallest)"
    r"|前\s*\d+|排序|排名|从高到低|从低到高|由高到低|由低到高",
    re.IGNORECASE,
)
NONDETERMINISTIC = re.compile(
    r"\b(now|random|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday)\s*\("
    r"|\bcurrent_(date|time|timestamp)\b|\blocaltime(stamp)?\b",
    re.IGNORECASE,
)


def _cases() -> list[QueryCase]:
    return load_test_queries(QUERIES) if QUERIES.exists() else []


CASES = _cases()


# ---------------------------------------------------------------- the file's format


def test_file_parses_with_enough_cases_per_database_and_level() -> None:
    assert CASES, f"{QUERIES} is missing or empty"
    per_db = Counter(c.database for c in CASES)
    per_level = Counter((c.database, c.level) for c in CASES)
    for db in DATABASES:
        assert per_db[db] >= 20, f"{db}: {per_db[db]} cases, need at least 20"
        for level in LEVELS:
            assert per_level[db, level] >= 4, f"{db}/{level}: {per_level[db, level]} cases, need 4"
    assert set(per_db) == set(DATABASES), f"unexpected databases: {set(per_db) - set(DATABASES)}"


def test_both_languages_are_mixed() -> None:
    chinese = sum(1 for c in CASES if CJK.search(c.question))
    english = len(CASES) - chinese
    assert chinese >= len(CASES) // 3 and english >= len(CASES) // 3, (chinese, english)
    for db in DATABASES:
        qs = [c.question for c in CASES if c.database == db]
        assert any(CJK.search(q) for q in qs) and any(not CJK.search(q) for q in qs), db


def test_ids_unique_and_exact_prefixes() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    text = re.sub(
        r"^```.*?^```$", "", QUERIES.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL
    )
    assert text.count("\n    " + Q_PREFIX) == len(CASES)
    assert text.count("\n    " + SQL_PREFIX) == len(CASES)
    case_lines = [ln for ln in text.splitlines() if re.match(r"^\* \d", ln)]
    assert len(case_lines) == len(CASES)
    assert all(re.match(r"^\* \d+: \S", ln) for ln in case_lines)


def test_expected_sql_is_deterministic_and_ordered_when_asked() -> None:
    for c in CASES:
        assert not NONDETERMINISTIC.search(c.sql), f"case {c.id}: uses the clock or random()"
        if STRONG_ORDER.search(c.question):
            assert has_top_level_order_by(c.sql), f"case {c.id}: the question asks for an order"
            assert c.ordered, f"case {c.id}: should be compared in order"
        if re.search(r"\bLIMIT\b", c.sql, re.IGNORECASE) and has_top_level_order_by(c.sql):
            # a LIMIT after ORDER BY picks rows: the ORDER BY needs a tie-breaker (2+ keys)
            order_by = re.split(r"\border\s+by\b", c.sql, flags=re.IGNORECASE)[-1]
            assert "," in order_by, f"case {c.id}: ORDER BY ... LIMIT needs a tie-breaker"


# ---------------------------------------------------------------- the parser

GOOD = """# title

Some prose.

```
* 99: an example inside a fence is ignored
```

## db_a
### Simple
* 1: count things
    自然语言：How many things?
    期望 SQL：SELECT count(*)
        FROM things

* 2: top things
    自然语言：前 3 个最大的东西是什么？
    期望 SQL：SELECT id FROM things ORDER BY size DESC, id LIMIT 3
### Medium
* 3: by kind [unordered]
    自然语言：Top kinds, sorted
    期望 SQL：SELECT kind, count(*) FROM things GROUP BY kind ORDER BY 2 DESC, 1
## db_b
### advanced
* 10: explicit order [ordered]
    自然语言：list them
    期望 SQL：SELECT id FROM t ORDER BY id
"""


def test_parser_reads_a_good_file() -> None:
    cases = parse_test_queries(GOOD)
    assert [c.id for c in cases] == [1, 2, 3, 10]
    a, b, c, d = cases
    assert (a.database, a.level, a.title, a.question) == (
        "db_a",
        "simple",
        "count things",
        "How many things?",
    )
    assert a.sql == "SELECT count(*)\nFROM things" and a.line == 11 and not a.ordered
    assert b.ordered  # ORDER BY + "前 3"
    assert c.title == "by kind" and not c.ordered  # marker wins over the wording
    assert d.database == "db_b" and d.level == "advanced" and d.ordered
    assert [x.id for x in select_cases(cases, ["db_a"], ["MEDIUM"])] == [3]
    with pytest.raises(QueryFileError, match="unknown level"):
        select_cases(cases, None, ["hard"])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("## db\n### Simple\n* 1 no colon\n", 3, "'\\* <id>: <title>'"),
        ("## db\n### Simple\n* 1: t\n    期望 SQL：SELECT 1\n", 4, "before"),
        ("## db\n### Simple\n* 1: t\n    自然语言：q\n\n", 3, "missing the '期望 SQL："),
        (
            "## db\n### Simple\n* 1: t\n    自然语言: q\n    期望 SQL：SELECT 1\n",
            4,
            "full-width colon",
        ),
        (
            "## db\n### Simple\n* 1: t\n    自然语言：q\n    期望 SQL：SELECT 1\n* 1: u\n",
            6,
            "duplicate case id 1",
        ),
        ("## db\n### Hard\n", 2, "level heading"),
        ("### Simple\n", 1, "before any"),
        ("## db\n* 1: t\n", 2, "outside"),
        ("## db\n### Simple\n    SELECT 1\n", 3, "outside a case"),
        ("## db\n### Simple\n* 1: t\n    自然语言：\n", 4, "empty question"),
        ("## db\n### Simple\n* 1: t\n    自然语言：q\n    期望 SQL：\n", 5, "must start"),
        ("```\n* 1: t\n", 1, "unclosed"),
    ],
)
def test_parser_refuses_malformed_cases_with_line_numbers(
    text: str, line: int, message: str
) -> None:
    with pytest.raises(QueryFileError, match=rf"^Q\.md:{line}: .*{message}"):
        parse_test_queries(text, source="Q.md")


def test_order_detection() -> None:
    assert has_top_level_order_by("SELECT a FROM t ORDER BY a")
    assert has_top_level_order_by("WITH x AS (SELECT 1 AS a) SELECT a FROM x ORDER BY a")
    assert has_top_level_order_by("SELECT 1 AS a UNION SELECT 2 ORDER BY 1")
    assert not has_top_level_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a) s")
    assert not has_top_level_order_by("SELECT row_number() OVER (ORDER BY a) FROM t")
    assert not has_top_level_order_by("SELECT string_agg(a, ',' ORDER BY a) FROM t")
    for q in ("Top 5 customers", "按收入从高到低排序", "前 10 个商品", "the highest rated product"):
        assert question_implies_order(q), q
    assert question_implies_order("List them in alphabetical order")
    for q in (
        "How many orders per month?",
        "每个国家有多少客户？",
        "Which customers ordered twice?",
        "first month",
    ):
        assert not question_implies_order(q), q


# ---------------------------------------------------------------- every expected SQL runs


@pytest.fixture(scope="module")
def pools(settings) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from pg_mcp.db.executor import Pools

    with Pools(settings) as p:
        yield p


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c.database.removeprefix('db_pg_mcp_')}-{c.id}" for c in CASES]
)
def test_expected_sql_validates_and_returns_rows(case: QueryCase, settings, pools) -> None:  # type: ignore[no-untyped-def]
    from pg_mcp.db.checker import validate_sql
    from pg_mcp.db.executor import run_readonly

    verdict = validate_sql(case.sql, case.database, settings=settings)
    assert verdict.ok, f"case {case.id} rejected: {verdict.code} {verdict.message} ({verdict.hint})"
    result = run_readonly(case.sql, case.database, settings=settings, pools=pools, max_rows=10_000)
    assert result.ok, f"case {case.id} failed: {result.code} {result.message}"
    assert result.row_count > 0, f"case {case.id} returned no rows"
    assert not result.truncated, f"case {case.id} returns more than 10,000 rows"


# ---------------------------------------------------------------- issue 12's data queries

DATA_QUERIES = ROOT / "fixtures" / "DATA_QUERIES.md"
DATA_CASES = load_test_queries(DATA_QUERIES)


def test_data_queries_are_apart_and_need_the_data_pass_or_the_notes() -> None:
    assert len(DATA_CASES) >= 6
    assert not {c.id for c in DATA_CASES} & {c.id for c in CASES}  # TEST_QUERIES stays at 72
    tags = " ".join(c.title for c in DATA_CASES)
    for need in ("inferred join", "unit", "date range", "note"):
        assert need in tags, need


@pytest.mark.parametrize("case", DATA_CASES, ids=[f"data-{c.id}" for c in DATA_CASES])
def test_data_query_sql_validates_and_returns_rows(case: QueryCase, settings, pools) -> None:  # type: ignore[no-untyped-def]
    test_expected_sql_validates_and_returns_rows(case, settings, pools)


def test_the_committed_references_carry_what_the_data_queries_need() -> None:
    refs = ROOT / "references"
    gl = (refs / "db_pg_mcp_large" / "finance.gl_entries.md").read_text(encoding="utf-8")
    assert "inferred FK crm.customers.customer_id" in gl  # case 103
    assert "inferred FK hr.employees.employee_id" in gl  # case 104
    large = (refs / "db_pg_mcp_large.md").read_text(encoding="utf-8")
    assert '"fired": "hr.employees.termination_date IS NOT NULL"' in large  # case 101
    small = (refs / "db_pg_mcp_small.md").read_text(encoding="utf-8")
    assert "range 2023-01-02 15:42:53+00 … 2025-12-31 23:00:00+00" in small  # case 105
    assert 'unit: "orders.currency (ISO 4217)"' in small  # case 106
