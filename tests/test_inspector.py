"""Optional: the MCP Inspector CLI (npm ``@modelcontextprotocol/inspector``, ``--cli`` mode)
lists and calls pg-mcp's tools over stdio.

Off by default so ``make test`` stays fast and works offline: run it with
``PG_MCP_TEST_INSPECTOR=1 .venv/bin/pytest tests/test_inspector.py``. It skips when ``npx`` is
missing or the package cannot be fetched within a few minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import scratch_database

PACKAGE = "@modelcontextprotocol/inspector"
PGMCP = str(Path(sys.executable).parent / "pg-mcp")

pytestmark = pytest.mark.skipif(
    os.environ.get("PG_MCP_TEST_INSPECTOR") != "1",
    reason="set PG_MCP_TEST_INSPECTOR=1 to run the MCP Inspector CLI test (needs npx and npm)",
)


@pytest.fixture(scope="module")
def npx() -> str:
    found = shutil.which("npx")
    if found is None:
        pytest.skip("npx is not installed")
    try:
        probe = subprocess.run(
            [found, "-y", PACKAGE, "--help"], capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"{PACKAGE} could not be fetched within 240 s")
    if probe.returncode != 0 or "--cli" not in probe.stdout + probe.stderr:
        pytest.skip(f"{PACKAGE} is not available: {probe.stderr.strip()[-300:]}")
    return found


@pytest.fixture(scope="module")
def inspected_db(pg_dsn: str) -> Iterator[str]:
    setup = "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 5) g"
    with scratch_database(pg_dsn, setup, "insp") as name:
        yield name


@pytest.fixture
def inspect(npx: str, pg_dsn: str, reader_dsn: str, inspected_db: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "pg-mcp.toml").write_text(f'[databases]\ninclude = ["{inspected_db}"]\n')
    env_args = ["-e", f"PG_MCP_DSN={reader_dsn}", "-e", f"PG_MCP_HOME={tmp_path / 'home'}"]

    def run(*method_args: str) -> tuple[int, Any, str]:
        cmd = [npx, "-y", PACKAGE, "--cli", *env_args, PGMCP, "serve", *method_args]
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        try:
            data = json.loads(res.stdout)
        except json.JSONDecodeError:
            data = None
        return res.returncode, data, res.stdout + res.stderr

    return run


def test_inspector_lists_the_tools(inspect) -> None:  # type: ignore[no-untyped-def]
    code, data, out = inspect("--method", "tools/list")
    assert code == 0, out
    tools = {t["name"]: t for t in data["tools"]}
    assert set(tools) == {"validate_sql", "run_readonly", "ask"}
    for tool in tools.values():
        assert tool["annotations"]["readOnlyHint"] is True
        assert tool["outputSchema"]["type"] == "object"


def test_inspector_calls_the_tools(inspect, inspected_db: str) -> None:  # type: ignore[no-untyped-def]
    code, data, out = inspect(
        "--method", "tools/call", "--tool-name", "validate_sql", "--tool-arg", "sql=DELETE FROM t"
    )
    assert code == 0, out
    assert data["isError"] is False
    assert data["structuredContent"]["code"] == "NOT_READ_ONLY"

    code, data, out = inspect(
        "--method", "tools/call", "--tool-name", "run_readonly",
        "--tool-arg", "sql=SELECT count(*) AS n FROM t",
    )  # fmt: skip
    assert code == 0, out
    assert data["structuredContent"]["rows"] == [[5]]
    assert data["structuredContent"]["database"] == inspected_db

    code, data, out = inspect("--method", "resources/read", "--uri", "databases://list")
    assert code == 0, out
    assert inspected_db in data["contents"][0]["text"]
