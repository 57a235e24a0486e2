"""Relationships no foreign key declares: candidates by name, confirmed by the data.

Schemas nobody documented often declare no keys at all; an agent then guesses every join
from column names. This module does the guessing once, and checks it:

1. **Candidates by name** (pure: ``candidates``), for every column of a table that no
   single-column foreign key covers, against the key-like columns of other tables (a
   single-column primary key or unique constraint, else a column whose name ends in
   ``id``, ``code``, ``key``, ``no``, ... that the data shows unique). The rules, strongest
   first: the same name (``film_actor.film_id`` -> ``film.film_id``); the target table's
   name with the key (``customer_id`` / ``customerid`` -> ``customers.id``); a role before
   it (``parent_company_id`` -> ``companies.company_id``, ``from_uom`` -> ``uom_code``);
   a shared prefix (``sbTxCustId`` -> ``sbCustId``); and people by role (``created_by``,
   ``manager_id``, ``assigned_to`` -> the one employees/users/staff table). Names compare
   as lower-case words (snake_case and camelCase split, plurals folded).
2. **Confirmed by the data** (``data_pass``): the target column is unique (declared, or no
   duplicate among its values: exact up to ``UNIQUE_SCAN`` rows, else within the first
   ones, and said so), and the child's distinct non-null values are found in it (all of
   them on tables up to ``CHILD_SCAN`` rows, else those of its first rows, and said so).
   At least ``MIN_MATCH`` of them must match. Per child column the strongest rule that
   confirms wins; among equals, the target whose table the column names.

Every statement is read-only (the connection is), has its own statement timeout, and the
whole pass stops at ``[references] data_budget`` seconds: what was not checked by then is
not claimed. The result is ``Constraint(kind="inferred foreign key")`` on the child table,
its ``definition`` the evidence (``100 % of 412 values match, target unique``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pg_mcp.core.model import INFERRED, Column, Constraint, DatabaseSchema, Table
from pg_mcp.core.settings import Settings

MIN_MATCH = 0.98  # share of the child's distinct values that must be found in the target
CHILD_SCAN = 100_000  # rows of a child read for its distinct values (more: the first ones)
UNIQUE_SCAN = 100_000  # rows of a target checked for duplicates (more: the first ones)
MAX_DISTINCT = 10_000  # distinct child values looked up at most
STATEMENT_TIMEOUT_MS = 5_000

_KEY_SUFFIX = frozenset({"id", "code", "key", "no", "nr", "num", "number", "uuid", "ref", "sku"})
_GENERIC = frozenset({"id", "uuid", "key", "code", "pk", "oid", "no", "nr", "num", "number", "ref"})
_PEOPLE = ("employee", "user", "staff", "person", "member", "agent")
_ROLE_END = frozenset({"id", "by", "to"})
# a column ending in one of these measures something: never a reference (package_count)
_MEASURES = frozenset(
    [
        "count",
        "qty",
        "quantity",
        "amount",
        "total",
        "size",
        "number",
        "sum",
        "avg",
        "rate",
        "price",
        "cost",
        "score",
        "level",
    ]
)
# words naming the person in a role: manager_id, approved_by, assigned_to, sales_rep_id
_ROLES = frozenset(
    [
        "manager",
        "owner",
        "buyer",
        "driver",
        "approver",
        "reviewer",
        "requester",
        "requested",
        "approved",
        "assigned",
        "assignee",
        "created",
        "creator",
        "updated",
        "modified",
        "changed",
        "received",
        "counted",
        "evaluated",
        "inspector",
        "operator",
        "technician",
        "rep",
        "author",
        "supervisor",
        "reporter",
        "handler",
        "seller",
        "cashier",
        "editor",
        "submitted",
        "closed",
        "opened",
        "resolved",
        "signed",
        "responsible",
        "lead",
    ]
)
_INT = frozenset({"smallint", "integer", "bigint", "numeric", "int2", "int4", "int8", "oid"})
_TEXT = frozenset({"text", "character varying", "character", "varchar", "bpchar", "citext", "name"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


# --------------------------------------------------------------------------- names (pure)
@lru_cache(maxsize=65536)
def singular(word: str) -> str:
    w = word.lower()
    if w in ("people", "persons"):
        return "person"
    if w in ("staff", "status", "address", "class", "series", "data", "news"):
        return w
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes", "zes", "uses")):
        return w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


@lru_cache(maxsize=65536)
def tokens(name: str) -> tuple[str, ...]:
    """Lower-case words of an identifier, plurals folded: ``sbTxCustId`` -> (sb, tx, cust, id)."""
    spaced = _CAMEL.sub("_", name)
    return tuple(singular(w) for w in re.split(r"[^A-Za-z0-9]+", spaced) if w)


def type_group(col: Column) -> str | None:
    """Columns compare only within a group: integers, text, uuid (others: never keys here)."""
    typ = (col.base_type or col.type).lower()
    base = re.sub(r"\(.*\)", "", typ).strip()
    if base == "numeric" and re.search(r",\s*[1-9]", typ):
        return None  # numeric with decimals: an amount, not a key
    if base in _INT:
        return "int"
    if base in _TEXT:
        return "text"
    if base == "uuid":
        return "uuid"
    return None


@dataclass(frozen=True)
class Target:
    table: Table
    column: Column
    declared: str | None  # "primary key" | "unique" | None (uniqueness to be observed)


@dataclass(frozen=True)
class Candidate:
    child: Table
    column: Column
    target: Target
    rule: int  # 0 strongest
    names_table: int  # 2: the column's words name the target table, 1: its last word, 0: no


def _table_words(t: Table) -> tuple[str, ...]:
    return tokens(t.name)


def _declared_keys(t: Table) -> dict[str, str]:
    out: dict[str, str] = {}
    for c in t.constraints:
        if c.kind in ("primary key", "unique") and len(c.columns) == 1:
            out.setdefault(c.columns[0], c.kind)
    for i in t.indexes:
        if i.unique and not i.predicate and len(i.columns) == 1:
            out.setdefault(i.columns[0], "primary key" if i.primary else "unique")
    return out


def _keyish(col: Column, t: Table) -> bool:
    toks = tokens(col.name)
    if not toks:
        return False
    glued = len(toks) == 1 and len(toks[0]) >= 5 and toks[0].endswith(("id", "code", "key"))
    return toks[-1] in _KEY_SUFFIX or glued or toks == _table_words(t)


def _eligible(t: Table) -> bool:
    return t.kind in ("table", "partitioned table") and not t.partition_of


def targets_of(db: DatabaseSchema) -> list[Target]:
    out = []
    for t in db.tables:
        if not _eligible(t) or t.row_estimate == 0:
            continue
        keys = _declared_keys(t)
        refs = {c for k in t.constraints if k.kind == "foreign key" for c in k.columns}
        for col in t.columns:
            if type_group(col) is None:
                continue
            declared = keys.get(col.name)
            if declared is None and col.name in refs:
                continue  # a column that refers elsewhere is not a key here
            if declared or _keyish(col, t):
                out.append(Target(t, col, declared))
    return out


def _ends_with(seq: tuple[str, ...], tail: tuple[str, ...]) -> bool:
    return len(tail) <= len(seq) and seq[len(seq) - len(tail) :] == tail


def _subsequence(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
    it = iter(long)
    return all(w in it for w in short)


def _rule(child: Table, col: Column, tgt: Target) -> int | None:
    """The strongest name rule relating ``child.col`` to ``tgt`` (0 strongest), or None."""
    same_table = child is tgt.table
    if same_table and col.name == tgt.column.name:
        return None
    return name_rule(
        col.name, tgt.column.name, tgt.table.name, same_table, tgt.declared, child.name
    )


@lru_cache(maxsize=262144)
def name_rule(
    column: str,
    key: str,
    table: str,
    same_table: bool,
    declared: str | None,
    child_table: str = "",
) -> int | None:
    c, k, u = tokens(column), tokens(key), tokens(table)
    if not c or not k or not u:
        return None
    col_name, tgt_name = column, key
    key_is_id = k in (("id",), ("uuid",))
    if not same_table and col_name.lower() == tgt_name.lower():
        if len(k) == 1 and k[0] in _GENERIC:
            return None
        if k[-1] not in _KEY_SUFFIX and not _names(k, u):
            return None  # email, name, status: equal names, but not keys
        return 0
    # the target table's name with its key: customer_id, customerid -> customers.id / .customer_id
    if not same_table and (c == u + k or (key_is_id and c == (*u, "id"))):
        return 0
    if not same_table and "".join(c) in ("".join(u) + "id", "".join(u + k)):
        return 0
    # a role before the key: parent_company_id -> companies.company_id, from_uom -> uom_code
    if len(c) > len(k) and len(k) >= 2 and _ends_with(c, k):
        return 1
    if key_is_id and len(c) > len(u) + 1 and _ends_with(c, (*u, "id")):
        return 1
    if (
        len(k) >= 2
        and k[-1] in _KEY_SUFFIX
        and c[-1] not in _KEY_SUFFIX
        and c[-1] not in _MEASURES
        and _ends_with(c, k[:-1])
        and _names(k[:-1], u)
    ):
        return 2
    # a shared prefix: sbTxCustId -> sbCustId (same first and last words, the key's in order)
    if len(k) >= 3 and len(c) > len(k) and c[0] == k[0] and c[-2:] == k[-2:] and _subsequence(k, c):
        return 2
    # the same, glued (sbtxcustid -> sbcustid): the tables' common prefix, then the key's rest
    cs, ks = "".join(c), "".join(k)
    for i in range(2, len(ks) - 3):
        prefix, rest = ks[:i], ks[i:]
        if (
            cs.startswith(prefix)
            and cs.endswith(rest)
            and len(cs) > len(ks)
            and rest.endswith(("id", "code", "key", "no", "num"))
            and len(rest) >= 4
            and child_table.lower().startswith(prefix)
            and table.lower().startswith(prefix)
        ):
            return 2
    # people by role: created_by, manager_id, assigned_to -> the employees/users table's key
    if (
        len(u) == 1
        and u[0] in _PEOPLE
        and declared == "primary key"
        and c[-1] in _ROLE_END
        and any(w in _ROLES for w in c[:-1])
    ):
        return 3
    return None


def _names(stem: tuple[str, ...], table: tuple[str, ...]) -> bool:
    """Does a key's stem name its table (``country`` / countries, ``uom`` / units_of_measure)?"""
    if not stem or not table:
        return False
    return stem[-1] == table[-1] or "".join(stem) == "".join(w[0] for w in table)


