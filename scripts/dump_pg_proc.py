"""Dump the pg_catalog functions of one PostgreSQL server into fixtures/pg_catalog/pg_proc-<major>.txt.

    .venv/bin/python scripts/dump_pg_proc.py --bindir /usr/lib/postgresql/15/bin
    .venv/bin/python scripts/dump_pg_proc.py --dsn postgresql://...

With --bindir a throwaway cluster is created (initdb) in a temporary directory and started
on a Unix socket only (no TCP), read, then stopped and removed. One line per overload of
a function in pg_catalog that is not an extension member (the core catalog, pg_proc.dat):

    name <TAB> nargs <TAB> nargdefaults <TAB> variadic(0/1) <TAB> provolatile <TAB> prokind

sorted and without duplicates. scripts/classify_functions.py reads these files.
"""

from __future__ import annotations

import argparse
import functools
import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

QUERY = """
SELECT p.proname, p.pronargs, p.pronargdefaults, (p.provariadic <> 0)::int, p.provolatile, p.prokind
FROM pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace
  AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
"""
SYSTEM_USER = "pgserver"
OUT = Path(__file__).resolve().parent.parent / "fixtures" / "pg_catalog"


def rows_from(dsn: str) -> tuple[int, list[str]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        major = int(
            conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()[0]
        )  # type: ignore[index]
        rows = conn.execute(QUERY).fetchall()
    lines = sorted({"\t".join(str(v) for v in r) for r in rows})
    return major, lines


def with_cluster(bindir: Path) -> tuple[int, list[str]]:
    """A throwaway cluster; PostgreSQL refuses root, so as root its tools run as the
    ``pgserver`` system user (the one the embedded wheel creates)."""
    as_root = os.name != "nt" and os.geteuid() == 0
    kw: dict[str, object] = (
        {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []} if as_root else {}
    )
    with tempfile.TemporaryDirectory(prefix="pgproc-") as tmp:
        if as_root:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(tmp, entry.pw_uid, entry.pw_gid)
        data, sock = Path(tmp) / "data", Path(tmp)
        run = functools.partial(subprocess.run, capture_output=True, cwd=tmp, **kw)
        run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
        )
        opts = f"-c listen_addresses='' -k {sock} -p 54329"
        log = str(Path(tmp) / "log")
        run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l", log, "start"],
            check=True,
        )
        try:
            return rows_from(f"host={sock} port=54329 user=postgres dbname=postgres")
        finally:
            run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument(
        "--bindir", type=Path, help="a PostgreSQL bin directory (initdb, pg_ctl, postgres)"
    )
    g.add_argument("--dsn", help="a running server")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    major, lines = with_cluster(a.bindir) if a.bindir else rows_from(a.dsn)
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"pg_proc-{major}.txt"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{path}: {len(lines)} overloads, {len({ln.split(chr(9))[0] for ln in lines})} names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
