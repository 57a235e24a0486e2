"""A stand-in model: a real local HTTP server speaking the Chat Completions API.

The real ``openai`` client talks to it through ``base_url``; nothing is patched.
Each POST to ``/v1/chat/completions`` (or ``/chat/completions``) consumes the next
item of ``script``:

* a dict with ``status`` (and optional ``headers``, ``body``, ``delay``): that HTTP error;
* a dict with ``content`` (a dict, sent as JSON text, or a raw string) and optional
  ``delay``, ``usage``, ``finish_reason``: a normal completion;
* ``{"drop": True}``: the connection is closed without an answer;
* a callable ``f(body) -> item``: decides from the request;
* any other dict: the message content itself (sent as JSON).

When the script runs out, ``default`` is used (an item or callable; by default a 500
saying so). Every request's JSON body is appended to ``requests`` (headers to
``headers``), so tests can assert what was fed back to the model.

Use the ``standin`` fixture (import it into the test module), or run
``python tests/standin_model.py`` for a manual endpoint that always answers ``SELECT 1``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Item = dict[str, Any] | Callable[[dict[str, Any]], Any]


def gen(
    sql: str,
    explanation: str = "stand-in answer",
    tables: list[str] | None = None,
    database: str | None = None,
) -> dict[str, Any]:
    """A generation reply (content dict)."""
    content: dict[str, Any] = {}
    if database is not None:
        content["database"] = database
    content.update({"tables": tables or [], "sql": sql, "explanation": explanation})
    return {"content": content}


def judge(score: int, reasoning: str = "looks right") -> dict[str, Any]:
    """A judge reply (content dict)."""
    return {"content": {"reasoning": reasoning, "score": score}}


def status(
    code: int, headers: dict[str, str] | None = None, body: Any = None, delay: float = 0.0
) -> dict[str, Any]:
    return {"status": code, "headers": headers or {}, "body": body, "delay": delay}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_judge_request(body: dict[str, Any]) -> bool:
    rf = body.get("response_format") or {}
    return (rf.get("json_schema") or {}).get("name") == "judgement"


def message_text(body: dict[str, Any]) -> str:
    """Every message's content of one request, joined (for assertions)."""
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []))


class StandinModel:
    def __init__(self, model: str = "standin-1") -> None:
        self.model = model
        self.script: list[Item] = []
        self.default: Item | None = None
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------
    def start(self) -> StandinModel:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting --------------------------------------------------------------
    def next_item(self, body: dict[str, Any]) -> Any:
        with self._lock:
            self.requests.append(body)
            item: Any = self.script.pop(0) if self.script else self.default
        if item is None:
            item = status(
                500,
                body={"error": {"message": "stand-in script exhausted", "type": "server_error"}},
            )
        while callable(item):
            item = item(body)
        return item

    def completion(
        self, body: dict[str, Any], content: Any, usage: dict[str, int] | None, finish_reason: str
    ) -> dict[str, Any]:
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
        completion = len(text) // 4 + 1
        u = usage or {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": u,
            "system_fingerprint": "standin",
        }


def _make_handler(model: StandinModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = (
                payload
                if isinstance(payload, bytes)
                else json.dumps(payload, ensure_ascii=False).encode()
            )
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): fine

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": model.model, "object": "model", "owned_by": "standin"}],
                    },
                )
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"unknown path {path}"}})
                return
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "invalid JSON body"}})
                return
            with model._lock:
                model.headers.append({k.lower(): v for k, v in self.headers.items()})
                model.paths.append(path)
            item = model.next_item(body)
            delay = float(item.get("delay") or 0)
            if delay and model._stop.wait(delay):
                return
            if item.get("drop"):
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if "status" in item:
                err = item.get("body")
                if err is None:
                    err = {
                        "error": {
                            "message": f"stand-in status {item['status']}",
                            "type": "server_error",
                        }
                    }
                self._send(
                    int(item["status"]),
                    err if isinstance(err, dict | list) else str(err).encode(),
                    item.get("headers"),
                )
                return
            content = (
                item["content"]
                if "content" in item
                else {k: v for k, v in item.items() if k != "delay"}
            )
            self._send(
                200,
                model.completion(
                    body, content, item.get("usage"), item.get("finish_reason", "stop")
                ),
            )

    return Handler


@pytest.fixture(name="standin")
def standin_fixture() -> Iterator[StandinModel]:
    """A running stand-in model (import ``standin_fixture`` into a test module; use ``standin``)."""
    m = StandinModel().start()
    try:
        yield m
    finally:
        m.stop()


if __name__ == "__main__":  # a manual endpoint: OPENAI_BASE_URL=http://127.0.0.1:PORT/v1
    m = StandinModel()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return judge(9) if is_judge_request(body) else gen("SELECT 1 AS one")

    m.default = answer
    m.start()
    print(m.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        m.stop()
