"""Optional: the real Claude Code CLI sees the skill and the MCP server (no login needed).

Runs only with PG_MCP_TEST_CLAUDE=1 and `claude` on PATH (npm i -g @anthropic-ai/claude-code):
it is an external tool whose output format we do not control, so `make test` does not depend on it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    os.environ.get("PG_MCP_TEST_CLAUDE") != "1" or shutil.which("claude") is None,
    reason="set PG_MCP_TEST_CLAUDE=1 with the claude CLI installed to check the Claude Code wiring",
)


def test_claude_code_init_lists_the_skill_and_the_mcp_server() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = subprocess.run(
        ["claude", "-p", "hi", "--output-format", "stream-json", "--verbose"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    init = None
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("type") == "system" and event.get("subtype") == "init":
            init = event
            break
    assert init is not None, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "pg-mcp" in init.get("skills", [])
    servers = {s["name"]: s["status"] for s in init.get("mcp_servers", [])}
    # "pending" is Claude Code >= 2.1.162's -p mode regression (anthropics/claude-code#74926)
    assert servers.get("pg-mcp") in ("connected", "pending"), servers
    if servers["pg-mcp"] == "connected":
        assert "mcp__pg-mcp__run_readonly" in init["tools"]
