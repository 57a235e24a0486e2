"""The model client: Chat Completions with structured outputs, on any OpenAI-compatible endpoint.

Resilience is ours, not the SDK's (``max_retries=0`` on the client), so it is
explicit and testable:

* retries with exponential backoff and full jitter on 408/409/429/5xx, connection
  errors and timeouts, honouring ``retry-after-ms`` / ``Retry-After`` (capped);
* one deadline across every retry (``deadline``, absolute ``time.monotonic()``;
  default now + ``settings.llm_deadline``), each request limited to
  ``min(settings.llm_timeout, time left)``;
* a circuit breaker: after ``breaker_threshold`` consecutive failed requests
  (connection error, timeout, 5xx) it opens for ``breaker_cooldown`` seconds and
  calls fail fast with LLM_ERROR "circuit open"; then one probe is let through
  (half-open): success closes it, failure opens it again;
* errors are PgMcpError LLM_ERROR / LLM_TIMEOUT / LLM_NOT_CONFIGURED whose text
  is scrubbed of the API key (and anything shaped like one).

A reply that is not the JSON object the schema asks for is not an exception: it
comes back as ``Completion(data=None, error=...)`` so the ask loop can feed the
problem back to the model as a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pg_mcp.errors import PgMcpError
from pg_mcp.secrets import Redactor
from pg_mcp.settings import Settings

log = logging.getLogger("pg_mcp.llm")

DUMMY_KEY = "not-needed"
RETRYABLE_STATUS = frozenset({408, 409, 429})
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
    requests: int = 1  # HTTP requests it took (1 + retries)
    elapsed: float = 0.0


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


def parse_json_object(
    text: str | None, schema: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """Parse a reply defensively: ``(object, None)`` or ``(None, what was wrong)``."""
    if text is None or not text.strip():
        return None, "the reply was empty"
    body = text.strip()
    if body.startswith("```"):  # some local models wrap JSON in a code fence
        body = re.sub(r"^```[a-zA-Z0-9_-]*\s*", "", body)
        body = re.sub(r"\s*```$", "", body)
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        start, end = body.find("{"), body.rfind("}")
        data = None
        if 0 <= start < end:
            try:
                data = json.loads(body[start : end + 1])
            except json.JSONDecodeError:
                data = None
        if data is None:
            return None, f"the reply was not valid JSON ({exc.msg} at char {exc.pos})"
    if not isinstance(data, dict):
        return None, f"the reply was JSON but not an object (got {type(data).__name__})"
    props: dict[str, Any] = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in data:
            return None, f"the reply lacks the required property {key!r}"
        want = props.get(key, {}).get("type")
        value = data[key]
        ok = {
            "string": isinstance(value, str),
            "integer": (isinstance(value, int) and not isinstance(value, bool))
            or (isinstance(value, float) and value.is_integer()),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "array": isinstance(value, list),
            "object": isinstance(value, dict),
            "boolean": isinstance(value, bool),
        }.get(want, True)
        if not ok:
            return None, f"property {key!r} should be of type {want}"
    return data, None


# --------------------------------------------------------------------------- client
class LLM:
    """Chat Completions with structured outputs and our own retries, deadline and breaker."""

    def __init__(
        self,
        settings: Settings,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_after_cap: float = 30.0,
        max_retries: int | None = None,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        redactor: Redactor | None = None,
    ) -> None:
        self.settings = settings
        self.model = settings.model
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_cap = retry_after_cap
        self.max_retries = settings.llm_max_retries if max_retries is None else max_retries
        self.breaker = CircuitBreaker(breaker_threshold, breaker_cooldown)
        self.redact = redactor or Redactor(settings.secrets())
        for s in settings.secrets():
            self.redact.add(s)
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._clients_lock = threading.Lock()
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
                    max_retries=0,  # retries are ours
                    timeout=self.settings.llm_timeout,
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

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        return random.uniform(0.0, min(self.backoff_max, self.backoff_base * (2**attempt)))

    async def complete_json(
        self,
        messages: list[dict[str, str]],
        *,
        name: str,
        schema: dict[str, Any],
        deadline: float | None = None,
    ) -> Completion:
        """One structured-output completion, retried within the deadline.

        Raises PgMcpError LLM_ERROR / LLM_TIMEOUT / LLM_NOT_CONFIGURED; returns a
        Completion (possibly with ``data=None`` and ``error`` when the reply is unusable).
        """
        import openai

        client = self._get_client()
        started = time.monotonic()
        deadline = deadline if deadline is not None else started + self.settings.llm_deadline
        last_problem = "no request was made"
        last_was_timeout = False
        attempt = 0
        requests = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout_error(started, last_problem)
            if not self.breaker.allow():
                wait = self.breaker.retry_in()
                raise PgMcpError(
                    "LLM_ERROR",
                    f"circuit open: the model endpoint failed {self.breaker.threshold} times in a row"
                    f" (last: {last_problem if requests else 'see earlier calls'})",
                    hint=f"retry in {wait:.1f} s",
                    details={"retry_after": round(wait, 3)},
                )
            per_request = max(0.001, min(self.settings.llm_timeout, remaining))
            retry_after: float | None = None
            requests += 1
            # What this request tells the breaker; reported in the finally below, whatever ends
            # it: "neutral" stays when it is cancelled or fails in an unexpected way.
            verdict = "neutral"
            try:
                async with asyncio.timeout(per_request + 0.05):
                    resp = await client.chat.completions.create(
                        model=self.model,
                        messages=self._with_schema_hint(messages, schema),
                        response_format=self._response_format(name, schema),
                        timeout=per_request,
                    )
            except (TimeoutError, openai.APITimeoutError):
                verdict = "failure"
                last_problem = f"no answer within {per_request:.1f} s"
                last_was_timeout = True
            except openai.APIConnectionError as exc:
                verdict = "failure"
                last_problem = (
                    f"cannot reach the model endpoint ({type(exc.__cause__ or exc).__name__})"
                )
                last_was_timeout = False
            except openai.APIStatusError as exc:
                status = exc.status_code
                detail = self._scrub(_status_detail(exc))
                if status in RETRYABLE_STATUS or status >= 500:
                    if status >= 500:
                        verdict = "failure"
                    retry_after = retry_after_seconds(exc.response.headers)
                    last_problem = f"HTTP {status}: {detail}"
                    last_was_timeout = False
                else:
                    if (
                        status == 400
                        and self._json_mode == "json_schema"
                        and ("response_format" in detail or "json_schema" in detail)
                    ):
                        log.warning("endpoint refused json_schema; falling back to json_object")
                        self._json_mode = "json_object"
                        continue
                    raise self._status_error(status, detail) from None
            except PgMcpError:
                raise
            except Exception as exc:  # anything else from the SDK: unusable, not retried
                raise PgMcpError(
                    "LLM_ERROR", self._scrub(f"model call failed: {type(exc).__name__}: {exc}")
                ) from None
            else:
                verdict = "success"
                return self._completion(resp, schema, requests, time.monotonic() - started)
            finally:
                self.breaker.report(verdict)

            # a retryable failure
            if attempt >= self.max_retries:
                if last_was_timeout:
                    raise self._timeout_error(started, last_problem)
                raise PgMcpError(
                    "LLM_ERROR",
                    f"the model endpoint failed after {requests} request(s): {last_problem}",
                    hint=_hint_for(last_problem),
                )
            delay = self._backoff(attempt, retry_after)
            attempt += 1
            remaining = deadline - time.monotonic()
            if delay >= remaining:
                if last_was_timeout:
                    raise self._timeout_error(started, last_problem)
                raise PgMcpError(
                    "LLM_ERROR",
                    f"the model endpoint failed ({last_problem}); the next retry would pass the deadline",
                    hint=_hint_for(last_problem),
                )
            log.info(
                "model request %d failed (%s); retrying in %.2f s", requests, last_problem, delay
            )
            await asyncio.sleep(delay)

    def _with_schema_hint(
        self, messages: list[dict[str, str]], schema: dict[str, Any]
    ) -> list[dict[str, str]]:
        if self._json_mode != "json_object":
            return messages
        hint = "Reply with one JSON object matching this JSON Schema:\n" + json.dumps(schema)
        return [*messages, {"role": "system", "content": hint}]

    def _completion(
        self, resp: Any, schema: dict[str, Any], requests: int, elapsed: float
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
        data, problem = parse_json_object(content, schema)
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


def _hint_for(problem: str) -> str | None:
    if problem.startswith("cannot reach"):
        return "is OPENAI_BASE_URL right and the endpoint up?"
    if problem.startswith("HTTP 429"):
        return "the model endpoint is rate-limiting; retry later"
    return None
