"""Run every benchmark, collect their ``name: value`` lines, check the targets.

Each script runs as a subprocess (with a timeout) and prints ``name: value`` lines measured
against a baseline from the same run. This prints them per script, then one
``target_ok: <script> <name> <value> <= <limit>: yes/no`` line per target, and writes
everything to bench/results/latest.txt (git-ignored).

    uv run python bench/run_all.py                   # all (what `make bench` runs)
    uv run python bench/run_all.py --only validate,run
    uv run python bench/run_all.py --quick           # fewer samples, for a smoke run

Exit status: 1 if a script failed or timed out (or, with --strict, missed a target).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*): (.+)$")


@dataclass(frozen=True)
class Script:
    name: str  # short name for --only
    path: str
    timeout: float  # seconds
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()  # arguments for --quick


SCRIPTS = (
    Script("validate", "bench_validate.py", 600, (), ("--repeat", "3")),
    Script("run", "bench_run.py", 900, (), ("--n", "50", "--fetches", "3")),
    Script("serve", "bench_serve.py", 900, (), ("-n", "3")),
    Script("ask_tokens", "bench_ask_tokens.py", 900, (), ("--questions", "5")),
    Script("references", "bench_references.py", 3600, (), ("--runs", "1")),
    Script("scale", "bench_scale.py", 900, (), ("--rounds", "3")),
    Script("joins", "bench_joins.py", 1800),
)

# (script, figure, limit): the figure must be <= limit (issue 7); a negative limit -L means
# the figure must be >= L (issue 12: join recovery)
TARGETS = (
    ("bench_joins.py", "join_recovery_worst", -0.9),
    ("bench_references.py", "references_vs_pg_dump_ratio", 1.0),
    ("bench_validate.py", "validate_vs_parse_ratio", 1.5),
    ("bench_run.py", "run_vs_psycopg_ratio", 1.3),
    ("bench_serve.py", "serve_vs_bare_ratio", 1.5),
)


@dataclass
class Outcome:
    script: Script
    status: str = "ok"  # ok | failed (exit N) | timeout | missing
    seconds: float = 0.0
    figures: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    stderr_tail: str = ""


def run_one(script: Script, quick: bool) -> Outcome:
    out = Outcome(script)
    path = BENCH / script.path
    if not path.exists():
        out.status = "missing"
        return out
    cmd = [sys.executable, str(path), *(script.quick if quick else script.args)]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends all of it
    )
    try:
        stdout, stderr = proc.communicate(timeout=script.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
        out.status = "timeout"
    out.seconds = time.perf_counter() - started
    if out.status == "ok" and proc.returncode != 0:
        out.status = f"failed (exit {proc.returncode})"
    for line in (stdout or "").splitlines():
        m = LINE.match(line.strip())
        if m:
            out.figures[m.group(1)] = m.group(2).strip()
            out.lines.append(f"{m.group(1)}: {m.group(2).strip()}")
    out.stderr_tail = "\n".join((stderr or "").strip().splitlines()[-15:])
    return out


def check_targets(outcomes: list[Outcome]) -> list[tuple[str, bool | None]]:
    by_path = {o.script.path: o for o in outcomes}
    lines: list[tuple[str, bool | None]] = []
    for path, figure, limit in TARGETS:
        o = by_path.get(path)
        if o is None:
            continue
        raw = o.figures.get(figure)
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
        op, bound = ("<=", limit) if limit >= 0 else (">=", -limit)
        if value is None:
            lines.append(
                (f"target_ok: {path} {figure} {op} {bound:g}: unknown (not measured)", None)
            )
            continue
        ok = value <= bound if op == "<=" else value >= bound
        verdict = "yes" if ok else "no"
        lines.append((f"target_ok: {path} {figure} {value:g} {op} {bound:g}: {verdict}", ok))
    return lines


def header() -> list[str]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    dsn = "PG_MCP_DSN" if os.environ.get("PG_MCP_DSN") else "embedded PostgreSQL"
    return [
        f"# pg-mcp benchmarks, {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"# commit {commit or '?'} (plus uncommitted changes, if any); server: {dsn}",
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "# command: uv run python bench/run_all.py",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ", ".join(s.name for s in SCRIPTS)
    ap.add_argument("--only", help=f"comma-separated subset of: {names}")
    ap.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--out", type=Path, default=RESULTS / "latest.txt")
    args = ap.parse_args(argv)

    chosen = list(SCRIPTS)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        unknown = wanted - {s.name for s in SCRIPTS}
        if unknown:
            ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))} (known: {names})")
        chosen = [s for s in SCRIPTS if s.name in wanted]

    report = header()
    for line in report:
        print(line, flush=True)
    outcomes: list[Outcome] = []
    for script in chosen:
        print(f"\n## {script.path}", flush=True)
        o = run_one(script, args.quick)
        outcomes.append(o)
        section = [f"## {script.path} ({o.status}, {o.seconds:.1f} s)", *o.lines]
        for line in o.lines:
            print(line, flush=True)
        print(f"({o.status}, {o.seconds:.1f} s)", flush=True)
        if o.status != "ok" and o.stderr_tail:
            print(o.stderr_tail, file=sys.stderr, flush=True)
            section += ["# stderr (tail):", *(f"#   {x}" for x in o.stderr_tail.splitlines())]
        report += ["", *section]

    targets = check_targets(outcomes)
    print()
    report.append("")
    for line, _ in targets:
        print(line)
        report.append(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(report) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")

    failed = [o for o in outcomes if o.status != "ok"]
    missed = [line for line, ok in targets if ok is False]
    if failed:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
