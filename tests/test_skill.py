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
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_mcp.cli import main as cli
from pg_mcp.core.errors import CODES

ROOT = Path(__file__).resolve().parent.parent
SKILL = ROOT / "skills" / "pg-mcp"
INSTALLED = ROOT / ".claude" / "skills" / "pg-mcp"
SETTINGS = ROOT / ".claude" / "settings.json"
MCP_JSON = ROOT / ".mcp.json"
SERVER_NAME = "pg-mcp"

# The only pg-mcp subcommands the agent may run without asking: each goes through the
# validator and the read-only executor (describe included), none is a shell or reads files.
AGENT_COMMANDS = {"databases", "validate", "run", "describe"}
BASH_RULE = re.compile(r"Bash\(uv run pg-mcp ([a-z][a-z-]*):\*\)")

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
    assert subcommands == AGENT_COMMANDS
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
    deny = settings["permissions"].get("deny", [])
    assert {"Bash(psql:*)", "Bash(uv run pg-mcp psql:*)"} <= set(deny)
    assert {"Read(./.env)", "Read(./.env.*)", "Read(./.pg-mcp/**)"} <= set(deny)
    for rule in deny:
        assert rule.startswith("Read(") or "psql" in rule, rule  # secrets and psql: out of reach
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
            [sys.executable, "-m", "pg_mcp.cli.main", *argv],
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


# ---------------------------------------------------------------- the agent's doors are the core


def test_every_allowed_bash_rule_is_a_safety_core_subcommand() -> None:
    settings = json.loads(SETTINGS.read_text(encoding="utf-8"))
    bash = [r for r in settings["permissions"]["allow"] if r.startswith("Bash(")]
    found = set()
    for rule in bash:
        m = BASH_RULE.fullmatch(rule)
        assert m, f"{rule}: an allowed Bash rule must be `Bash(uv run pg-mcp SUBCOMMAND:*)`"
        assert m.group(1) in AGENT_COMMANDS and m.group(1) in cli.COMMANDS, rule
        found.add(m.group(1))
    assert found == AGENT_COMMANDS
    # every CLI command the skill mentions is one of them
    assert set(CLI_MENTION.findall(skill_text())) <= found


def test_psql_appears_nowhere_but_in_the_deny_list() -> None:
    assert "psql" not in cli.COMMANDS
    for path in [*skill_files(SKILL), *skill_files(INSTALLED)]:
        assert "psql" not in path.read_text(encoding="utf-8").lower(), path
    settings = json.loads(SETTINGS.read_text(encoding="utf-8"))
    assert not any("psql" in r for r in settings["permissions"]["allow"])
    rest = {k: v for k, v in settings.items() if k != "permissions"}
    assert "psql" not in json.dumps(rest)


def test_no_allowed_command_accepts_a_config_option() -> None:
    """`--config` belongs before the subcommand only: `uv run pg-mcp run:*` cannot reach it, so
    a pre-approved command line cannot point pg-mcp at a file that lifts the policy. The
    options each allowed command has (from its --help) change no configuration: --max-rows
    and --timeout can only lower the configured limits (tested below)."""
    import contextlib
    import io

    parser = cli.build_parser()
    for name in AGENT_COMMANDS:
        with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args([name, "--config", "/tmp/x.toml", "SELECT 1"])
        assert exc.value.code == 2
        help_text = io.StringIO()
        with pytest.raises(SystemExit), contextlib.redirect_stdout(help_text):
            parser.parse_args([name, "--help"])
        options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", help_text.getvalue()))
        allowed = {"--help", "--db", "--json", "--max-rows", "--timeout", "--column", "--values"}
        assert options <= allowed, (name, options - allowed)


SHELL_RAN = "SHELL-RAN"  # what the shell prints if anything ran `echo SHELL""-RAN`


@pytest.fixture(scope="module")
def sentinel_db(pg_dsn: str) -> Iterator[str]:
    """A scratch database with a sentinel row and a table `t` the hostile inputs aim at."""
    from conftest import scratch_database

    setup = (
        "CREATE TABLE sentinel (id int PRIMARY KEY, note text);"
        "INSERT INTO sentinel VALUES (1, 'untouched');"
        "CREATE TABLE t (id int);"
        "ANALYZE"
    )
    with scratch_database(pg_dsn, setup, "doors") as name:
        yield name


def _hostile_invocations(db: str, marker: Path, evil: Path) -> list[tuple[list[str], str | None]]:
    """(argv, stdin) of every allowed command with hostile input. The echo is spelled
    `SHELL""-RAN` so that only a shell that ran it prints SHELL-RAN (an error message quoting
    the input does not); `touch` leaves a marker file for anything run on the server."""
    echo, touch = 'echo SHELL""-RAN', f"touch {marker}"
    sqls = [
        f"\\! {echo}",
        f"\\! {touch}",
        "SELECT 1; DROP TABLE t",
        "SELECT 1; DROP TABLE sentinel",
        f"COPY (SELECT 1) TO PROGRAM '{touch}'",
        f"COPY (SELECT 1) TO PROGRAM '{echo}'",
        "SET default_transaction_read_only = off",
        "DELETE FROM sentinel",
        f"SELECT 1 \\g |{echo}",
        f"SELECT 1 \\o |{touch}",
    ]
    out: list[tuple[list[str], str | None]] = []
    for sql in sqls:
        out += [
            (["validate", "--db", db, "--json", sql], None),
            (["run", "--db", db, "--json", sql], None),
        ]
    out += [
        (["validate", "--db", db, "-"], sqls[0] + "\n" + sqls[4]),
        (["run", "--db", db, "-"], sqls[1] + "\n" + sqls[3]),
        (["run", "--db", db, sqls[2]], None),
    ]
    for name in ("t; DROP TABLE t", f'"; \\! {echo}', "sentinel; DROP TABLE sentinel",
                 f"public.sentinel; COPY (SELECT 1) TO PROGRAM '{touch}'"):  # fmt: skip
        out += [(["describe", "--db", db, name], None), (["describe", "--db", db, "--json", name], None)]  # fmt: skip
    for column in ("id; DROP TABLE sentinel", f'"; \\! {echo}', "note FROM sentinel; DROP TABLE t; --"):  # fmt: skip
        out += [(["describe", "--db", db, "--json", "sentinel", "--column", column], None)]
    for name in sorted(AGENT_COMMANDS):  # a --config after the subcommand, in every spelling
        rest = {"validate": ["SELECT 1"], "run": ["--db", db, "SELECT 1"], "describe": ["--db", db]}
        tail = rest.get(name, [])
        out.append(([name, "--config", str(evil), "--json", *tail], None))
        out.append(([name, "--json", f"--config={evil}", *tail], None))
        out.append(([name, "--json", *tail, "--config", str(evil)], None))
        out.append(([name, "--json", "--conf", str(evil), *tail], None))  # an abbreviation
    return out


