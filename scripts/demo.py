"""`make demo`: the whole pipeline on the configured server (embedded by default).

Runs after `make fixtures`: lists the databases, writes references, shows the safety
core refusing hostile SQL and running a real question's SQL read-only, lists the MCP
server's tools through a real MCP client, and, when a model is configured
(OPENAI_API_KEY or OPENAI_BASE_URL), answers a question with `ask`.

Usage: python scripts/demo.py [--skip-references]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGMCP = [sys.executable, "-m", "pg_mcp.cli.main"]


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def pgmcp(*args: str, check: bool = True) -> int:
    print("$ pg-mcp " + " ".join(a if " " not in a else repr(a) for a in args), flush=True)
    rc = subprocess.call([*PGMCP, *args], cwd=ROOT)
    if check and rc != 0:
        sys.exit(f"pg-mcp {args[0]} failed with exit code {rc}")
    return rc


def list_tools() -> None:
    import anyio

    async def main() -> None:
        from mcp.client.session import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "pg_mcp.cli.main", "serve"],
            env={**os.environ, "PG_MCP_LOG_LEVEL": os.environ.get("PG_MCP_LOG_LEVEL", "WARNING")},
            cwd=str(ROOT),
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            for tool in tools.tools:
                first = (tool.description or "").strip().splitlines()[0] if tool.description else ""
                print(f"  - {tool.name}: {first}")
            result = await session.call_tool(
                "run_readonly",
                {
                    "sql": "SELECT status, count(*) AS orders FROM orders GROUP BY status ORDER BY 2 DESC, 1",
                    "database": "db_pg_mcp_small",
                },
            )
            print(
                f"  run_readonly -> is_error={result.is_error}: {result.structured_content or result.content}"
            )

    anyio.run(main)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-references", action="store_true")
    args = parser.parse_args()

    step("1. Databases reachable through the configured server")
    pgmcp("databases")

    if not args.skip_references:
        step("2. Markdown references for the agent (references/)")
        pgmcp(
            "references",
            "--db",
            "db_pg_mcp_small",
            "--db",
            "db_pg_mcp_medium",
            "--db",
            "db_pg_mcp_large",
        )

    step("3. The safety core refuses anything that is not one read-only query")
    for sql in (
        "DELETE FROM orders",
        "SELECT 1; DROP TABLE orders",
        "SELECT pg_sleep(10)",
        "SELECT * FROM pg_read_file('/etc/passwd')",
    ):
        pgmcp("validate", sql, check=False)

    step("4. A question's SQL, validated and run read-only (timeouts, row and byte caps)")
    pgmcp(
        "run",
        "--db",
        "db_pg_mcp_small",
        "--max-rows",
        "10",
        "SELECT c.name AS category, count(*) AS products, round(avg(p.price), 2) AS avg_price "
        "FROM products p JOIN categories c ON c.category_id = p.category_id GROUP BY c.name ORDER BY products DESC, category",
        check=False,
    )

    step("5. The MCP server (pg-mcp serve) through a real MCP client over stdio")
    list_tools()

    step("6. ask: natural language in, safe SQL and its result out")
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        pgmcp(
            "ask",
            "--db",
            "db_pg_mcp_small",
            "--return",
            "both",
            "每个类别有多少个商品？",
            check=False,
        )
    else:
        print(
            "  skipped: set OPENAI_API_KEY (or OPENAI_BASE_URL for a local endpoint) to try `pg-mcp ask`."
        )
        print(
            "  In Claude Code no key is needed: open this folder and ask; the pg-mcp skill does the rest."
        )
    print("\nDone. Next: `make test`, or open this folder in Claude Code and ask a question.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
