"""The model client: Chat Completions with structured outputs, on any OpenAI-compatible endpoint.

The openai SDK retries (``max_retries`` = ``settings.llm_max_retries``): 408/409/429/5xx,
connection errors and timeouts, with its exponential backoff and jitter, honouring
``retry-after-ms`` / ``Retry-After``. On top of it, ours:

* one deadline across the call and all its retries (``deadline``, absolute
  ``time.monotonic()``; default now + ``settings.llm_deadline``), each request limited to
  ``min(settings.llm_timeout, time left)``;
* a circuit breaker: after ``breaker_threshold`` consecutive failed requests (connection
  error, timeout, 5xx; counted when the call ends, the SDK's retries included) it opens for
  ``breaker_cooldown`` seconds and calls fail fast with LLM_ERROR "circuit open"; then one
  probe call is let through (half-open): success closes it, failure opens it again;
* errors are PgMcpError LLM_ERROR / LLM_TIMEOUT / LLM_NOT_CONFIGURED whose text
  is scrubbed of the API key (and anything shaped like one).

A reply that is not the JSON object the schema asks for is not an exception: it is checked
with a pydantic model (``prompts.REPLY_MODELS``) and comes back as
``Completion(data=None, error=...)`` so the ask loop can feed the problem back to the model
as a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from pg_mcp.ask.prompts import REPLY_MODELS
from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.secrets import Redactor
from pg_mcp.core.settings import Settings

log = logging.getLogger("pg_mcp.ask.llm")

DUMMY_KEY = "not-needed"
_KEY_SHAPED = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,})")


# --------------------------------------------------------------------------- data
@dataclass
class Usage:
    prompt: int = 0
    completion: int = 0
    total: int = 0

    def add(self, other: Usage) -> None:
        self.prompt += other.prompt
        self.completion += other.completion
        self.total += other.total

    def to_dict(self) -> dict[str, int]:
        return {"prompt": self.prompt, "completion": self.completion, "total": self.total}


@dataclass
class Completion:
    """One answered model call. ``data`` is the parsed JSON object, or None with ``error`` set."""

    data: dict[str, Any] | None
    raw: str
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    requests: int = 1  # HTTP requests it took (1 + the SDK's retries)
    elapsed: float = 0.0


@dataclass
class _Tally:
    """What the HTTP requests of one call did (the SDK retries inside one ``create``)."""

    deadline: float = float("inf")  # time.monotonic() of the call's deadline
    requests: int = 0
    failed: int = 0  # requests that failed in a way that tells of ill health (timeout, 5xx, ...)
    in_flight: bool = False
    status: int | None = None  # of the last answered request
    failure: str | None = None  # the last transport failure ("timeout" or an exception name)

    def problem(self, per_request: float) -> str:
        if self.in_flight or self.failure == "timeout":
            return f"no answer within {per_request:.1f} s"
        if self.failure:
            return f"cannot reach the model endpoint ({self.failure})"
        if self.status is not None:
            return f"HTTP {self.status}"
        return "no request was made"


class _PastDeadline(Exception):
    """A retryable answer whose Retry-After ends after the call's deadline: not worth waiting."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status, self.detail = status, detail


RETRYABLE_STATUS = frozenset({408, 409, 429})


# ------------------------------------------------------------------- circuit breaker
class CircuitBreaker:
    """Closed -> (threshold consecutive failures) -> open -> (cooldown) -> half-open -> ..."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = max(1, int(threshold))
        self.cooldown = float(cooldown)
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    def retry_in(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a request go out now? (In half-open state only one probe at a time.)"""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half-open" and not self._probing:
                self._probing = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                self._opened_at = self._clock()
            self._probing = False

    def neutral(self) -> None:
        """The request ended without telling us anything about health (e.g. a 4xx)."""
        with self._lock:
            self._probing = False

    def report(self, outcome: str) -> None:
        """``success``, ``failure`` or ``neutral``: one call per request ``allow`` let out, made
        from a ``finally`` so that a cancelled or crashed half-open probe is released too
        (else the breaker would stay open for good: every later ``allow`` sees a probe)."""
        {"success": self.success, "failure": self.failure}.get(outcome, self.neutral)()


# --------------------------------------------------------------------------- helpers
def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a ``retry-after-ms`` / ``Retry-After`` header asks for (None when absent/invalid)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            if name == "retry-after":
                parsed = email.utils.parsedate_tz(value)
                if parsed is not None:
                    return max(0.0, email.utils.mktime_tz(parsed) - time.time())
            continue
        if seconds != seconds or seconds < 0:  # NaN or negative
            continue
        return seconds
    return None