def test_every_allowed_command_refuses_hostile_input_cleanly(
    reader_dsn: str, pg_dsn: str, sentinel_db: str, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from conftest import db_dsn

    marker = tmp_path / "marker"
    evil = tmp_path / "evil.toml"  # would lift every guard if it were ever read
    evil.write_text(
        "[policy]\nallow_privileged_role = true\nallow_secret_catalogs = true\n"
        "[limits]\nmax_rows = 1000000\nstatement_timeout = 100000\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_MCP_", "PG"))}
    env.update(PG_MCP_DSN=reader_dsn, PG_MCP_HOME=str(tmp_path / "home"))
    pg_mcp = str(Path(sys.executable).parent / "pg-mcp")

    def call(
        job: tuple[list[str], str | None],
    ) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        argv, stdin = job
        proc = subprocess.run(
            [pg_mcp, *argv], input=stdin, capture_output=True, text=True, env=env,
            cwd=tmp_path, timeout=120,
        )  # fmt: skip
        return argv, proc

    jobs = _hostile_invocations(sentinel_db, marker, evil)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(call, jobs))
    for argv, proc in results:
        text = proc.stdout + proc.stderr
        assert SHELL_RAN not in text, (argv, text)
        assert "Traceback" not in text, (argv, text)
        if any(a.startswith("--conf") for a in argv):
            assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr, (argv, text)
            continue
        assert proc.returncode == 1, (argv, text)  # refused or failed: never accepted
        if "--json" in argv:
            lines = proc.stdout.splitlines()
            assert len(lines) == 1, (argv, proc.stdout)
            verdict = json.loads(lines[0])
            assert verdict["ok"] is False and verdict["code"] in CODES, (argv, verdict)
            if argv[0] == "describe":
                assert verdict["code"] == "UNKNOWN_OBJECT", (argv, verdict)
    assert not marker.exists(), "something ran a program"
    with psycopg.connect(db_dsn(pg_dsn, sentinel_db)) as conn:
        assert conn.execute("SELECT id, note FROM sentinel").fetchall() == [(1, "untouched")]
        assert conn.execute("SELECT to_regclass('public.t') IS NOT NULL").fetchone() == (True,)


def test_run_options_never_raise_the_configured_limits(
    reader_dsn: str, sentinel_db: str, tmp_path: Path
) -> None:
    """--max-rows and --timeout lower the configured row cap and statement timeout, never
    raise them: a pre-approved command line cannot lift a limit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG_MCP_", "PG"))}
    env.update(PG_MCP_DSN=reader_dsn, PG_MCP_HOME=str(tmp_path), PG_MCP_MAX_ROWS="50",
               PG_MCP_STATEMENT_TIMEOUT="3")  # fmt: skip
    pg_mcp = str(Path(sys.executable).parent / "pg-mcp")

    def run(*argv: str) -> dict[str, object]:
        p = subprocess.run([pg_mcp, "run", "--db", sentinel_db, "--json", *argv],
                           capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        return json.loads(p.stdout)

    out = run("--max-rows", "100000", "SELECT g FROM generate_series(1, 600) g")
    assert out["ok"] is True and out["row_count"] == 50 and out["truncated"] is True
    out = run("--timeout", "100000", "SELECT current_setting('statement_timeout') AS t")
    assert out["rows"] == [["3s"]]
    out = run("--timeout", "1", "SELECT current_setting('statement_timeout') AS t")
    assert out["rows"] == [["1s"]]  # lowering still works


def test_workflow_runs_once_states_assumptions_and_reads_the_notes() -> None:
    """Issue 12: run validates, so the workflow has no separate validate step; a short rule
    for ambiguity; the notes and their verified examples in the find-the-data step."""
    text = (SKILL / "SKILL.md").read_text(encoding="utf-8")
    steps = re.findall(r"^### \d+\. (.+)$", text, re.MULTILINE)
    assert steps == ["Find the data", "Write one query", "Run", "Judge", "Answer"]
    find = text.split("### 1. Find the data", 1)[1].split("### 2.", 1)[0]
    assert "Notes" in find and "verified examples" in find and "inferred" in find
    assert "uv run pg-mcp describe --db DB --json schema.table" in find
    write = text.split("### 2. Write one query", 1)[1].split("### 3.", 1)[0]
    for rule in ("state the assumption", "include ties", "inclusive bounds"):
        assert rule in write, rule
    assert "not attempts" in text  # exploratory look-ups do not use up the four attempts
