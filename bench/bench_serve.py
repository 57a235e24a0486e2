"""Cold start of `pg-mcp serve` (stdio) vs a bare MCPServer, measured in the same run.

Each sample spawns the server, speaks MCP over its stdin/stdout (initialize, initialized,
tools/list) and times process start -> tools/list answered. Samples alternate between the
two servers; the medians are printed:

    serve_cold_start_seconds: 1.23
    bare_mcpserver_cold_start_seconds: 1.10
    serve_vs_bare_ratio: 1.12          (target <= 1.5)

Usage: python bench/bench_serve.py [-n 10]. The environment is passed through (PG_MCP_DSN,
PG_MCP_HOME, ...): `pg-mcp serve` starts its background warm-up (database discovery,
schema cache) exactly as it would for a client.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench_serve", "version": "1"},
    },
}


def _send(proc: subprocess.Popen[bytes], message: dict) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()


def _wait_for(proc: subprocess.Popen[bytes], rid: int, timeout: float = 60.0) -> dict:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited (code {proc.poll()}) before answering request {rid}")
        message = json.loads(line)
        if message.get("id") == rid:
            if "error" in message:
                raise RuntimeError(f"request {rid} failed: {message['error']}")
            return message
    raise TimeoutError(f"no answer to request {rid} within {timeout} s")


def cold_start(cmd: list[str]) -> tuple[float, int]:
    """Seconds from spawning ``cmd`` to its tools/list answer, and the number of tools."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        _send(proc, INIT)
        _wait_for(proc, 1)
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = _wait_for(proc, 2)["result"]["tools"]
        elapsed = time.perf_counter() - started
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return elapsed, len(tools)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=10, help="samples per server (default 10)")
    args = p.parse_args(argv)
    serve_cmd = [str(BIN / "pg-mcp"), "serve"]
    bare_cmd = [sys.executable, str(ROOT / "bench" / "bare_server.py")]
    cold_start(serve_cmd)  # warm the OS file cache and .pyc files for both, unmeasured
    cold_start(bare_cmd)
    serve: list[float] = []
    bare: list[float] = []
    for _ in range(max(1, args.n)):
        t, n_tools = cold_start(serve_cmd)
        assert n_tools == 3, f"pg-mcp serve listed {n_tools} tools"
        serve.append(t)
        bare.append(cold_start(bare_cmd)[0])
    s, b = statistics.median(serve), statistics.median(bare)
    print(f"serve_cold_start_seconds: {s:.3f}")
    print(f"bare_mcpserver_cold_start_seconds: {b:.3f}")
    print(f"serve_vs_bare_ratio: {s / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
