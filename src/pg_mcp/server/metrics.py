"""A small, dependency-free metrics registry rendered in the Prometheus text format.

What is counted:

- ``pg_mcp_tool_calls_total{tool, outcome}``: every tool call; ``outcome`` is ``ok`` or the
  stable error code (``NOT_READ_ONLY``, ``TIMEOUT``, ...), ``INTERNAL`` for a crash,
  ``CANCELLED`` when the client cancelled; for ``validate_sql`` a refused query (a successful
  call) counts under the verdict's code;
- ``pg_mcp_tool_duration_seconds{tool, outcome}``: a latency histogram of the same calls;
- ``pg_mcp_model_tokens_total{kind}``: model tokens used by ``ask`` (``prompt``, ``completion``).

``render()`` returns text exposition format 0.0.4 (``# HELP``/``# TYPE`` lines, histograms
as cumulative ``_bucket{le=...}`` series plus ``_sum`` and ``_count``). The registry is
thread-safe: tools record from worker threads too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# upper bounds in seconds: fast validation up to slow model calls
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip

TOOLS: tuple[str, ...] = ("validate_sql", "run_readonly", "ask")
TOKEN_KINDS: tuple[str, ...] = ("prompt", "completion")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self, n_buckets: int) -> None:
        self.counts = [0] * n_buckets  # non-cumulative, one per finite bucket
        self.sum = 0.0


class Metrics:
    """Counters and latency histograms per tool and outcome, and model token counters."""

    def __init__(
        self,
        *,
        buckets: Iterable[float] = DEFAULT_BUCKETS,
        tools: Iterable[str] = TOOLS,
        prefix: str = "pg_mcp",
    ) -> None:
        self.buckets = tuple(sorted(float(b) for b in buckets))
        self.prefix = prefix
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], int] = {}
        self._latency: dict[tuple[str, str], _Histogram] = {}
        self._overflow: dict[tuple[str, str], int] = {}  # observations above the last bucket
        self._tokens: dict[str, int] = dict.fromkeys(TOKEN_KINDS, 0)
        for tool in tools:  # publish zeros so dashboards see every series from the start
            self._calls[(tool, "ok")] = 0

    # --- recording -------------------------------------------------------------
    def observe(self, tool: str, outcome: str, seconds: float) -> None:
        """Count one call of ``tool`` ending in ``outcome`` (``ok`` or an error code)."""
        seconds = max(0.0, float(seconds))
        key = (tool, outcome)
        with self._lock:
            self._calls[key] = self._calls.get(key, 0) + 1
            hist = self._latency.get(key)
            if hist is None:
                hist = self._latency[key] = _Histogram(len(self.buckets))
            hist.sum += seconds
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    hist.counts[i] += 1
                    break
            else:
                self._overflow[key] = self._overflow.get(key, 0) + 1

    def add_tokens(self, kind: str, n: int) -> None:
        """Add ``n`` model tokens of ``kind`` (``prompt`` or ``completion``)."""
        if n <= 0:
            return
        with self._lock:
            self._tokens[kind] = self._tokens.get(kind, 0) + int(n)

    # --- reading ---------------------------------------------------------------
    def calls(self, tool: str, outcome: str | None = None) -> int:
        """Calls of ``tool`` (with that outcome, or all outcomes)."""
        with self._lock:
            return sum(n for (t, o), n in self._calls.items() if t == tool and outcome in (None, o))

    def tokens(self, kind: str) -> int:
        with self._lock:
            return self._tokens.get(kind, 0)

    def render(self) -> str:
        """The registry in Prometheus text exposition format 0.0.4."""
        p = self.prefix
        with self._lock:
            calls = sorted(self._calls.items())
            latency = sorted((k, list(h.counts), h.sum) for k, h in self._latency.items())
            overflow = dict(self._overflow)
            tokens = sorted(self._tokens.items())
        out: list[str] = [
            f"# HELP {p}_tool_calls_total MCP tool calls by tool and outcome (ok or error code).",
            f"# TYPE {p}_tool_calls_total counter",
        ]
        for (tool, outcome), n in calls:
            out.append(f"{p}_tool_calls_total{_labels([('tool', tool), ('outcome', outcome)])} {n}")
        out += [
            f"# HELP {p}_tool_duration_seconds MCP tool call latency by tool and outcome.",
            f"# TYPE {p}_tool_duration_seconds histogram",
        ]
        for (tool, outcome), counts, total in latency:
            base = [("tool", tool), ("outcome", outcome)]
            running = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                running += n
                le = _labels([*base, ("le", _number(bound))])
                out.append(f"{p}_tool_duration_seconds_bucket{le} {running}")
            running += overflow.get((tool, outcome), 0)
            out.append(
                f"{p}_tool_duration_seconds_bucket{_labels([*base, ('le', '+Inf')])} {running}"
            )
            out.append(f"{p}_tool_duration_seconds_sum{_labels(base)} {_number(total)}")
            out.append(f"{p}_tool_duration_seconds_count{_labels(base)} {running}")
        out += [
            f"# HELP {p}_model_tokens_total Model tokens used by ask, by kind (prompt, completion).",
            f"# TYPE {p}_model_tokens_total counter",
        ]
        for kind, n in tokens:
            out.append(f"{p}_model_tokens_total{_labels([('kind', kind)])} {n}")
        return "\n".join(out) + "\n"