def _json_body(text: str | None) -> tuple[Any, str | None]:
    """The JSON value of a reply, defensively (code fences, prose around one object)."""
    if text is None or not text.strip():
        return None, "the reply was empty"
    body = text.strip()
    if body.startswith("```"):  # some local models wrap JSON in a code fence
        body = re.sub(r"^```[a-zA-Z0-9_-]*\s*", "", body)
        body = re.sub(r"\s*```$", "", body)
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        start, end = body.find("{"), body.rfind("}")
        if 0 <= start < end:
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(body[start : end + 1]), None
        return None, f"the reply was not valid JSON ({exc.msg} at char {exc.pos})"


def parse_reply(
    text: str | None, reply: type[BaseModel], schema: dict[str, Any] | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """Check a reply against its pydantic model: ``(object, None)`` or ``(None, what was
    wrong)``. The object holds the properties the reply gave (``exclude_unset``); ``schema``
    (the JSON schema sent) only names the expected types in the problem."""
    data, problem = _json_body(text)
    if problem:
        return None, problem
    if not isinstance(data, dict):
        return None, f"the reply was JSON but not an object (got {type(data).__name__})"
    try:
        parsed = reply.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err.get("loc") else "?"
        if err.get("type") == "missing":
            return None, f"the reply lacks the required property {key!r}"
        props = (schema or reply.model_json_schema()).get("properties", {})
        want = props.get(key, {}).get("type") or "the schema's"
        return None, f"property {key!r} should be of type {want}"
    return parsed.model_dump(exclude_unset=True), None


def _watched_client(tally: contextvars.ContextVar[_Tally | None], timeout: float) -> Any:
    """An HTTP client for the SDK that tells the running call's tally about each request
    (``AsyncClient.send`` is the public method the SDK calls once per attempt)."""
    import httpx2

    class WatchedClient(httpx2.AsyncClient):
        async def send(self, request: Any, **kwargs: Any) -> Any:
            t = tally.get()
            if t is None:
                return await super().send(request, **kwargs)
            t.requests += 1
            t.in_flight, t.failure = True, None
            try:  # (cancelled by our deadline: still in flight, as far as the tally goes)
                response = await super().send(request, **kwargs)
            except httpx2.TimeoutException:
                t.in_flight, t.failure = False, "timeout"
                t.failed += 1
                raise
            except Exception as exc:
                t.in_flight, t.failure = False, type(exc).__name__
                t.failed += 1
                raise
            t.in_flight = False
            t.status = status = response.status_code
            if status >= 500:
                t.failed += 1
            if status in RETRYABLE_STATUS or status >= 500:
                wait = retry_after_seconds(response.headers)
                if wait is not None and time.monotonic() + wait >= t.deadline:
                    # the SDK would sleep past our deadline: say so now (an exception that is
                    # not the HTTP client's own passes through the SDK unchanged)
                    body = await response.aread()
                    await response.aclose()
                    raise _PastDeadline(status, _body_detail(body))
            return response

    # the SDK's recommended defaults (openai.DefaultAsyncHttpx2Client), on our subclass
    return WatchedClient(
        timeout=timeout,
        limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
        follow_redirects=True,
    )


# --------------------------------------------------------------------------- client
class LLM:
    """Chat Completions with structured outputs: the SDK's retries, our deadline and breaker."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_retries: int | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self.model = settings.model
        self.max_retries = settings.llm_max_retries if max_retries is None else max_retries
        self.breaker = CircuitBreaker(breaker_threshold, breaker_cooldown, clock=clock)
        self.redact = redactor or Redactor(settings.secrets())
        for s in settings.secrets():
            self.redact.add(s)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._clients_lock = threading.Lock()
        # the requests of the call running in this context (set per call; the HTTP client reads it)
        self._tally: contextvars.ContextVar[_Tally | None] = contextvars.ContextVar(
            "pg_mcp_llm_tally", default=None
        )
        # "json_schema", or "json_object" once the endpoint has refused schemas
        self._json_mode = "json_schema"

    # ---- configuration ------------------------------------------------------
    @property
    def base_url(self) -> str | None:
        return self.settings.openai_base_url or None

    def _api_key(self) -> str:
        key = self.settings.openai_api_key
        if key:
            return key
        if self.base_url:
            return DUMMY_KEY  # local endpoints (Ollama, vLLM, ...) accept any key
        raise PgMcpError(
            "LLM_NOT_CONFIGURED",
            "ask needs a model: set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (a local OpenAI-compatible endpoint)",
            hint="e.g. OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=qwen2.5-coder for Ollama",
        )

    def ensure_configured(self) -> None:
        """Raise LLM_NOT_CONFIGURED when there is neither a key nor a base URL."""
        self._api_key()

    def _scrub(self, text: str) -> str:
        return _KEY_SHAPED.sub("sk-***", self.redact(text))

    def _get_client(self) -> Any:
        """The SDK client of the running event loop (an HTTP client is bound to one loop)."""
        loop = asyncio.get_running_loop()
        with self._clients_lock:
            client = self._clients.get(loop)
            if client is None:
                from openai import AsyncOpenAI

                client = AsyncOpenAI(
                    api_key=self._api_key(),
                    base_url=self.base_url,
                    max_retries=self.max_retries,  # the SDK's retries, Retry-After honoured
                    timeout=self.settings.llm_timeout,
                    http_client=_watched_client(self._tally, self.settings.llm_timeout),
                )
                self._clients[loop] = client
            return client

    async def aclose(self) -> None:
        """Close the running loop's client (call before that loop ends)."""
        with self._clients_lock:
            client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            with contextlib.suppress(Exception):  # closing must never fail a caller
                await client.close()

    def forget_clients(self) -> None:
        """Drop every client without closing it (sync callers; their loops are gone)."""
        with self._clients_lock:
            self._clients.clear()

    # ---- the call -----------------------------------------------------------
    def _response_format(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        if self._json_mode == "json_object":
            return {"type": "json_object"}
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "strict": True, "schema": schema},
        }

    async def complete_json(
        self,
        messages: list[dict[str, str]],
        *,
        name: str,
        schema: dict[str, Any],
        reply: type[BaseModel] | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """One structured-output completion (the SDK retrying) within the deadline.

        ``reply`` is the pydantic model the reply must fit (default: ``REPLY_MODELS[name]``).
        Raises PgMcpError LLM_ERROR / LLM_TIMEOUT / LLM_NOT_CONFIGURED; returns a
        Completion (possibly with ``data=None`` and ``error`` when the reply is unusable).
        """
        import openai

        model = reply or REPLY_MODELS[name]
        client = self._get_client()
        started = time.monotonic()
        deadline = deadline if deadline is not None else started + self.settings.llm_deadline
        tally = _Tally(deadline=deadline)
        token = self._tally.set(tally)
        try:
            while True:  # twice at most: json_schema refused, then json_object
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout_error(started, tally.problem(0.0))
                if not self.breaker.allow():
                    wait = self.breaker.retry_in()
                    raise PgMcpError(
                        "LLM_ERROR",
                        f"circuit open: the model endpoint failed {self.breaker.threshold} times in a row"
                        " (last: see earlier calls)",
                        hint=f"retry in {wait:.1f} s",
                        details={"retry_after": round(wait, 3)},
                    )
                per_request = max(0.001, min(self.settings.llm_timeout, remaining))
                # What this call tells the breaker, reported in the finally below whatever ends
                # it: "neutral" stays when it is cancelled or fails in an unexpected way.
                verdict = "neutral"
                try:
                    async with asyncio.timeout(remaining):
                        resp = await client.chat.completions.create(
                            model=self.model,
                            messages=self._with_schema_hint(messages, schema),
                            response_format=self._response_format(name, schema),
                            timeout=per_request,
                        )
                except TimeoutError:  # our deadline, in a request or between the SDK's retries
                    problem = tally.problem(per_request)
                    waiting = tally.in_flight or tally.failure == "timeout" or not tally.requests
                    if waiting or tally.failure or (tally.status or 0) >= 500:
                        verdict = "failure"
                    if waiting:
                        raise self._timeout_error(started, problem) from None
                    raise PgMcpError(
                        "LLM_ERROR",
                        f"the model endpoint failed ({problem}); the next retry would pass the deadline",
                        hint=_hint_for(problem),
                    ) from None
                except openai.APITimeoutError:
                    verdict = "failure"
                    raise self._timeout_error(
                        started, f"no answer within {per_request:.1f} s"
                    ) from None
                except openai.APIConnectionError as exc:
                    verdict = "failure"
                    problem = (
                        f"cannot reach the model endpoint ({type(exc.__cause__ or exc).__name__})"
                    )
                    raise self._exhausted(tally, problem) from None
                except openai.APIStatusError as exc:
                    status = exc.status_code
                    detail = self._scrub(_status_detail(exc))
                    if status >= 500:
                        verdict = "failure"
                    if status in (408, 409, 429) or status >= 500:  # the SDK's retries are spent
                        raise self._exhausted(tally, f"HTTP {status}: {detail}") from None
                    if (
                        status == 400
                        and self._json_mode == "json_schema"
                        and ("response_format" in detail or "json_schema" in detail)
                    ):
                        log.warning("endpoint refused json_schema; falling back to json_object")
                        self._json_mode = "json_object"
                        continue
                    raise self._status_error(status, detail) from None
                except _PastDeadline as exc:
                    if exc.status >= 500:
                        verdict = "failure"
                    problem = f"HTTP {exc.status}: {self._scrub(exc.detail)}"
                    raise PgMcpError(
                        "LLM_ERROR",
                        f"the model endpoint failed ({problem}); the next retry would pass the deadline",
                        hint=_hint_for(problem),
                    ) from None
                except PgMcpError:
                    raise
                except Exception as exc:  # anything else from the SDK: unusable, not retried
                    raise PgMcpError(
                        "LLM_ERROR", self._scrub(f"model call failed: {type(exc).__name__}: {exc}")
                    ) from None
                else:
                    verdict = "success"
                    return self._completion(
                        resp, model, schema, max(1, tally.requests), time.monotonic() - started
                    )
                finally:
                    if verdict == "failure":  # every failed request counts, as before the SDK
                        for _ in range(max(1, tally.failed)):
                            self.breaker.failure()
                    else:
                        self.breaker.report(verdict)
        finally:
            self._tally.reset(token)

    def _exhausted(self, tally: _Tally, problem: str) -> PgMcpError:
        return PgMcpError(
            "LLM_ERROR",
            f"the model endpoint failed after {max(1, tally.requests)} request(s): {problem}",
            hint=_hint_for(problem),
        )

    def _with_schema_hint(
        self, messages: list[dict[str, str]], schema: dict[str, Any]
    ) -> list[dict[str, str]]:
        if self._json_mode != "json_object":
            return messages
        hint = "Reply with one JSON object matching this JSON Schema:\n" + json.dumps(schema)
        return [*messages, {"role": "system", "content": hint}]

    def _completion(
        self,
        resp: Any,
        reply: type[BaseModel],
        schema: dict[str, Any],
        requests: int,
        elapsed: float,
    ) -> Completion:
        usage = Usage()
        u = getattr(resp, "usage", None)
        if u is not None:
            usage = Usage(
                int(getattr(u, "prompt_tokens", 0) or 0),
                int(getattr(u, "completion_tokens", 0) or 0),
                int(getattr(u, "total_tokens", 0) or 0),
            )
            if not usage.total:
                usage.total = usage.prompt + usage.completion
        choices = getattr(resp, "choices", None) or []
        if not choices:
            return Completion(
                None,
                "",
                "the reply had no choices",
                usage,
                str(getattr(resp, "model", "")),
                requests,
                elapsed,
            )
        choice = choices[0]
        message = getattr(choice, "message", None)
        content = getattr(message, "content", None) if message is not None else None
        refusal = getattr(message, "refusal", None) if message is not None else None
        model = str(getattr(resp, "model", "") or "")
        if content is None and refusal:
            return Completion(
                None,
                "",
                self._scrub(f"the model refused: {refusal}"),
                usage,
                model,
                requests,
                elapsed,
            )
        data, problem = parse_reply(content, reply, schema)
        if problem and getattr(choice, "finish_reason", None) == "length":
            problem += " (the reply was cut off: finish_reason=length)"
        return Completion(data, content or "", problem, usage, model, requests, elapsed)

    def _timeout_error(self, started: float, last_problem: str) -> PgMcpError:
        waited = time.monotonic() - started
        return PgMcpError(
            "LLM_TIMEOUT",
            f"the model did not answer within the deadline ({waited:.1f} s; last: {last_problem})",
            hint="raise [ask] deadline / PG_MCP_LLM_DEADLINE, or use a faster model",
        )

    def _status_error(self, status: int, detail: str) -> PgMcpError:
        hint = {
            401: "check OPENAI_API_KEY",
            403: "the key may lack access to this model",
            404: "check OPENAI_MODEL and OPENAI_BASE_URL",
        }.get(status)
        return PgMcpError(
            "LLM_ERROR",
            f"the model endpoint refused the request (HTTP {status}): {detail}",
            hint=hint,
        )


def _status_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    msg = None
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else str(err)
    text = str(msg or getattr(exc, "message", "") or "").strip()
    text = " ".join(text.split())
    return text[:300] or "no detail"


def _body_detail(body: bytes) -> str:
    """The error message of an error response's body (as ``_status_detail``)."""
    try:
        parsed: Any = json.loads(body or b"null")
    except ValueError:
        parsed = body.decode("utf-8", "replace")
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed)
        parsed = err.get("message") if isinstance(err, dict) else err
    text = " ".join(str(parsed or "").split())
    return text[:300] or "no detail"


def _hint_for(problem: str) -> str | None:
    if problem.startswith("cannot reach"):
        return "is OPENAI_BASE_URL right and the endpoint up?"
    if problem.startswith("HTTP 429"):
        return "the model endpoint is rate-limiting; retry later"
    return None
