"""The model client against the stand-in model: retries, deadline, breaker, parsing, secrets."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pg_mcp.ask.llm import LLM, CircuitBreaker, parse_reply, retry_after_seconds
from pg_mcp.ask.prompts import JUDGE_SCHEMA, GenerationReply, JudgeReply, generation_schema
from pg_mcp.ask.ratelimit import TokenBucket
from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings
from standin_model import StandinModel, free_port, gen, judge, standin_fixture, status  # noqa: F401

SECRET = "sk-test-PGMCP-TOPSECRET-4f9a2c7e1b"
MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "how many films?"}]


def make_llm(base_url: str, **kw: object) -> LLM:
    settings_kw = {
        k: kw.pop(k)
        for k in list(kw)
        if k in ("llm_deadline", "llm_timeout", "llm_max_retries", "openai_api_key")
    }
    settings = Settings(
        openai_base_url=base_url,
        openai_api_key=settings_kw.pop("openai_api_key", SECRET),
        model="standin-1",
        llm_deadline=float(settings_kw.get("llm_deadline", 10.0)),
        llm_timeout=float(settings_kw.get("llm_timeout", 5.0)),
        llm_max_retries=int(settings_kw.get("llm_max_retries", 3)),
    )
    return LLM(settings, **kw)  # type: ignore[arg-type]


def call(llm: LLM, schema: dict | None = None, **kw: object):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        try:
            return await llm.complete_json(
                MSGS,
                name="sql_query",
                schema=schema or generation_schema(),
                reply=JudgeReply if schema is JUDGE_SCHEMA else GenerationReply,
                **kw,
            )  # type: ignore[arg-type]
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_structured_output_request_and_usage(standin: StandinModel) -> None:
    standin.script = [gen("SELECT 1", tables=["public.t"])]
    c = call(make_llm(standin.base_url))
    assert c.data == {"tables": ["public.t"], "sql": "SELECT 1", "explanation": "stand-in answer"}
    assert c.error is None and c.usage.total > 0 and c.requests == 1
    body = standin.requests[0]
    assert body["model"] == "standin-1"
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"]["properties"]["sql"]["type"] == "string"
    assert set(rf["json_schema"]["schema"]["required"]) == {"sql", "explanation", "tables"}
    assert standin.headers[0]["authorization"] == f"Bearer {SECRET}"
    assert standin.paths[0] == "/v1/chat/completions"


def test_judge_schema_is_integer_score() -> None:
    assert JUDGE_SCHEMA["properties"]["score"]["type"] == "integer"
    assert "reasoning" in JUDGE_SCHEMA["required"] and JUDGE_SCHEMA["additionalProperties"] is False
    assert "database" in generation_schema(["a", "b"])["properties"]


def test_base_url_without_key_uses_dummy_key(standin: StandinModel) -> None:
    standin.script = [judge(8)]
    llm = LLM(Settings(openai_base_url=standin.base_url, model="m"))
    c = call(llm, JUDGE_SCHEMA)
    assert c.data == {"reasoning": "looks right", "score": 8}
    assert standin.headers[0]["authorization"] == "Bearer not-needed"


def test_not_configured() -> None:
    llm = LLM(Settings())
    with pytest.raises(PgMcpError) as e:
        call(llm)
    assert e.value.code == "LLM_NOT_CONFIGURED"


def test_unversioned_base_url_path_is_tolerated(standin: StandinModel) -> None:
    standin.script = [judge(7)]
    c = call(make_llm(standin.base_url.removesuffix("/v1")), JUDGE_SCHEMA)
    assert c.data is not None and standin.paths == ["/chat/completions"]


@pytest.mark.parametrize(
    "content, problem",
    [
        ("this is not json", "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('{"sql": "SELECT 1"}', "lacks the required property"),
        ('{"tables": [], "sql": 5, "explanation": ""}', "should be of type string"),
        ("", "empty"),
    ],
)
def test_unusable_replies_are_returned_not_raised(
    standin: StandinModel, content: str, problem: str
) -> None:
    standin.script = [{"content": content}]
    c = call(make_llm(standin.base_url))
    assert c.data is None and c.error is not None and problem in c.error


def test_code_fenced_json_is_accepted() -> None:
    data, err = parse_reply(
        '```json\n{"score": 9, "reasoning": "ok"}\n```', JudgeReply, JUDGE_SCHEMA
    )
    assert err is None and data == {"score": 9, "reasoning": "ok"}


def test_429_then_500_then_success(standin: StandinModel) -> None:
    standin.script = [
        status(
            429, {"Retry-After": "0"}, {"error": {"message": "slow down", "type": "rate_limit"}}
        ),
        status(500),
        status(503, {"retry-after-ms": "10"}),
        judge(9),
    ]
    c = call(make_llm(standin.base_url), JUDGE_SCHEMA)
    assert c.data is not None and c.data["score"] == 9
    assert c.requests == 4 and len(standin.requests) == 4
    # the SDK's own retries made them
    assert [h["x-stainless-retry-count"] for h in standin.headers] == ["0", "1", "2", "3"]


@pytest.mark.timeout(60)
def test_retry_after_is_honoured_and_capped(
    standin: StandinModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="openai")
    standin.script = [status(429, {"Retry-After": "0.3"}), judge(9)]
    assert call(make_llm(standin.base_url), JUDGE_SCHEMA).data is not None
    assert "Retrying request in 0.300000 seconds" in caplog.text  # the SDK waited as told
    # a Retry-After past the deadline is not waited for: it fails now, with the status
    standin.script = [status(429, {"Retry-After": "100"}), judge(9)]
    with pytest.raises(PgMcpError) as e:
        call(make_llm(standin.base_url), JUDGE_SCHEMA)
    assert e.value.code == "LLM_ERROR" and "HTTP 429" in e.value.message
    assert "would pass the deadline" in e.value.message and len(standin.requests) == 3


def test_retry_after_header_parsing() -> None:
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"retry-after": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_retries_exhausted_gives_llm_error(standin: StandinModel) -> None:
    standin.default = status(502)
    with pytest.raises(PgMcpError) as e:
        call(make_llm(standin.base_url, llm_max_retries=2))
    assert e.value.code == "LLM_ERROR" and "HTTP 502" in e.value.message
    assert len(standin.requests) == 3


def test_client_errors_are_not_retried(standin: StandinModel) -> None:
    standin.default = status(404, body={"error": {"message": "model 'x' not found"}})
    with pytest.raises(PgMcpError) as e:
        call(make_llm(standin.base_url))
    assert e.value.code == "LLM_ERROR" and "404" in e.value.message and e.value.hint
    assert len(standin.requests) == 1


def test_json_schema_refused_falls_back_to_json_object(standin: StandinModel) -> None:
    standin.script = [
        status(
            400, body={"error": {"message": "response_format type json_schema is not supported"}}
        ),
        judge(8),
    ]
    llm = make_llm(standin.base_url)
    c = call(llm, JUDGE_SCHEMA)
    assert c.data is not None
    assert standin.requests[1]["response_format"] == {"type": "json_object"}
    assert "JSON Schema" in standin.requests[1]["messages"][-1]["content"]


@pytest.mark.timeout(30)  # a hang guard: the deadline ends it (3 s)
def test_dead_endpoint_gives_llm_error_within_deadline() -> None:
    # one retry (the SDK's backoff is ~0.5-1 s) against a deadline far beyond it, so a loaded
    # machine cannot turn the refused connection into LLM_TIMEOUT: no wall-time race
    llm = make_llm(f"http://127.0.0.1:{free_port()}/v1", llm_deadline=30.0, llm_max_retries=1)
    with pytest.raises(PgMcpError) as e:
        call(llm)
    assert e.value.code == "LLM_ERROR" and "cannot reach" in e.value.message


def test_dropped_connections_are_retried(standin: StandinModel) -> None:
    standin.script = [{"drop": True}, judge(10)]
    c = call(make_llm(standin.base_url), JUDGE_SCHEMA)
    assert c.data is not None and c.requests == 2


@pytest.mark.timeout(30)  # a hang guard: the deadline ends it (1.2 s)
def test_slower_than_deadline_gives_llm_timeout(standin: StandinModel) -> None:
    standin.default = {"delay": 5.0, "content": {"reasoning": "late", "score": 9}}
    # the SDK's first backoff is 0.375-0.5 s: a second request fits in 1.2 s
    llm = make_llm(standin.base_url, llm_deadline=1.2, llm_timeout=0.25)
    with pytest.raises(PgMcpError) as e:
        call(llm, JUDGE_SCHEMA)
    assert e.value.code == "LLM_TIMEOUT"
    assert len(standin.requests) >= 2  # the per-request timeout let it retry inside the deadline


@pytest.mark.timeout(30)  # a hang guard: the deadline (0.4 s) ends it, not the 5 s reply
def test_per_call_deadline_caps_a_single_slow_request(standin: StandinModel) -> None:
    standin.default = {"delay": 5.0, "content": {"reasoning": "late", "score": 9}}
    llm = make_llm(standin.base_url, llm_deadline=0.4, llm_timeout=60)
    with pytest.raises(PgMcpError) as e:
        call(llm, JUDGE_SCHEMA)
    assert e.value.code == "LLM_TIMEOUT" and len(standin.requests) == 1


def test_circuit_breaker_opens_then_half_opens(standin: StandinModel) -> None:
    standin.default = status(500)
    now = [0.0]
    llm = make_llm(
        standin.base_url,
        llm_max_retries=0,
        breaker_threshold=3,
        breaker_cooldown=0.3,
        clock=lambda: now[0],
    )
    for _ in range(3):
        with pytest.raises(PgMcpError) as e:
            call(llm)
        assert e.value.code == "LLM_ERROR" and "HTTP 500" in e.value.message
    assert llm.breaker.state == "open"
    with pytest.raises(PgMcpError) as e:
        call(llm)
    assert (
        e.value.code == "LLM_ERROR"
        and "circuit open" in e.value.message
        and "retry in" in (e.value.hint or "")
    )
    assert len(standin.requests) == 3  # failed fast: no request went out
    now[0] += 0.35  # the cooldown passes
    assert llm.breaker.state == "half-open"
    standin.script = [judge(9)]
    assert call(llm, JUDGE_SCHEMA).data is not None
    assert llm.breaker.state == "closed"


def test_breaker_failed_probe_reopens() -> None:
    now = [0.0]
    b = CircuitBreaker(2, 10.0, clock=lambda: now[0])
    b.failure()
    assert b.allow()
    b.failure()
    assert not b.allow() and b.state == "open"
    now[0] = 10.5
    assert b.allow() and not b.allow()  # one probe at a time
    b.failure()
    assert b.state == "open"
    now[0] = 21.0
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def test_a_cancelled_half_open_probe_releases_the_breaker(standin: StandinModel) -> None:
    """The half-open probe is cancelled mid-request (a client went away, ask's deadline): the
    breaker must not stay open for good; the next call probes and closes it."""
    now = [0.0]
    llm = make_llm(standin.base_url, llm_max_retries=0)
    llm.breaker = CircuitBreaker(1, 30.0, clock=lambda: now[0])
    llm.breaker.failure()
    assert llm.breaker.state == "open"
    now[0] = 31.0  # the cooldown is over: the next request is the probe
    arrived = asyncio.Event()

    def slow(body: dict) -> dict:  # type: ignore[type-arg]
        loop.call_soon_threadsafe(arrived.set)
        return {**judge(9), "delay": 5.0}

    standin.script = [slow]

    async def go() -> None:
        probe = asyncio.create_task(llm.complete_json(MSGS, name="judgement", schema=JUDGE_SCHEMA))
        await asyncio.wait_for(arrived.wait(), 10)  # the probe is in flight
        assert llm.breaker.state == "half-open" and not llm.breaker.allow()
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        await llm.aclose()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(go())
    finally:
        loop.close()
    assert llm.breaker.state == "half-open"  # released: neither opened again nor stuck
    standin.script = [judge(9)]
    assert call(llm, JUDGE_SCHEMA).data is not None
    assert llm.breaker.state == "closed"


def test_breaker_report_releases_the_probe_whatever_the_outcome() -> None:
    now = [0.0]
    b = CircuitBreaker(1, 10.0, clock=lambda: now[0])
    for outcome, state in (("neutral", "half-open"), ("failure", "open"), ("success", "closed")):
        b.failure()
        now[0] += 11.0
        assert b.allow() and not b.allow()  # the probe holds the slot
        b.report(outcome)
        assert b.state == state
        if state == "half-open":
            assert b.allow()  # a new probe may go
            b.report("neutral")
        now[0] += 11.0


def test_429s_do_not_trip_the_breaker(standin: StandinModel) -> None:
    standin.default = status(429, {"Retry-After": "0.01"})  # (0: the SDK's own backoff)
    llm = make_llm(standin.base_url, llm_max_retries=4, breaker_threshold=2)
    with pytest.raises(PgMcpError) as e:
        call(llm)
    assert e.value.code == "LLM_ERROR" and "429" in e.value.message
    assert llm.breaker.state == "closed" and len(standin.requests) == 5


def test_api_key_never_in_errors_or_logs(
    standin: StandinModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {
        "error": {"message": f"Incorrect API key provided: {SECRET}. Header was Bearer {SECRET}"}
    }
    texts: list[str] = []
    for item in (status(401, body=echo), status(500, body=echo)):
        standin.script = [item]
        with pytest.raises(PgMcpError) as e:
            call(make_llm(standin.base_url, llm_max_retries=0))
        texts += [str(e.value), e.value.message, e.value.hint or "", repr(e.value.to_dict())]
    assert "401" in texts[0]
    standin.script = [{"content": f"not json {SECRET}"}]
    c = call(make_llm(standin.base_url))
    texts.append(c.error or "")
    blob = "\n".join(texts) + caplog.text
    assert SECRET not in blob
    assert "TOPSECRET" not in blob


def test_token_bucket() -> None:
    now = [0.0]
    b = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [b.try_acquire()[0] for _ in range(4)] == [True, True, True, False]
    ok, wait = b.try_acquire()
    assert not ok and wait == pytest.approx(0.5)
    now[0] = 0.5
    assert b.try_acquire()[0]
    now[0] = 100
    assert b.available() == 3
    assert TokenBucket(rate=0, burst=1).try_acquire() == (True, 0.0)
