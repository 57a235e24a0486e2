"""The Claude Code wiring: the skill, its installed copy, .claude/settings.json and .mcp.json."""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pg_mcp import cli
from pg_mcp.errors import CODES

ROOT = Path(__file__).resolve().parent.parent
SKILL = ROOT / "skills" / "pg-mcp"
INSTALLED = ROOT / ".claude" / "skills" / "pg-mcp"
SETTINGS = ROOT / ".claude" / "settings.json"
MCP_JSON = ROOT / ".mcp.json"
SERVER_NAME = "pg-mcp"

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`([^`]+)`")
CLI_MENTION = re.compile(r"\buv run pg-mcp ([a-z][a-z-]*)")
MCP_TOOL = re.compile(r"\bmcp__pg-mcp__([a-z_]+)")


def frontmatter(text: str) -> tuple[dict[str, str], str]:
    """Minimal strict YAML frontmatter reader: `key: plain scalar` lines between --- fences."""
    assert text.startswith("---\n"), "SKILL.md must start with a --- frontmatter fence"
    head, sep, body = text[4:].partition("\n---\n")
    assert sep, "frontmatter is not closed with ---"
    out: dict[str, str] = {}
    for line in head.splitlines():
        key, colon, value = line.partition(": ")
        assert colon and re.fullmatch(r"[a-z][a-z0-9_-]*", key), (
            f"not a 'key: value' line: {line!r}"
        )
        value = value.strip()
        # plain YAML scalars: no ': ' or ' #' inside, no leading indicator character
        assert ": " not in value and " #" not in value, (
            f"{key}: would not parse as a plain YAML scalar"
        )
        assert value and value[0] not in "!&*[]{}|>'\"%@`#,?:-", (
            f"{key}: starts with a YAML indicator"
        )
        out[key] = value
    return out, body


def skill_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def skill_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in skill_files(SKILL) if p.suffix == ".md")


# ---------------------------------------------------------------- the skill itself


def test_frontmatter_name_and_description() -> None:
    meta, body = frontmatter((SKILL / "SKILL.md").read_text(encoding="utf-8"))
    assert set(meta) <= {"name", "description", "license", "allowed-tools", "metadata"}
    assert meta["name"] == SKILL.name == "pg-mcp"
    assert re.fullmatch(r"[a-z0-9-]{1,64}", meta["name"])
    desc = meta["description"]
    assert 100 <= len(desc) <= 1024 and "<" not in desc and ">" not in desc
    for phrase in ("PostgreSQL", "how many", "which", "show me", "SQL for", "Chinese", "有多少"):
        assert phrase in desc, f"the description should say when to use the skill: {phrase!r}"
    assert body.strip().startswith("# ")