def names_score(col_tokens: tuple[str, ...], table: Table) -> int:
    """2: the column is the table's name and a key word; 1: it names the table's last word."""
    u, stem = _table_words(table), col_tokens[:-1]
    if not stem:
        return 0
    if stem == u or _ends_with(stem, u):
        return 2
    return 1 if stem[-1] == u[-1] else 0


def candidates(db: DatabaseSchema) -> list[Candidate]:
    """Every (child column, target key) pair some name rule relates (pure)."""
    # targets by the words a related column would share with them (every rule needs one),
    # so each column is compared with a few targets, not all of them
    index: dict[tuple[str, str], list[Target]] = {}
    people: dict[str, list[Target]] = {}
    for tgt in targets_of(db):
        group = type_group(tgt.column) or ""
        k, u = tokens(tgt.column.name), _table_words(tgt.table)
        keys = {w for w in (*k, *u) if w not in _GENERIC} | {"".join(u) + "id", "".join(u + k)}
        if len(k) == 1 and len(k[0]) >= 5:  # glued names sharing a prefix (sbtxcustid, sbcustid)
            keys.add("^" + k[0][:2])
        for w in keys:
            index.setdefault((group, w), []).append(tgt)
        if len(u) == 1 and u[0] in _PEOPLE:
            people.setdefault(group, []).append(tgt)
    out = []
    for t in db.tables:
        if not _eligible(t) or t.row_estimate == 0:
            continue
        declared_fk = {col for c in t.constraints if c.kind == "foreign key" for col in c.columns}
        own_pk = [c.columns for c in t.constraints if c.kind == "primary key"]
        for col in t.columns:
            group = type_group(col)
            if group is None or col.name in declared_fk:
                continue
            ctoks = tokens(col.name)
            if not ctoks:
                continue
            sole_pk = bool(own_pk) and own_pk[0] == [col.name]
            own_key = sole_pk or (
                len(ctoks) >= 2
                and ctoks[-1] in _KEY_SUFFIX
                and names_score(ctoks, t) > 0
                and col.name not in declared_fk
                and _declared_keys(t).get(col.name) is not None
            )
            near: dict[int, Target] = {}
            for w in (*ctoks, "".join(ctoks), "^" + "".join(ctoks)[:2]):
                for tgt in index.get((group, w), ()):
                    near.setdefault(id(tgt), tgt)
            if any(w in _ROLES for w in ctoks):
                for tgt in people.get(group, ()):
                    near.setdefault(id(tgt), tgt)
            for tgt in near.values():
                rule = _rule(t, col, tgt)
                if rule is None:
                    continue
                names = names_score(ctoks, tgt.table)
                if own_key and (rule > 0 or names < 2 or names_score(ctoks, t) > 0):
                    continue  # the table's own key: referenced, unless it names another table
                out.append(Candidate(t, col, tgt, rule, names))
    return out


