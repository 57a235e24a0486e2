"""`pg-mcp serve --transport http` as a real subprocess, for the transport, fault and load tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PGMCP = str(Path(sys.executable).parent / "pg-mcp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[bytes]
    out: Path  # the server's stdout and stderr, captured to files
    err: Path


def start_http(
    env: Mapping[str, str], cwd: Path, port: int | None = None, args: Sequence[str] = ()
) -> Served:
    """Start the server (not waiting for it: see wait_healthy). ``args``: more ``serve``
    arguments (``--host 0.0.0.0``, ``--insecure-no-auth``); the base URL stays 127.0.0.1."""
    port = port or free_port()
    out, err = cwd / "serve.out", cwd / "serve.err"
    with out.open("wb") as fo, err.open("wb") as fe:
        proc = subprocess.Popen(
            [PGMCP, "serve", "--transport", "http", "--port", str(port), *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
        )
    return Served(f"http://127.0.0.1:{port}", proc, out, err)


def wait_healthy(served: Served, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{served.base}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if served.proc.poll() is not None:
            raise AssertionError(f"pg-mcp serve exited: {served.err.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"pg-mcp serve --transport http did not come up within {timeout:g} s"
            )
        time.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def http_server(
    env: Mapping[str, str], cwd: Path, port: int | None = None, args: Sequence[str] = ()
) -> Iterator[Served]:
    """A healthy server for the duration of the block, stopped (SIGINT) afterwards."""
    served = start_http(env, cwd, port, args)
    try:
        wait_healthy(served)
        yield served
    finally:
        stop_process(served.proc)