def test_body_is_short() -> None:
    text = (SKILL / "SKILL.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200  # well under the 500-line limit


def test_every_relative_link_resolves_inside_the_skill() -> None:
    checked = 0
    for md in (p for p in skill_files(SKILL) if p.suffix == ".md"):
        for target in LINK.findall(md.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (md.parent / target.split("#", 1)[0]).resolve()
            assert path.is_file(), f"{md.relative_to(ROOT)}: broken link {target}"
            assert SKILL.resolve() in path.parents, (
                f"{md.relative_to(ROOT)}: {target} leaves the skill folder"
            )
            checked += 1
    assert checked >= 4


def test_every_skill_reference_is_linked_from_skill_md() -> None:
    text = (SKILL / "SKILL.md").read_text(encoding="utf-8")
    linked = {t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)}
    for ref in sorted((SKILL / "references").glob("*.md")):
        assert f"references/{ref.name}" in linked, f"{ref.name} is never pointed to from SKILL.md"


def test_points_to_the_generated_database_references() -> None:
    text = (SKILL / "SKILL.md").read_text(encoding="utf-8")
    for path in (
        "references/README.md",
        "references/<db>.md",
        "references/<db>/<schema>.<table>.md",
    ):
        assert f"`{path}`" in text, path
    readme = ROOT / "references" / "README.md"
    if readme.is_file():  # written by `make references`
        dbs = re.findall(r"\(([\w.-]+)\.md\)", readme.read_text(encoding="utf-8"))
        assert all((ROOT / "references" / f"{db}.md").is_file() for db in dbs)


def test_error_code_reference_covers_validate_and_run_codes() -> None:
    text = (SKILL / "references" / "error-codes.md").read_text(encoding="utf-8")
    ask_only = {
        "LLM_ERROR",
        "LLM_TIMEOUT",
        "RATE_LIMITED",
        "LLM_NOT_CONFIGURED",
        "NO_ANSWER",
        "CONFIG_ERROR",
    }
    missing = [c for c in CODES if c not in ask_only and f"| {c} |" not in text]
    assert not missing, f"error-codes.md lacks {missing}"


def test_documented_commands_parse_with_the_cli() -> None:
    """Every `uv run pg-mcp ...` code span in the skill is a valid command line."""
    parser = cli.build_parser()
    seen = 0
    for span in CODE_SPAN.findall(skill_text()):
        if not span.startswith("uv run pg-mcp "):
            continue
        placeholders = {"DB": "db_pg_mcp_small", "N": "50", "SQL": "SELECT 1"}
        argv = [placeholders.get(a, a) for a in shlex.split(span)[3:]]
        if "--help" in argv:
            continue
        args = parser.parse_args(argv)
        assert args.command in cli.COMMANDS
        seen += 1
    assert seen >= 4


# ---------------------------------------------------------------- installation for Claude Code


def test_installed_copy_is_identical() -> None:
    assert INSTALLED.is_dir(), "run `make skill`"
    src = [p.relative_to(SKILL) for p in skill_files(SKILL)]
    dst = [p.relative_to(INSTALLED) for p in skill_files(INSTALLED)]
    assert src == dst, "file lists differ: run `make skill`"
    _, mismatch, errors = filecmp.cmpfiles(SKILL, INSTALLED, [str(p) for p in src], shallow=False)
    assert not mismatch and not errors, f"differ: {mismatch + errors}: run `make skill`"


def test_settings_allow_exactly_what_the_skill_runs() -> None:
    settings = json.loads(SETTINGS.read_text(encoding="utf-8"))
    allow = settings["permissions"]["allow"]
    assert len(allow) == len(set(allow))
    text = skill_text()
    subcommands = set(CLI_MENTION.findall(text))
    tools = set(MCP_TOOL.findall(text))
    assert subcommands == {"databases", "validate", "run", "psql"}
    assert tools == {"validate_sql", "run_readonly"}
    bash = {r for r in allow if r.startswith("Bash(")}
    assert bash == {f"Bash(uv run pg-mcp {s}:*)" for s in subcommands}
    mcp = {r for r in allow if r.startswith("mcp__")}
    assert mcp == {f"mcp__{SERVER_NAME}__{t}" for t in tools}
    reads = {r for r in allow if r.startswith("Read(")}
    assert reads == {
        "Read(./references/**)",
        "Read(./skills/pg-mcp/**)",
        "Read(./.claude/skills/pg-mcp/**)",
    }
    assert set(allow) == bash | mcp | reads
    for rule in settings["permissions"].get("deny", []):
        assert rule.startswith("Read("), rule  # the deny list only keeps secrets out of reach
    assert settings.get("enableAllProjectMcpServers") is True or SERVER_NAME in settings.get(
        "enabledMcpjsonServers", []
    )


# ---------------------------------------------------------------- .mcp.json starts the server


def _mcp_server_config() -> dict[str, object]:
    if not MCP_JSON.exists():
        pytest.skip(".mcp.json is not written yet")
    config = json.loads(MCP_JSON.read_text(encoding="utf-8"))
    servers = config["mcpServers"]
    assert SERVER_NAME in servers, (
        f".mcp.json must register the server as {SERVER_NAME!r} (the settings allow mcp__{SERVER_NAME}__*)"
    )
    server = servers[SERVER_NAME]
    assert server.get("type", "stdio") == "stdio"
    return server


def test_mcp_json_is_valid_and_runs_pg_mcp_serve() -> None:
    server = _mcp_server_config()
    argv = [str(server["command"]), *map(str, server.get("args", []))]
    assert "pg-mcp" in " ".join(argv) and "serve" in argv, argv


def test_mcp_json_command_starts_the_server(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Spawn the command .mcp.json names, then initialize + tools/list with the SDK's stdio client."""
    from mcp import Client, StdioServerParameters, stdio_client

    server = _mcp_server_config()
    command = str(server["command"])
    if shutil.which(command) is None and not Path(command).exists():
        pytest.skip(f"{command!r} is not on PATH here")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "UV_CACHE_DIR")}
    env.update({str(k): str(v) for k, v in dict(server.get("env") or {}).items()})
    env.update(
        {"PG_MCP_DSN": str(settings.dsn), "PG_MCP_HOME": str(tmp_path / "home"), "UV_OFFLINE": "1"}
    )
    params = StdioServerParameters(
        command=command, args=[str(a) for a in server.get("args", [])], env=env, cwd=ROOT
    )

    async def session() -> tuple[str, set[str]]:
        with open(tmp_path / "server.log", "w") as errlog:
            # mode="legacy": the initialize handshake, as Claude Code does it
            async with Client(
                stdio_client(params, errlog=errlog), mode="legacy", read_timeout_seconds=60
            ) as client:
                info = client.server_info
                tools = await client.list_tools()
                return (info.name if info else ""), {t.name for t in tools.tools}

    name, tools = asyncio.run(asyncio.wait_for(session(), 120))
    assert {"validate_sql", "run_readonly"} <= tools, tools
    assert name


def test_cli_commands_of_the_skill_work_end_to_end(settings) -> None:  # type: ignore[no-untyped-def]
    """Steps 3 and 4 of the workflow through the real CLI: a fix loop on an unknown column."""
    env = {**os.environ, "PG_MCP_DSN": str(settings.dsn), "PG_MCP_HOME": str(settings.home)}
    env.pop("PG_MCP_CONFIG", None)

    def pg_mcp(*argv: str) -> tuple[int, dict[str, object]]:
        p = subprocess.run(
            [sys.executable, "-m", "pg_mcp.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])

    code, verdict = pg_mcp(
        "validate",
        "--db",
        "db_pg_mcp_small",
        "--json",
        "SELECT loyalty, count(*) FROM customers GROUP BY 1",
    )
    assert code != 0 and verdict["code"] == "UNKNOWN_OBJECT"
    sql = (
        "SELECT loyalty_tier, count(*) AS customers FROM customers GROUP BY loyalty_tier ORDER BY 1"
    )
    code, verdict = pg_mcp("validate", "--db", "db_pg_mcp_small", "--json", sql)
    assert code == 0 and verdict["ok"] is True
    code, result = pg_mcp("run", "--db", "db_pg_mcp_small", "--json", "--max-rows", "50", sql)
    assert code == 0 and result["ok"] is True and result["row_count"] == 4
    code, result = pg_mcp("run", "--db", "db_pg_mcp_small", "--json", "SELECT pg_sleep(1)")
    assert code != 0 and result["code"] == "FORBIDDEN_FUNCTION"
