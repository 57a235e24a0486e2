"""The eval harness: result comparison, scoring, and `pg-mcp eval` end to end on the fixtures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pg_mcp.cli import main as cli
from pg_mcp_dev.evaluate import compare_results, score_case, summarise, values_equal
from pg_mcp_dev.testqueries import QueryCase, load_test_queries
from standin_model import StandinModel, gen, is_judge_request, judge, message_text

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "fixtures" / "TEST_QUERIES.md"
GOLDEN = Path(__file__).resolve().parent / "golden"
SMALL = "db_pg_mcp_small"


# ---------------------------------------------------------------- pure comparison


@pytest.mark.parametrize(
    ("expected", "got", "equal"),
    [
        (1, 1.0, True),
        (Decimal("0.3"), 0.1 + 0.2, True),
        ("12345678901234567.89", Decimal("12345678901234567.89"), True),  # numeric as string
        (100.0, 100.00005, True),  # relative tolerance 1e-6
        (100.0, 100.01, False),
        (3.98240985, 3.98, True),  # the candidate rounded to 2 decimals
        (3.98740985, 3.98, False),  # ... but to the wrong value
        (12.4, 12, False),  # an integer is not a rounding of a decimal
        (None, None, True),
        (None, 0, False),
        (True, 1, False),
        ("2024-01-01", "2024-01-01T00:00:00", True),  # a month bucket as date or timestamp
        ("2024-01-01", "2024-01-01T00:00:00+00:00", True),
        ("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00+00:00", True),
        ("2024-01-01", "2024-01-02", False),
        ("Paris", "paris", False),
        ([1, 2.0], [1.0, 2], True),
        ({"a": 1}, {"a": 1.0}, True),
    ],
)
def test_values_equal(expected: Any, got: Any, equal: bool) -> None:
    assert values_equal(expected, got) is equal


def test_compare_multisets_and_order() -> None:
    exp = [["a", 1], ["b", 2], ["b", 2]]
    assert compare_results(exp, [["b", 2], ["a", 1.0], ["b", 2]]).match
    r = compare_results(exp, [["b", 2], ["a", 1], ["a", 1]])
    assert not r.match and "1 of 3 rows differ" in r.reason
    r = compare_results(exp, [["a", 1], ["b", 2]])
    assert not r.match and r.reason == "mismatch: 2 rows vs 3 expected"
    r = compare_results(exp, [["a", 1, 0]] * 3)
    assert not r.match and r.reason == "mismatch: 3 columns vs 2 expected"
    assert compare_results(exp, exp, ordered=True).match
    r = compare_results(exp, [["b", 2], ["a", 1], ["b", 2]], ordered=True)
    assert not r.match and r.reason.startswith("mismatch: row 1 differs")
    # tolerance beyond the canonical rounding, rows in another order: the fallback matching
    close = compare_results([["x", 1 / 3], ["y", 2.0]], [["y", 2.000001], ["x", 0.33]])
    assert close.match and "tolerance" in close.reason
    assert compare_results([], [], expected_columns=2, got_columns=2).match
    assert not compare_results([], [], expected_columns=2, got_columns=3).match


def _case(id: int = 1, ordered: bool = False) -> QueryCase:
    return QueryCase(id, "t", SMALL, "simple", "q", "SELECT 1", ordered, 1)


def test_score_case_statuses_and_summary() -> None:
    ok = {"ok": True, "columns": [{"name": "n", "type": "int8"}], "rows": [[1]], "row_count": 1}
    other = {**ok, "rows": [[2]]}
    err = {"ok": False, "code": "UNKNOWN_OBJECT", "message": "column x does not exist\nmore"}
    verdicts = [
        score_case(
            _case(1), ok, ok, {"sql": "SELECT 1", "attempts": 2, "tokens": 100, "latency_ms": 10}
        ),
        score_case(_case(2), ok, other, {"sql": "SELECT 2", "attempts": 1, "tokens": 300}),
        score_case(_case(3), ok, err, {"sql": "SELECT x"}),
        score_case(_case(4), ok, None, None),
        score_case(_case(5), err, ok, {"sql": "SELECT 1"}),
        score_case(_case(6), ok, None, {"error": "NO_ANSWER gave up"}),
    ]
    assert [v.status for v in verdicts] == [
        "correct",
        "mismatch",
        "error",
        "missing",
        "expected_error",
        "error",
    ]
    assert verdicts[2].reason == "error: UNKNOWN_OBJECT column x does not exist"
    assert verdicts[3].reason.startswith("missing")
    s = summarise(verdicts)
    assert (s.overall.correct, s.overall.total, s.expected_errors) == (1, 5, 1)
    assert s.mean_attempts == 1.5 and s.mean_tokens == 200 and s.total_tokens == 400
    assert s.to_dict()["by_database_level"][SMALL]["simple"] == {
        "correct": 1,
        "total": 5,
        "accuracy": 0.2,
    }


# ---------------------------------------------------------------- pg-mcp eval on the fixtures


@pytest.fixture
def model() -> Iterator[StandinModel]:
    """A local Chat Completions server (tests/standin_model.py) for the real openai client."""
    m = StandinModel().start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def eval_env(fixture_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment for cli.main: the test server, a private home, no config file, no model."""
    monkeypatch.chdir(tmp_path)
    for var in ("PG_MCP_CONFIG", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PG_MCP_DSN", fixture_dsn)
    monkeypatch.setenv("PG_MCP_HOME", str(tmp_path / "home"))
    return tmp_path


def _run_eval(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["eval", "--queries", str(QUERIES), *argv])
    out = capsys.readouterr().out
    return code, json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def _golden(name: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (GOLDEN / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def test_good_candidates_score_100_percent(
    eval_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [c for c in load_test_queries(QUERIES) if c.database == SMALL]
    rewrites = {r["id"]: r for r in _golden("candidates_good.jsonl")}
    assert set(rewrites) <= {c.id for c in cases}
    rows = [rewrites.get(c.id, {"id": c.id, "sql": c.sql}) for c in cases]
    cand = _write_jsonl(eval_env / "good.jsonl", rows)
    report = eval_env / "out" / "report.json"
    code, summary = _run_eval(
        capsys, "--candidates", str(cand), "--db", SMALL, "--report", str(report), "--json"
    )
    assert code == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    wrong = [(c["id"], c["reason"]) for c in data["cases"] if not c["correct"]]
    assert not wrong, wrong
    assert summary["accuracy"] == 1.0 and summary["total"] == len(cases)
    assert summary["mean_attempts"] == 1.5 and summary["mean_tokens"] == 1200
    reasons = {c["id"]: c["reason"] for c in data["cases"]}
    assert reasons[3] == "match (ordered)"  # ordered case, float instead of numeric
    assert reasons[9] == "match (within tolerance)"  # round(avg, 2)
    assert data["mode"] == "candidates" and data["filters"]["db"] == [SMALL]


def test_bad_candidates_score_less(eval_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = eval_env / "report.json"
    code, summary = _run_eval(
        capsys,
        "--candidates",
        str(GOLDEN / "candidates_bad.jsonl"),
        "--db",
        SMALL,
        "--level",
        "simple",
        "--level",
        "Medium",
        "--report",
        str(report),
        "--json",
    )
    assert code == 0  # a measurement, not a failure
    cases = {c["id"]: c for c in json.loads(report.read_text(encoding="utf-8"))["cases"]}
    assert set(cases) == set(range(1, 13))  # simple + medium of the small database
    assert cases[1]["status"] == "correct"
    assert cases[2]["status"] == "mismatch"  # wrong filter
    assert cases[3]["status"] == "mismatch" and "row 1 differs" in cases[3]["reason"]  # wrong order
    assert cases[5]["status"] == "error" and "NOT_READ_ONLY" in cases[5]["reason"]
    assert cases[7]["reason"] == "mismatch: 14 rows vs 15 expected"  # a missing row
    assert cases[9]["status"] == "mismatch"  # wrong aggregate
    assert cases[11]["status"] == "error" and "UNKNOWN_OBJECT" in cases[11]["reason"]
    assert cases[12]["status"] == "mismatch"  # inner join drops customers without orders
    assert cases[4]["status"] == "missing"
    assert summary["correct"] == 1 and summary["total"] == 12 and summary["accuracy"] < 1
    assert summary["by_level"]["simple"]["correct"] == 1


def test_text_output_and_usage_errors(eval_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cand = _write_jsonl(
        eval_env / "c.jsonl",
        [{"id": 2, "sql": "SELECT count(*) FROM orders WHERE status = 'cancelled'"}],
    )
    assert (
        cli.main(
            [
                "eval",
                "--queries",
                str(QUERIES),
                "--candidates",
                str(cand),
                "--db",
                SMALL,
                "--level",
                "simple",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "db_pg_mcp_small" in out
        and "execution accuracy: 16.7% (1/6)" in out
        and "report: eval-report.json" in out
    )
    assert (eval_env / "eval-report.json").is_file()

    bad = eval_env / "bad.jsonl"
    bad.write_text('{"id": 2, "sql": "SELECT 1"}\nnot json\n', encoding="utf-8")
    assert cli.main(["eval", "--queries", str(QUERIES), "--candidates", str(bad), "--json"]) == 1
    err = json.loads(capsys.readouterr().out)
    assert err["code"] == "CONFIG_ERROR" and "bad.jsonl:2" in err["message"]

    assert (
        cli.main(["eval", "--queries", str(QUERIES), "--candidates", str(eval_env / "nope.jsonl")])
        == 1
    )
    assert (
        cli.main(["eval", "--queries", str(QUERIES), "--candidates", str(cand), "--level", "hard"])
        == 1
    )
    assert (
        cli.main(["eval", "--queries", str(eval_env / "missing.md"), "--candidates", str(cand)])
        == 1
    )
    # without --candidates, ask is scored: it needs a model endpoint
    assert cli.main(["eval", "--queries", str(QUERIES), "--db", SMALL, "--json"]) == 1
    assert (
        json.loads(capsys.readouterr().out.strip().splitlines()[-1])["code"] == "LLM_NOT_CONFIGURED"
    )


def test_ask_mode_end_to_end_with_a_stand_in_model(
    eval_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    model: StandinModel,
) -> None:
    """Mode (a): the real Asker and openai client against a local Chat Completions server."""
    cases = {
        c.id: c for c in load_test_queries(QUERIES) if c.database == SMALL and c.level == "simple"
    }
    answers = {c.question: c.sql for c in cases.values()}
    answers[cases[4].question] = "SELECT count(*) FROM customers"  # a plausible but wrong answer

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        if is_judge_request(body):
            return judge(9, "answers the question")
        text = message_text(body)
        sql = next((s for q, s in answers.items() if q in text), "SELECT 1")
        return gen(sql, tables=["public.customers"])

    model.default = reply
    monkeypatch.setenv("OPENAI_BASE_URL", model.base_url)
    monkeypatch.setenv("OPENAI_MODEL", "standin-1")
    report = eval_env / "ask.json"
    code, summary = _run_eval(
        capsys, "--db", SMALL, "--level", "simple", "--report", str(report), "--json"
    )
    assert code == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    by_id = {c["id"]: c for c in data["cases"]}
    assert data["mode"] == "ask" and data["model"] == "standin-1"
    assert set(by_id) == set(cases)
    assert by_id[4]["status"] == "mismatch"
    assert all(by_id[i]["correct"] for i in cases if i != 4), [
        (i, c["reason"]) for i, c in by_id.items()
    ]
    assert summary["correct"] == len(cases) - 1
    assert (
        summary["mean_attempts"] == 1
        and summary["mean_tokens"] > 0
        and summary["mean_latency_ms"] > 0
    )
    assert all(c["score"] == 9 for c in data["cases"])
