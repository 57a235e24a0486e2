"""One tool call's frame: a request id bound to the log context, the ``tool_call`` log line,
the metrics, and every failure turned into ``ToolError("CODE: message")`` (``error_text``),
redacted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.logs import bind, log_event

if TYPE_CHECKING:
    from pg_mcp.server.state import ServerState

log = logging.getLogger("pg_mcp.server.app")  # the server's logger: its name is in the log lines
T = TypeVar("T")


def error_text(
    code: str,
    message: str,
    hint: str | None = None,
    position: int | None = None,
    sqlstate: str | None = None,
) -> str:
    """``CODE: message`` (+ SQLSTATE, position), then ``hint: ...`` on its own line."""
    text = f"{code}: {message}"
    if sqlstate and sqlstate not in message:
        text += f" (SQLSTATE {sqlstate})"
    if position is not None and "position" not in message:
        text += f" (at character {position})"
    if hint:
        text += f"\nhint: {hint}"
    return text


_WARN_OUTCOMES = {"INTERNAL", "CONNECTION_ERROR", "LLM_ERROR", "LLM_TIMEOUT"}


@dataclass
class ToolCall:
    tool: str
    request_id: str
    database: str | None = None
    outcome: str = "ok"
    fields: dict[str, Any] = field(default_factory=dict)


async def instrumented(
    state: ServerState, tool: str, body: Callable[[ToolCall], Awaitable[T]]
) -> T:
    """Run one tool call with a request id, a log line, metrics, and errors as ToolError."""
    call = ToolCall(tool=tool, request_id=uuid.uuid4().hex[:16])
    started = time.perf_counter()
    code: str | None = None
    from pg_mcp.server.auth import current_client

    with bind(request_id=call.request_id, tool=tool, client=current_client()):
        try:
            return await body(call)
        except PgMcpError as exc:
            call.outcome = code = exc.code
            sqlstate = exc.details.get("sqlstate") if isinstance(exc.details, dict) else None
            raise ToolError(
                state.redact(error_text(exc.code, exc.message, exc.hint, exc.position, sqlstate))
            ) from None
        except ToolError:
            call.outcome = code = "INVALID_ARGUMENT"
            raise
        except Exception:
            call.outcome = code = "INTERNAL"
            log.exception("tool_crashed")
            raise
        except BaseException:
            call.outcome = "CANCELLED"
            raise
        finally:
            elapsed = time.perf_counter() - started
            state.metrics.observe(tool, call.outcome, elapsed)
            log_event(
                log,
                "tool_call",
                level=logging.WARNING if call.outcome in _WARN_OUTCOMES else logging.INFO,
                database=call.database,
                outcome=call.outcome,
                code=code,
                elapsed_ms=round(elapsed * 1000, 1),
                **call.fields,
            )