# --------------------------------------------------------------------------- the data pass
def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rel(t: Table) -> str:
    return f"{_ident(t.schema)}.{_ident(t.name)}"


def _rows(t: Table) -> int:
    return t.row_estimate if t.row_estimate is not None and t.row_estimate >= 0 else CHILD_SCAN + 1


def unique_sql(tgt: Target) -> str:
    col, rel = _ident(tgt.column.name), _rel(tgt.table)
    source = (
        rel
        if _rows(tgt.table) <= UNIQUE_SCAN
        else f"(SELECT {col} FROM {rel} LIMIT {UNIQUE_SCAN}) s"
    )
    return f"SELECT count({col}), count(DISTINCT {col}) FROM {source}"


def containment_sql(cand: Candidate) -> str:
    """How many of the child's distinct values the target holds: an index probe per value
    when the target is a declared key, else one hashed subplan (no index to probe)."""
    col, rel = _ident(cand.column.name), _rel(cand.child)
    key, target = _ident(cand.target.column.name), _rel(cand.target.table)
    source = rel
    if _rows(cand.child) > CHILD_SCAN:
        source = f"(SELECT {col} FROM {rel} LIMIT {CHILD_SCAN}) s"
    if cand.target.declared:
        found = f"EXISTS (SELECT FROM {target} p WHERE p.{key} = d.v)"
    else:
        found = f"d.v IN (SELECT p.{key} FROM {target} p)"
    return (
        f"SELECT count(*), count(*) FILTER (WHERE {found}) FROM (SELECT DISTINCT {col} AS v"
        f" FROM {source} WHERE {col} IS NOT NULL LIMIT {MAX_DISTINCT}) d"
    )


