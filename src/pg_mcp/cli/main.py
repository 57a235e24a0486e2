"""The ``pg-mcp`` command line. It only translates: arguments in, core calls, output out.

Each subcommand lives in ``pg_mcp/cli/commands/<name>.py`` with ``run(args, settings) -> int``
and is imported only when used, so ``pg-mcp --help`` stays fast.
Exit codes: 0 success, 1 refused or failed (a PgMcpError), 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence

from pg_mcp import __version__

# subcommand -> (module in pg_mcp.cli.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "check that SQL is one read-only query (exit 0 accepted, 1 rejected)"),
    "run": ("run", "validate, then run SQL read-only with timeouts and row/byte caps"),
    "databases": ("databases", "list the databases reachable through the configured server"),
    "doctor": ("doctor", "show server, role and privileges; warn about risky roles"),
    "describe": ("describe", "list tables, describe one, or count a column's values (read-only)"),
    "references": ("references", "introspect databases and write Markdown references"),
    "notes": ("notes", "store a verified question -> SQL example (validated and run first)"),
    "cache": ("cache", "refresh or show the JSON schema cache"),
    "serve": ("serve", "run the MCP server (stdio or streamable HTTP)"),
    "ask": ("ask", "answer a natural-language question with an OpenAI-compatible model"),
    "stats": ("stats", "print metrics (Prometheus text format)"),
    "eval": ("eval", "score ask answers or candidate SQL against fixtures/TEST_QUERIES.md"),
    "fixtures": ("fixtures", "(re)create the db_pg_mcp_small/medium/large fixture databases"),
    "sample-dbs": ("sample_dbs", "load pagila and northwind from ../shared/databases"),
    "db": ("db", "manage the embedded PostgreSQL (start, stop, status, dsn)"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pg-mcp",
        description="Ask PostgreSQL questions in plain language; get safe SQL or its result.",
    )
    p.add_argument("--version", action="version", version=f"pg-mcp {__version__}")
    p.add_argument(
        "--config",
        metavar="PATH",
        help="pg-mcp.toml to use (default: $PG_MCP_CONFIG or ./pg-mcp.toml)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1])

    c = add("validate")
    c.add_argument("--db", metavar="NAME", help="check names and functions against this database")
    c.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    c.add_argument("sql", help="the SQL text, or - to read it from standard input")

    c = add("run")
    c.add_argument(
        "--db", metavar="NAME", help="database to run on (optional when only one is reachable)"
    )
    c.add_argument(
        "--max-rows", type=int, metavar="N", help="row cap, at most the configured one (500)"
    )
    c.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="statement timeout, at most the configured one (10)",
    )
    c.add_argument("--json", action="store_true", help="print exactly one JSON object")
    c.add_argument("sql", help="the SQL text, or - to read it from standard input")

    c = add("databases")
    c.add_argument("--json", action="store_true")

    c = add("doctor")
    c.add_argument("--json", action="store_true")

    c = add("describe")
    c.add_argument("--db", metavar="NAME", help="database (optional when only one is reachable)")
    c.add_argument("--column", metavar="COL", help="list this column's most frequent values")
    c.add_argument("--values", type=int, metavar="N", help="how many values to list (default 20)")
    c.add_argument("--json", action="store_true", help="print exactly one JSON object")
    c.add_argument(
        "table", nargs="?", metavar="TABLE", help="schema.table, or a name on the search path"
    )

    c = add("references")
    c.add_argument("--db", metavar="NAME", action="append", help="only this database (repeatable)")
    c.add_argument(
        "--out", metavar="DIR", default="references", help="output folder (default: references/)"
    )
    c.add_argument("--no-samples", action="store_true", help="do not collect sample values")

    c = add("notes")
    notes_sub = c.add_subparsers(dest="action", metavar="ACTION", required=True)
    ex = notes_sub.add_parser(
        "add-example",
        help="validate and run SQL read-only, then append it to references/notes/<db>.toml",
        description="validate and run SQL read-only, then append it to references/notes/<db>.toml",
    )
    ex.add_argument("--db", metavar="NAME", required=True, help="the database the example is for")
    ex.add_argument("--json", action="store_true", help="print exactly one JSON object")
    ex.add_argument("question", help="the question, as a person would ask it")
    ex.add_argument("sql", help="the SQL that answers it, or - to read it from standard input")

    c = add("cache")
    c.add_argument("action", choices=["refresh", "show", "path"], nargs="?", default="show")
    c.add_argument("--db", metavar="NAME", action="append")

    c = add("serve")
    c.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument(
        "--stateless",
        action="store_true",
        help="HTTP only: no MCP session kept between requests and plain JSON responses, so any "
        "replica behind a load balancer answers any request",
    )
    c.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow HTTP on a non-loopback --host without bearer auth (anyone who reaches the "
        "port can call every tool, ask included)",
    )

    c = add("ask")
    c.add_argument("--db", metavar="NAME", help="database (chosen from the question when omitted)")
    c.add_argument(
        "--return", dest="return_type", choices=["sql", "result", "both"], default="result"
    )
    c.add_argument("--json", action="store_true")
    c.add_argument("question")

    c = add("stats")
    c.add_argument(
        "--url",
        help="a running `pg-mcp serve --transport http`'s /metrics URL (default http://127.0.0.1:8000/metrics; "
        "when nothing answers there, this process's empty registry is printed)",
    )

    c = add("eval")
    c.add_argument(
        "--candidates", metavar="FILE", help="JSONL of candidate SQL to score (else ask is scored)"
    )
    c.add_argument("--queries", metavar="FILE", default="fixtures/TEST_QUERIES.md")
    c.add_argument("--db", metavar="NAME", action="append", help="only this database (repeatable)")
    c.add_argument("--level", action="append", help="only this level (repeatable)")
    c.add_argument("--report", metavar="FILE", default="eval-report.json")
    c.add_argument("--json", action="store_true")

    c = add("fixtures")
    c.add_argument(
        "--only", metavar="NAME", action="append", help="small, medium or large (repeatable)"
    )
    c.add_argument("--force", action="store_true", help="recreate even when already up to date")

    c = add("sample-dbs")
    c.add_argument("--shared", metavar="DIR", default="../shared/databases")
    c.add_argument("--force", action="store_true")

    c = add("db")
    c.add_argument("action", choices=["start", "stop", "status", "dsn"])
    return p


def check_arguments(args: argparse.Namespace) -> None:
    """Every text argument must be valid UTF-8. Python hands undecodable bytes of the command
    line over as lone surrogates; those become a one-line PARSE_ERROR here, not a traceback
    (or garbage in a query) later."""
    import os

    from pg_mcp.cli.commands.validate import decode_utf8

    for key, value in sorted(vars(args).items()):
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    decode_utf8(os.fsencode(item), f"the {key} argument")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from pg_mcp.core.errors import PgMcpError
    from pg_mcp.core.secrets import Redactor
    from pg_mcp.core.settings import load_settings

    redact = Redactor()
    if hasattr(sys.stdout, "reconfigure"):  # text the terminal cannot encode: escaped, not a crash
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        check_arguments(args)
        settings = load_settings(config_path=args.config)
        for s in settings.secrets():
            redact.add(s)
        module = importlib.import_module(f"pg_mcp.cli.commands.{COMMANDS[args.command][0]}")
        try:
            return int(module.run(args, settings) or 0)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] != "pg_mcp_dev":
                raise
            raise PgMcpError(
                "CONFIG_ERROR",
                f"`pg-mcp {args.command}` is a development command: its tools (pg_mcp_dev) "
                "ship with the source checkout, not the wheel",
                hint="run it from a clone of the repository (make setup)",
            ) from None
    except PgMcpError as exc:
        payload = {k: (redact(v) if isinstance(v, str) else v) for k, v in exc.to_dict().items()}
        if getattr(args, "json", False):
            print(json.dumps(payload, ensure_ascii=False, default=str))
        else:
            print(f"error {payload['code']}: {payload['message']}", file=sys.stderr)
            if payload.get("hint"):
                print(f"hint: {payload['hint']}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
