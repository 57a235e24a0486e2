"""The ask loop end to end: real PostgreSQL, real validator/executor/cache, real openai client
talking to the stand-in model over HTTP."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import scratch_database
from pg_mcp.ask.llm import LLM
from pg_mcp.ask.loop import Asker
from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings
from standin_model import (  # noqa: F401
    StandinModel,
    free_port,
    gen,
    is_judge_request,
    judge,
    message_text,
    standin_fixture,
    status,
)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-test-PGMCP-ASK-SECRET-8d1f0e93a7"
QUESTION = "How many products are in each category?"
GOOD = (
    "SELECT c.name AS category, count(*) AS products FROM public.products p "
    "JOIN public.categories c ON c.category_id = p.category_id GROUP BY c.name ORDER BY products DESC, category"
)
OTHER = "SELECT count(*) AS products FROM public.products"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ask_db(pg_dsn: str) -> Iterator[str]:
    """db_pg_mcp_small when loaded, else a scratch database with the two tables the tests use."""
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        small = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'db_pg_mcp_small'"
        ).fetchone()
    if small:
        yield "db_pg_mcp_small"
        return
    setup = """
                CREATE TABLE categories (category_id smallint PRIMARY KEY, parent_id smallint
                  REFERENCES categories, name text NOT NULL);
                COMMENT ON TABLE categories IS 'Product categories';
                CREATE TABLE products (product_id integer PRIMARY KEY, name text NOT NULL,
                  category_id smallint NOT NULL REFERENCES categories, price numeric(12,2) NOT NULL,
                  is_active boolean NOT NULL DEFAULT true);
                COMMENT ON TABLE products IS 'Catalogue of products for sale';
                INSERT INTO categories VALUES (1, NULL, 'Kitchen'), (2, NULL, 'Garden'), (3, 1, 'Cookware');
                INSERT INTO products SELECT g, 'product ' || g, 1 + g % 3, 10 + g, g % 5 <> 0
                  FROM generate_series(1, 30) g;
                ANALYZE;
                """
    with scratch_database(pg_dsn, setup, "ask") as name:
        yield name


@pytest.fixture(scope="module")
def base(
    pg_dsn: str, reader_dsn: str, ask_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    home = tmp_path_factory.mktemp("ask-home")
    return Settings(dsn=reader_dsn, home=home, include=(ask_db,))


@pytest.fixture(scope="module")
def cache(base: Settings) -> Any:
    from pg_mcp.db.cache import SchemaCache

    return SchemaCache(base)


def make_asker(base: Settings, url: str, cache: Any, metrics: Any = None, **changes: Any) -> Asker:
    s = base.with_(
        openai_base_url=url,
        openai_api_key=SECRET,
        model="standin-1",
        llm_deadline=changes.pop("llm_deadline", 20.0),
        llm_timeout=changes.pop("llm_timeout", 10.0),
        **changes,
    )
    return Asker(s, cache=cache, metrics=metrics, client=LLM(s))


def auto_model(sql: str = GOOD, score: int = 9) -> Any:
    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return (
            judge(score, "answers the question")
            if is_judge_request(body)
            else gen(sql, "products per category", ["public.products", "public.categories"])
        )

    return answer


# --------------------------------------------------------------------------- the loop
def test_errors_are_fed_back_until_it_answers(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.script = [
        gen("SELEC c.name FROM public.categories c"),
        gen("DELETE FROM public.products"),
        gen(GOOD, "Counts products per category.", ["public.products", "public.categories"]),
        judge(9, "groups by category and counts products"),
    ]
    answer = make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)
    assert answer["attempts"] == 3 and answer["score"] == 9 and answer["low_confidence"] is False
    assert (
        answer["sql"] == GOOD and answer["database"] == ask_db and "database_chosen" not in answer
    )
    assert answer["explanation"] == "Counts products per category."
    assert answer["reasoning"] == "groups by category and counts products"
    res = answer["result"]
    assert [c["name"] for c in res["columns"]] == ["category", "products"]
    assert res["row_count"] == len(res["rows"]) > 0 and res["truncated"] is False
    assert [h["code"] for h in answer["history"][:2]] == ["PARSE_ERROR", "NOT_READ_ONLY"]
    # what went back to the model
    assert len(standin.requests) == 4
    second, third, judged = (message_text(b) for b in standin.requests[1:])
    assert "PARSE_ERROR" in second and "Attempt 1 failed" in second
    assert "NOT_READ_ONLY" in third and "PARSE_ERROR" in third
    assert QUESTION in judged and GOOD in judged and "row(s)" in judged
    assert is_judge_request(standin.requests[3])
    assert standin.requests[0]["response_format"]["json_schema"]["name"] == "sql_query"
    # tokens and context
    t = answer["tokens"]
    assert t["total"] == t["prompt"] + t["completion"] > 0
    assert (
        answer["context"]["prompt_tokens"] > 0 and "public.products" in answer["context"]["tables"]
    )
    assert answer["elapsed_ms"] > 0


def test_database_error_is_fed_back(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.script = [
        gen("SELECT 1 / (count(*) - count(*)) AS x FROM public.products"),
        gen(GOOD),
        judge(8),
    ]
    answer = make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)
    assert answer["attempts"] == 2 and answer["score"] == 8
    fed = message_text(standin.requests[1])
    assert "PostgreSQL reported" in fed and "22012" in fed and "division by zero" in fed


def test_low_score_triggers_regeneration(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    reason = "counts all products instead of grouping them by category"
    standin.script = [gen(OTHER), judge(3, reason), gen(GOOD), judge(9)]
    answer = make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)
    assert answer["attempts"] == 2 and answer["sql"] == GOOD and not answer["low_confidence"]
    fed = message_text(standin.requests[2])
    assert reason in fed and "3/10" in fed
    assert [h["outcome"] for h in answer["history"]] == ["low_score", "ok"]


def test_best_attempt_is_returned_low_confidence(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.script = [gen(GOOD), judge(5, "close"), gen(OTHER), judge(2, "worse")]
    answer = make_asker(base, standin.base_url, cache, max_attempts=2).ask_sync(QUESTION, ask_db)
    assert answer["low_confidence"] is True and answer["attempts"] == 2
    assert answer["sql"] == GOOD and answer["score"] == 5 and answer["reasoning"] == "close"
    assert answer["result"]["row_count"] > 0


def test_no_attempt_ran_gives_no_answer(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.script = [
        gen("DROP TABLE public.products"),
        {"content": "I cannot help"},
        gen("SELECT 1; SELECT 2"),
    ]
    with pytest.raises(PgMcpError) as e:
        make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)
    err = e.value
    assert err.code == "NO_ANSWER" and "3 attempt(s)" in err.message
    assert err.details["attempts"] == 3 and len(err.details["history"]) == 3
    assert err.details["history"][1]["code"] == "LLM_ERROR"  # the unusable reply
    assert "not valid JSON" in message_text(standin.requests[2])
    assert err.details["tokens"]["total"] > 0


def test_model_retries_inside_ask(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.script = [
        status(429, {"Retry-After": "0"}),
        status(500),
        gen(GOOD),
        status(503, {"retry-after-ms": "5"}),
        judge(10),
    ]
    answer = make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)
    assert answer["score"] == 10 and answer["attempts"] == 1 and len(standin.requests) == 5


def test_ask_uses_the_discovery_it_is_given_once_for_every_call(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    """The server hands ask its own discovery: asks do not list the databases again (a new
    connection and pg_database_size over all of them each time), named or not."""
    from pg_mcp.db.discovery import Discovery
    from pg_mcp.server.app import ServerState

    discoveries: list[int] = []
    discovery = Discovery(base, before=lambda: discoveries.append(1))
    standin.default = auto_model()
    s = base.with_(openai_base_url=standin.base_url, openai_api_key=SECRET, model="standin-1")
    asker = Asker(s, cache=cache, client=LLM(s), discovery=discovery)
    assert asker.ask_sync(QUESTION, ask_db)["database"] == ask_db
    assert asker.ask_sync(QUESTION)["database"] == ask_db  # the only reachable one
    assert asker.ask_sync(QUESTION, ask_db)["score"] == 9
    assert discoveries == [1]
    with pytest.raises(PgMcpError) as e:  # an unknown name is looked up once more, then refused
        asker.ask_sync(QUESTION, "no_such_db")
    assert e.value.code == "UNKNOWN_DATABASE" and discoveries == [1, 1]
    # the server's state: one discovery object, the asker's too
    from pg_mcp.core.secrets import Redactor
    from pg_mcp.server.metrics import Metrics

    state = ServerState(settings=s, metrics=Metrics(), redact=Redactor(()), warm_up=False)
    try:
        assert state.asker_sync().discovery is state.discovery()
    finally:
        state.close_sync()


@pytest.mark.timeout(60)  # a hang guard: the deadline (3 s) ends it
def test_dead_endpoint_gives_llm_error_within_deadline(
    base: Settings, cache: Any, ask_db: str
) -> None:
    asker = make_asker(base, f"http://127.0.0.1:{free_port()}/v1", cache, llm_deadline=3.0)
    with pytest.raises(PgMcpError) as e:
        asker.ask_sync(QUESTION, ask_db)
    assert e.value.code == "LLM_ERROR" and "cannot reach" in e.value.message


@pytest.mark.timeout(60)  # a hang guard: the deadline (0.8 s) ends it, not the 5 s reply
def test_slower_than_deadline_gives_llm_timeout(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.default = {"delay": 5.0, **gen(GOOD)}
    asker = make_asker(base, standin.base_url, cache, llm_deadline=0.8, llm_timeout=0.5)
    with pytest.raises(PgMcpError) as e:
        asker.ask_sync(QUESTION, ask_db)
    assert e.value.code == "LLM_TIMEOUT"


def test_model_failure_after_a_run_returns_that_attempt(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.script = [gen(GOOD)]
    standin.default = status(500)
    s = base.with_(openai_base_url=standin.base_url, openai_api_key=SECRET, llm_max_retries=1)
    asker = Asker(s, cache=cache, client=LLM(s))
    answer = asker.ask_sync(QUESTION, ask_db)
    assert answer["low_confidence"] is True and answer["score"] is None and answer["sql"] == GOOD
    assert answer["warning"].startswith("LLM_ERROR") and answer["result"]["row_count"] > 0


def test_circuit_breaker_fails_fast_across_asks(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.default = status(500)
    s = base.with_(openai_base_url=standin.base_url, openai_api_key=SECRET, llm_max_retries=1)
    asker = Asker(s, cache=cache, client=LLM(s, breaker_threshold=4, breaker_cooldown=60))
    for _ in range(2):
        with pytest.raises(PgMcpError) as e:
            asker.ask_sync(QUESTION, ask_db)
        assert e.value.code == "LLM_ERROR" and "HTTP 500" in e.value.message
    with pytest.raises(PgMcpError) as e:
        asker.ask_sync(QUESTION, ask_db)
    assert e.value.code == "LLM_ERROR" and "circuit open" in e.value.message
    assert len(standin.requests) == 4


def test_rate_limit(base: Settings, cache: Any, ask_db: str, standin: StandinModel) -> None:
    standin.default = auto_model()
    asker = make_asker(base, standin.base_url, cache, ask_rate=0.01, ask_burst=2)
    asker.ask_sync(QUESTION, ask_db)
    asker.ask_sync(QUESTION, ask_db)
    n = len(standin.requests)
    with pytest.raises(PgMcpError) as e:
        asker.ask_sync(QUESTION, ask_db)
    assert e.value.code == "RATE_LIMITED" and e.value.hint and e.value.hint.startswith("retry in")
    assert e.value.details["retry_after"] > 0
    assert len(standin.requests) == n  # refused before any model call


def test_return_sql_still_runs_and_judges_without_rows(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.default = auto_model()
    answer = make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db, "sql")
    assert "result" not in answer and answer["sql"] == GOOD and answer["score"] == 9
    assert is_judge_request(standin.requests[-1])
    both = make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db, "both")
    assert both["result"]["row_count"] > 0 and both["sql"] == GOOD


def _sample_literals(cache: Any, ask_db: str) -> set[str]:
    """Every sample value and enum label of the database, as the prompts would write them."""
    from pg_mcp.core.datatext import sql_literal

    schema = cache.get(ask_db)
    return {
        sql_literal(v, 30)
        for t in schema.tables
        for c in t.columns
        for v in (c.samples or []) + (c.enum_labels or [])
        if len(v) >= 4  # short ones ('EUR', 'web') could stand in a comment or the SQL
    }


def test_send_rows_false_gives_the_judge_columns_and_count_only(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.default = auto_model()
    answer = make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)
    rows = answer["result"]["rows"]
    judged = message_text(next(b for b in standin.requests if is_judge_request(b)))
    assert json.dumps(rows[0], ensure_ascii=False) in judged  # the default sends the rows
    standin.requests.clear()
    asker = make_asker(base, standin.base_url, cache, ask_send_rows=False)
    answer = asker.ask_sync(QUESTION, ask_db)
    assert answer["result"]["rows"] == rows  # the caller still gets them: only the model does not
    judged = message_text(next(b for b in standin.requests if is_judge_request(b)))
    assert f"Result: {len(rows)} row(s)" in judged
    assert '"category" (text)' in judged and '"products" (bigint)' in judged
    assert "the rows are not shown" in judged
    for row in rows:
        assert json.dumps(row, ensure_ascii=False) not in judged
        assert f'"{row[0]}"' not in judged  # no cell, however it is written


def test_send_samples_false_keeps_samples_and_enum_labels_out_of_the_prompts(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    literals = _sample_literals(cache, ask_db)
    assert literals
    standin.default = auto_model()
    make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)
    sent = "\n".join(message_text(b) for b in standin.requests)
    assert any(lit in sent for lit in literals)  # by default the context carries them
    standin.requests.clear()
    make_asker(base, standin.base_url, cache, ask_send_samples=False).ask_sync(QUESTION, ask_db)
    assert len(standin.requests) == 2
    for body in standin.requests:  # generation and judge (its "Tables used" too)
        text = message_text(body)
        leaked = sorted(lit for lit in literals if lit in text)
        assert not leaked, leaked
        assert "e.g. '" not in text and "values: '" not in text


def test_send_rows_and_samples_from_the_configuration(tmp_path: Path) -> None:
    from pg_mcp.core.settings import load_settings

    config = tmp_path / "pg-mcp.toml"
    config.write_text("[ask]\nsend_rows = false\nsend_samples = false\n", encoding="utf-8")
    s = load_settings(env={}, config_path=config)
    assert s.ask_send_rows is False and s.ask_send_samples is False
    s = load_settings(env={"PG_MCP_ASK_SEND_ROWS": "false"}, config_path=None)
    assert s.ask_send_rows is False and s.ask_send_samples is True
    s = load_settings(env={}, config_path=None)
    assert s.ask_send_rows is True and s.ask_send_samples is True


def test_bad_arguments(base: Settings, cache: Any, ask_db: str, standin: StandinModel) -> None:
    asker = make_asker(base, standin.base_url, cache)
    for q, rt, code in (("  ", "result", "EMPTY"), (QUESTION, "rows", "CONFIG_ERROR")):
        with pytest.raises(PgMcpError) as e:
            asker.ask_sync(q, ask_db, rt)
        assert e.value.code == code
    with pytest.raises(PgMcpError) as e:
        asker.ask_sync(QUESTION, "no_such_database_xyz")
    assert e.value.code == "UNKNOWN_DATABASE"
    with pytest.raises(PgMcpError) as e:
        Asker(base, cache=cache).ask_sync(QUESTION, ask_db)
    assert e.value.code == "LLM_NOT_CONFIGURED"
    assert standin.requests == []


def test_database_chosen_when_only_one(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    standin.default = auto_model()
    answer = make_asker(base, standin.base_url, cache).ask_sync(QUESTION)
    assert answer["database"] == ask_db and answer["database_chosen"] is True


def test_database_choice_among_several(
    base: Settings, cache: Any, ask_db: str, scratch_db: str, pg_dsn: str, standin: StandinModel
) -> None:
    import psycopg

    from pg_mcp.db.discovery import database_dsn

    with psycopg.connect(database_dsn(pg_dsn, scratch_db), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE weather_readings (reading_id int PRIMARY KEY, station text, temperature numeric);"
            "COMMENT ON TABLE weather_readings IS 'Hourly temperature readings of weather stations'"
        )
    from pg_mcp.db.cache import SchemaCache

    s = base.with_(include=(ask_db, scratch_db))
    cache = SchemaCache(s)
    # a clear winner: chosen by schema relevance, no database property asked of the model
    standin.default = auto_model()
    answer = make_asker(s, standin.base_url, cache).ask_sync(QUESTION)
    assert answer["database"] == ask_db and answer["database_chosen"] is True
    assert (
        "database"
        not in standin.requests[0]["response_format"]["json_schema"]["schema"]["properties"]
    )
    # nothing matches: the model chooses among the candidates, in the same generation call
    standin.requests.clear()
    standin.default = None
    standin.script = [
        gen("SELECT avg(temperature) AS t FROM public.weather_readings", database=scratch_db),
        judge(8),
    ]
    answer = make_asker(s, standin.base_url, cache).ask_sync("平均气温是多少？")
    assert answer["database"] == scratch_db and answer["database_chosen"] is True
    assert set(answer["database_candidates"]) == {ask_db, scratch_db}
    props = standin.requests[0]["response_format"]["json_schema"]["schema"]["properties"]
    assert set(props["database"]["enum"]) == {ask_db, scratch_db}
    assert "weather_readings" in message_text(standin.requests[0]) and "categories" in message_text(
        standin.requests[0]
    )


def test_unshown_table_schema_is_sent_after_a_rejection(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    # a tiny budget: only the best tables are detailed; a rejected query that names another
    # table brings that table's schema into the feedback
    bad = "SELECT p.no_such_column FROM public.products p JOIN public.categories c USING (category_id)"
    standin.script = [
        gen(bad, tables=["public.products", "public.categories"]),
        gen(GOOD),
        judge(9),
    ]
    asker = make_asker(base, standin.base_url, cache, context_token_budget=120)
    answer = asker.ask_sync("What is the price of each product?", ask_db)
    assert answer["attempts"] == 2
    first, fed = message_text(standin.requests[0]), message_text(standin.requests[1])
    assert "UNKNOWN_OBJECT" in fed
    if "TABLE public.categories" not in first:
        assert "TABLE public.categories" in fed


def test_metrics_receive_tokens(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    from pg_mcp.server.metrics import Metrics

    m = Metrics()
    standin.default = auto_model()
    answer = make_asker(base, standin.base_url, cache, metrics=m).ask_sync(QUESTION, ask_db)
    assert m.tokens("prompt") == answer["tokens"]["prompt"] > 0
    assert m.tokens("completion") == answer["tokens"]["completion"] > 0


def test_api_key_never_appears(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outputs: list[str] = []
    standin.default = auto_model()
    outputs.append(json.dumps(make_asker(base, standin.base_url, cache).ask_sync(QUESTION, ask_db)))
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}"}}
    for item in (status(401, body=echo), status(500, body=echo), {"content": f"oops {SECRET}"}):
        standin.default = item
        try:
            outputs.append(
                json.dumps(
                    make_asker(base, standin.base_url, cache, llm_max_retries=0).ask_sync(
                        QUESTION, ask_db
                    )
                )
            )
        except PgMcpError as exc:
            outputs.append(f"{exc} {exc.hint} {json.dumps(exc.to_dict(), default=str)}")
    blob = "\n".join(outputs) + caplog.text
    assert "401" in blob
    assert SECRET not in blob and "ASK-SECRET" not in blob


# --------------------------------------------------------------------------- the CLI
def _cli_env(base: Settings, url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PG_MCP_"))}
    env.update(
        PG_MCP_DSN=str(base.dsn),
        PG_MCP_HOME=str(home),
        OPENAI_BASE_URL=url,
        OPENAI_API_KEY=SECRET,
        OPENAI_MODEL="standin-1",
        PG_MCP_LLM_DEADLINE="20",
    )
    return env


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pg_mcp.cli.main", "ask", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_ask_end_to_end(
    base: Settings, ask_db: str, standin: StandinModel, tmp_path: Path
) -> None:
    standin.default = auto_model()
    env = _cli_env(base, standin.base_url, tmp_path / "home")
    p = _cli(["--db", ask_db, "--json", QUESTION], env, tmp_path)
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    assert answer["sql"] == GOOD and answer["score"] == 9 and answer["result"]["row_count"] > 0
    assert standin.headers[0]["authorization"] == f"Bearer {SECRET}"

    p = _cli(["--db", ask_db, "--return", "both", QUESTION], env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert GOOD in p.stdout and "category" in p.stdout and "products" in p.stdout
    assert "score: 9/10" in p.stdout and "attempts: 1" in p.stdout

    p = _cli(["--db", ask_db, "--return", "sql", "--json", QUESTION], env, tmp_path)
    assert p.returncode == 0 and "result" not in json.loads(p.stdout)

    standin.default = status(401, body={"error": {"message": f"bad key {SECRET}"}})
    p = _cli(["--db", ask_db, "--json", QUESTION], env, tmp_path)
    assert p.returncode == 1
    err = json.loads(p.stdout)
    assert err["code"] == "LLM_ERROR" and "401" in err["message"]
    p2 = _cli(["--db", ask_db, QUESTION], env, tmp_path)
    assert p2.returncode == 1 and "error LLM_ERROR" in p2.stderr
    for out in (p.stdout, p.stderr, p2.stdout, p2.stderr):
        assert SECRET not in out

    env.pop("OPENAI_BASE_URL")
    env.pop("OPENAI_API_KEY")
    p = _cli(["--db", ask_db, "--json", QUESTION], env, tmp_path)
    assert p.returncode == 1 and json.loads(p.stdout)["code"] == "LLM_NOT_CONFIGURED"


def test_one_asker_serves_concurrent_calls(
    base: Settings, cache: Any, ask_db: str, standin: StandinModel
) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    standin.default = auto_model()
    asker = make_asker(base, standin.base_url, cache, ask_burst=20)

    async def three() -> list[dict[str, Any]]:
        try:
            return await asyncio.gather(*(asker.ask(QUESTION, ask_db) for _ in range(3)))
        finally:
            await asker.aclose()

    assert all(a["score"] == 9 for a in asyncio.run(three()))
    with ThreadPoolExecutor(3) as pool:  # blocking callers on several threads at once
        answers = list(pool.map(lambda _: asker.ask_sync(QUESTION, ask_db), range(3)))
    assert all(a["sql"] == GOOD for a in answers)
    assert len(standin.requests) == 12