def _evidence(matched: int, total: int, tgt: Target, unique_note: str, sampled: bool) -> str:
    """``100 % of 412 values match, target is a primary key`` (and how much was checked)."""
    pct = 100.0 * matched / total
    share = "100 %" if matched == total else (f"{pct:.1f} %" if pct > 99 else f"{pct:.0f} %")
    text = f"{share} of {total:,} value{'s' if total != 1 else ''} match"
    if sampled:
        text += f" (of the first {CHILD_SCAN:,} rows, at most {MAX_DISTINCT:,} values)"
    return f"{text}, target {unique_note}"


Query = Callable[[str], "tuple[Any, ...] | None"]


def infer(
    db: DatabaseSchema,
    query: Query,
    *,
    budget: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[tuple[Candidate, str]]:
    """Confirm the name candidates with ``query`` (one row of a statement, or None when it
    failed), strongest rule first, within ``budget`` seconds; add the winners to the model."""
    deadline = clock() + budget
    by_child: dict[tuple[str, str], list[Candidate]] = {}
    for cand in candidates(db):
        by_child.setdefault((cand.child.qualified, cand.column.name), []).append(cand)
    unique: dict[tuple[str, str], str | None] = {}  # target -> "unique (observed)" or None

    def target_unique(tgt: Target) -> str | None:
        if tgt.declared:
            return "is a primary key" if tgt.declared == "primary key" else "unique"
        key = (tgt.table.qualified, tgt.column.name)
        if key not in unique:
            row = query(unique_sql(tgt))
            ok = row is not None and row[0] and row[0] == row[1]
            note = "unique (observed"
            if _rows(tgt.table) > UNIQUE_SCAN:
                note += f" in its first {UNIQUE_SCAN:,} rows"
            unique[key] = note + ")" if ok else None
        return unique[key]

    found: list[tuple[Candidate, str]] = []
    for key in sorted(by_child):
        if clock() > deadline:
            break
        cands = sorted(
            by_child[key],
            key=lambda c: (
                c.rule,
                -c.names_table,
                c.target.table.schema != c.child.schema,
                len(_table_words(c.target.table)),
                c.target.declared is None,
                c.target.table.qualified,
            ),
        )
        best: tuple[Candidate, str] | None = None
        for cand in cands:  # the first one the data confirms
            if clock() > deadline:
                break
            note = target_unique(cand.target)
            if note is None:
                continue
            row = query(containment_sql(cand))
            if row is None:
                continue
            total, matched = int(row[0]), int(row[1])
            if total == 0:  # no value to check: the name alone, when it is a strong one
                if cand.rule <= 1 and cand.target.declared and cand.names_table:
                    best = (cand, "by name only: the column holds no values to check")
                    break
                continue
            if matched < MIN_MATCH * total:
                continue
            sampled = _rows(cand.child) > CHILD_SCAN or total >= MAX_DISTINCT
            best = (cand, _evidence(matched, total, cand.target, note, sampled))
            break
        if best is not None:
            found.append(best)
    for cand, evidence in found:
        cand.child.constraints.append(
            Constraint(
                name="inferred",
                kind=INFERRED,
                columns=[cand.column.name],
                definition=evidence,
                ref_schema=cand.target.table.schema,
                ref_table=cand.target.table.name,
                ref_columns=[cand.target.column.name],
            )
        )
        cand.child.constraints.sort(key=lambda c: (c.kind, c.name, c.columns))
    return found


def data_pass(
    conn: Any,
    db: DatabaseSchema,
    settings: Settings,
    *,
    profiles: list[Any] | None = None,
    connect: Callable[[], Any] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Profile columns (``pg_mcp.db.profiles``) and infer relationships within
    ``[references] data_budget`` seconds, every statement in a read-only, rolled-back
    transaction of its own with its own timeout. With ``connect`` (a second connection like ``conn``), the two run
    side by side, the profiles on a worker thread: the server works on both at once."""
    import threading

    import psycopg

    from pg_mcp.db import profiles as prof

    budget = float(settings.data_budget)
    if budget <= 0:
        return
    deadline = clock() + budget

    from pg_mcp.db.pools import local_settings_sql

    limits = local_settings_sql(
        (("statement_timeout", str(STATEMENT_TIMEOUT_MS)), ("lock_timeout", "1000"))
    )

    def runner(c: Any) -> Callable[[str], tuple[Any, ...] | None]:
        c.read_only = True  # transaction() blocks start BEGIN READ ONLY

        def query(sql: str) -> tuple[Any, ...] | None:
            # its own read-only, rolled-back transaction with its limits set locally: the
            # connection keeps no state between statements (PgBouncer in transaction mode)
            try:
                with c.transaction(force_rollback=True):
                    c.execute(limits)
                    return c.execute(sql).fetchone()  # type: ignore[no-any-return]
            except psycopg.Error:
                return None  # timed out, not readable, incomparable types: nothing learnt

        return query

    n = settings.max_samples if settings.samples else 0
    failure: list[BaseException] = []

    def do_profiles(query: Callable[[str], tuple[Any, ...] | None]) -> None:
        try:
            prof.profile(profiles or [], query, n_values=n, deadline=deadline, clock=clock)
        except BaseException as exc:  # re-raised on the caller's thread
            failure.append(exc)

    second = None
    if connect is not None and profiles:
        try:
            second = connect()
        except Exception:
            second = None  # no second connection (a connection limit): one after the other
    if second is None:
        query = runner(conn)
        do_profiles(query)
        infer(db, query, budget=max(0.0, deadline - clock()), clock=clock)
    else:
        with second:
            worker = threading.Thread(target=do_profiles, args=(runner(second),), daemon=True)
            worker.start()
            try:
                infer(db, runner(conn), budget=budget, clock=clock)
            finally:
                worker.join()
    if failure:
        raise failure[0]
    prof.apply_counts(profiles or [])
