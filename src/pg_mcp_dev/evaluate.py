"""Execution-accuracy scoring: does a candidate query return the expected result?

Pure core (no I/O): :func:`compare_results` compares two result sets, :func:`score_case` turns a
case, the two run outcomes and candidate metadata into a :class:`CaseVerdict`, and
:func:`summarise` aggregates verdicts per database and level. The shell in
``pg_mcp.cli.commands.eval`` runs the queries through ``run_readonly``.

Comparison rules:

- columns are compared by position; their names are ignored;
- rows are compared as multisets unless the case is ordered, then row by row;
- numbers (int, float, Decimal, or numeric strings such as a serialised ``numeric``) are equal
  within a relative or absolute tolerance (1e-6 by default), or when the candidate shows the
  expected value rounded to 1-4 decimals (``round(avg(x), 2)`` for ``avg(x)``);
- dates and timestamps (ISO 8601 strings) compare as instants: a date equals midnight of that
  day and an offset is converted to UTC, so ``2024-01-01``, ``2024-01-01T00:00:00`` and
  ``2024-01-01T00:00:00+00:00`` are equal (a month bucket as date or as timestamp);
- booleans and other strings compare exactly; NULL equals NULL;
- arrays and JSON objects compare element by element with the same rules.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

REL_TOL = 1e-6
ABS_TOL = 1e-6
_NUMERIC_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_TEMPORAL_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2}(:?\d{2})?)?)?)?$"
)
_GREEDY_LIMIT = 3000  # rows; beyond this the tolerant fallback matching is skipped


# ---------------------------------------------------------------- values


def _as_number(v: Any) -> Decimal | float | None:
    """The value as a number when it is one (bools are not numbers here)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, Decimal):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, str) and _NUMERIC_RE.match(v.strip()):
        try:
            return Decimal(v.strip())
        except InvalidOperation:
            return None
    return None


def _as_temporal(v: Any) -> dt.datetime | None:
    """An ISO 8601 date or timestamp string as a naive UTC datetime (dates at midnight)."""
    if not isinstance(v, str) or not _TEMPORAL_RE.match(v):
        return None
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t


def _decimals(n: Decimal | float) -> int:
    """Number of decimals shown (trailing zeros stripped); floats via their shortest repr."""
    d = Decimal(repr(n)) if isinstance(n, float) else n
    if not d.is_finite():
        return 0
    exp = d.normalize().as_tuple().exponent
    return max(0, -int(exp))


def numbers_equal(
    expected: Decimal | float,
    got: Decimal | float,
    rel_tol: float = REL_TOL,
    abs_tol: float = ABS_TOL,
) -> bool:
    e, g = float(expected), float(got)
    if math.isnan(e) or math.isnan(g):
        return math.isnan(e) and math.isnan(g)
    if math.isinf(e) or math.isinf(g):
        return e == g
    if math.isclose(e, g, rel_tol=rel_tol, abs_tol=abs_tol):
        return True
    # the candidate rounded the expected value to 1-4 decimals
    k = _decimals(got)
    if 1 <= k <= 4 and _decimals(expected) > k:
        exp_d = Decimal(repr(expected)) if isinstance(expected, float) else expected
        got_d = Decimal(repr(got)) if isinstance(got, float) else got
        return abs(exp_d - got_d) <= Decimal(5) * Decimal(10) ** -(k + 1) + Decimal("1e-12")
    return False


def values_equal(expected: Any, got: Any) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, bool) or isinstance(got, bool):
        return isinstance(expected, bool) and isinstance(got, bool) and expected == got
    ne, ng = _as_number(expected), _as_number(got)
    if ne is not None and ng is not None:
        return numbers_equal(ne, ng)
    te, tg = _as_temporal(expected), _as_temporal(got)
    if te is not None and tg is not None:
        return te == tg
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        return len(expected) == len(got) and all(
            values_equal(a, b) for a, b in zip(expected, got, strict=True)
        )
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        return expected.keys() == got.keys() and all(
            values_equal(expected[k], got[k]) for k in expected
        )
    return _canon_scalar(expected) == _canon_scalar(got)


def _canon_scalar(v: Any) -> Any:
    return v if isinstance(v, str | int | float) else str(v)


def canonical(v: Any) -> Any:
    """A hashable key equal for values that are (almost always) values_equal.

    Numbers are rounded to 9 significant digits; that only differs from the tolerant comparison
    at rounding boundaries or with candidate rounding, which the fallback matching handles.
    """
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("bool", v)
    n = _as_number(v)
    if n is not None:
        f = float(n)
        if math.isnan(f):
            return ("num", "nan")
        if math.isinf(f):
            return ("num", f)
        r = float(f"{f:.9g}")
        return ("num", 0.0 if r == 0 else r)
    t = _as_temporal(v)
    if t is not None:
        return ("time", t.isoformat())
    if isinstance(v, list | tuple):
        return ("list", tuple(canonical(x) for x in v))
    if isinstance(v, Mapping):
        return ("map", tuple(sorted((str(k), canonical(x)) for k, x in v.items())))
    return ("str", str(v))


def rows_equal(expected: Sequence[Any], got: Sequence[Any]) -> bool:
    return len(expected) == len(got) and all(
        values_equal(a, b) for a, b in zip(expected, got, strict=True)
    )


def _short(row: Sequence[Any], limit: int = 120) -> str:
    import json

    text = json.dumps(list(row), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- result sets


@dataclass(frozen=True)
class Comparison:
    match: bool
    reason: str


def compare_results(
    expected_rows: Sequence[Sequence[Any]],
    got_rows: Sequence[Sequence[Any]],
    *,
    ordered: bool = False,
    expected_columns: int | None = None,
    got_columns: int | None = None,
) -> Comparison:
    """Compare two result sets (lists of rows) by the rules in the module docstring."""
    ne = (
        expected_columns
        if expected_columns is not None
        else (len(expected_rows[0]) if expected_rows else None)
    )
    ng = got_columns if got_columns is not None else (len(got_rows[0]) if got_rows else None)
    if ne is not None and ng is not None and ne != ng:
        return Comparison(False, f"mismatch: {ng} columns vs {ne} expected")
    if len(expected_rows) != len(got_rows):
        return Comparison(False, f"mismatch: {len(got_rows)} rows vs {len(expected_rows)} expected")
    if ordered:
        for i, (e, g) in enumerate(zip(expected_rows, got_rows, strict=True), start=1):
            if not rows_equal(e, g):
                return Comparison(
                    False, f"mismatch: row {i} differs: got {_short(g)}, expected {_short(e)}"
                )
        return Comparison(True, "match (ordered)")
    ce = Counter(tuple(canonical(v) for v in r) for r in expected_rows)
    cg = Counter(tuple(canonical(v) for v in r) for r in got_rows)
    if ce == cg:
        return Comparison(True, "match")
    if len(expected_rows) <= _GREEDY_LIMIT and _tolerant_multiset_match(expected_rows, got_rows):
        return Comparison(True, "match (within tolerance)")
    missing = ce - cg
    extra = cg - ce
    example_missing = next(r for r in expected_rows if tuple(canonical(v) for v in r) in missing)
    example_extra = next(r for r in got_rows if tuple(canonical(v) for v in r) in extra)
    n_missing = sum(missing.values())
    return Comparison(
        False,
        f"mismatch: {n_missing} of {len(expected_rows)} rows differ, "
        f"e.g. expected {_short(example_missing)} but got {_short(example_extra)}",
    )


def _tolerant_multiset_match(
    expected_rows: Sequence[Sequence[Any]], got_rows: Sequence[Sequence[Any]]
) -> bool:
    """Match every expected row to a distinct candidate row with values_equal (greedy).

    Candidates are bucketed by their non-numeric values so the search stays small.
    """

    def bucket(row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple("#" if _as_number(v) is not None else canonical(v) for v in row)

    pool: dict[tuple[Any, ...], list[Sequence[Any]]] = {}
    for g in got_rows:
        pool.setdefault(bucket(g), []).append(g)
    for e in expected_rows:
        candidates = pool.get(bucket(e))
        if not candidates:
            return False
        for i, g in enumerate(candidates):
            if rows_equal(e, g):
                candidates.pop(i)
                break
        else:
            return False
    return True


# ---------------------------------------------------------------- cases and summaries


@dataclass
class CaseVerdict:
    id: int
    database: str
    level: str
    title: str
    question: str
    status: str  # correct | mismatch | error | missing | expected_error
    correct: bool
    reason: str
    ordered: bool
    sql: str | None = None
    expected_rows: int | None = None
    candidate_rows: int | None = None
    attempts: int | None = None
    tokens: int | None = None
    latency_ms: float | None = None
    score: float | None = None  # the judge's score, when the candidate came with one
    low_confidence: bool | None = None  # ask answered with its best attempt below min_score

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _get(result: Any, key: str, default: Any = None) -> Any:
    if isinstance(result, Mapping):
        return result.get(key, default)
    return getattr(result, key, default)


def _error_text(result: Any) -> str:
    code = _get(result, "code") or "ERROR"
    msg = (_get(result, "message") or "").strip().splitlines()
    return f"{code} {msg[0]}" if msg else str(code)


def score_case(
    case: Any, expected: Any, candidate: Any | None, meta: Mapping[str, Any] | None = None
) -> CaseVerdict:
    """Verdict for one case.

    ``case`` is a QueryCase; ``expected`` and ``candidate`` are run results (RunResult or its
    ``to_dict()``); ``candidate`` is None when there was no candidate SQL. ``meta`` may carry
    sql, attempts, tokens, latency_ms, score, and an ``error`` string when producing the
    candidate failed (e.g. ask gave up).
    """
    meta = dict(meta or {})
    v = CaseVerdict(
        id=case.id,
        database=case.database,
        level=case.level,
        title=case.title,
        question=case.question,
        status="correct",
        correct=False,
        reason="",
        ordered=case.ordered,
        sql=meta.get("sql"),
        attempts=_int_or_none(meta.get("attempts")),
        tokens=_int_or_none(meta.get("tokens")),
        latency_ms=_float_or_none(meta.get("latency_ms")),
        score=_float_or_none(meta.get("score")),
        low_confidence=meta.get("low_confidence")
        if isinstance(meta.get("low_confidence"), bool)
        else None,
    )
    if not _get(expected, "ok", False):
        v.status, v.reason = "expected_error", f"expected SQL failed: {_error_text(expected)}"
        return v
    v.expected_rows = _get(expected, "row_count", len(_get(expected, "rows") or []))
    if meta.get("error"):
        v.status, v.reason = "error", f"error: {meta['error']}"
        return v
    if candidate is None:
        v.status, v.reason = "missing", "missing: no candidate SQL for this case"
        return v
    if not _get(candidate, "ok", False):
        v.status, v.reason = "error", f"error: {_error_text(candidate)}"
        return v
    v.candidate_rows = _get(candidate, "row_count", len(_get(candidate, "rows") or []))
    cmp = compare_results(
        _get(expected, "rows") or [],
        _get(candidate, "rows") or [],
        ordered=case.ordered,
        expected_columns=len(_get(expected, "columns") or []) or None,
        got_columns=len(_get(candidate, "columns") or []) or None,
    )
    note = ""
    if _get(expected, "truncated") or _get(candidate, "truncated"):
        note = " (compared on truncated results)"
    v.correct = cmp.match
    v.status = "correct" if cmp.match else "mismatch"
    v.reason = cmp.reason + note
    return v


def _int_or_none(x: Any) -> int | None:
    try:
        return None if x is None else int(x)
    except (TypeError, ValueError):
        return None


def _float_or_none(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


@dataclass
class Bucket:
    total: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        return None if self.total == 0 else self.correct / self.total

    def to_dict(self) -> dict[str, Any]:
        acc = self.accuracy
        return {
            "correct": self.correct,
            "total": self.total,
            "accuracy": None if acc is None else round(acc, 4),
        }


@dataclass
class Summary:
    overall: Bucket = field(default_factory=Bucket)
    by_database: dict[str, Bucket] = field(default_factory=dict)
    by_level: dict[str, Bucket] = field(default_factory=dict)
    by_database_level: dict[str, dict[str, Bucket]] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    expected_errors: int = 0
    mean_attempts: float | None = None
    mean_tokens: float | None = None
    total_tokens: int | None = None
    mean_latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.overall.accuracy,
            "correct": self.overall.correct,
            "total": self.overall.total,
            "expected_errors": self.expected_errors,
            "statuses": dict(sorted(self.statuses.items())),
            "by_database": {k: b.to_dict() for k, b in self.by_database.items()},
            "by_level": {k: b.to_dict() for k, b in self.by_level.items()},
            "by_database_level": {
                db: {lv: b.to_dict() for lv, b in levels.items()}
                for db, levels in self.by_database_level.items()
            },
            "mean_attempts": self.mean_attempts,
            "mean_tokens": self.mean_tokens,
            "total_tokens": self.total_tokens,
            "mean_latency_ms": self.mean_latency_ms,
        }


def _mean(xs: Iterable[float | int | None]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return round(sum(vals) / len(vals), 2) if vals else None


def summarise(
    verdicts: Sequence[CaseVerdict],
    levels: Sequence[str] = ("simple", "medium", "complex", "advanced"),
) -> Summary:
    """Accuracy overall, per database, per level and per database x level.

    Cases whose expected SQL failed are reported but left out of the accuracy.
    """
    s = Summary()
    order = {lv: i for i, lv in enumerate(levels)}
    for v in sorted(verdicts, key=lambda v: (v.database, order.get(v.level, 99), v.id)):
        s.statuses[v.status] = s.statuses.get(v.status, 0) + 1
        if v.status == "expected_error":
            s.expected_errors += 1
            continue
        for b in (
            s.overall,
            s.by_database.setdefault(v.database, Bucket()),
            s.by_level.setdefault(v.level, Bucket()),
            s.by_database_level.setdefault(v.database, {}).setdefault(v.level, Bucket()),
        ):
            b.total += 1
            b.correct += int(v.correct)
    s.by_level = dict(sorted(s.by_level.items(), key=lambda kv: order.get(kv[0], 99)))
    s.mean_attempts = _mean(v.attempts for v in verdicts)
    s.mean_tokens = _mean(v.tokens for v in verdicts)
    tokens = [v.tokens for v in verdicts if v.tokens is not None]
    s.total_tokens = sum(tokens) if tokens else None
    s.mean_latency_ms = _mean(v.latency_ms for v in verdicts)
    return s


def format_summary(
    summary: Summary, levels: Sequence[str] = ("simple", "medium", "complex", "advanced")
) -> str:
    """A plain-text table: one row per database, one column per level, plus totals."""

    def cell(b: Bucket | None) -> str:
        if b is None or b.total == 0:
            return "-"
        return f"{b.correct}/{b.total} {100 * b.correct / b.total:.0f}%"

    header = ["database", *levels, "total"]
    rows = [
        [
            db,
            *(cell(summary.by_database_level.get(db, {}).get(lv)) for lv in levels),
            cell(summary.by_database.get(db)),
        ]
        for db in summary.by_database
    ]
    rows.append(["all", *(cell(summary.by_level.get(lv)) for lv in levels), cell(summary.overall)])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))

    def fmt(x: float | None, unit: str = "") -> str:
        return "n/a" if x is None else f"{x:g}{unit}"

    acc = summary.overall.accuracy
    lines.append("")
    lines.append(
        f"execution accuracy: {'n/a' if acc is None else f'{100 * acc:.1f}%'}"
        f" ({summary.overall.correct}/{summary.overall.total})"
    )
    if summary.expected_errors:
        lines.append(f"cases whose expected SQL failed (not scored): {summary.expected_errors}")
    lines.append(
        f"mean attempts: {fmt(summary.mean_attempts)}  mean tokens: {fmt(summary.mean_tokens)}"
        f"  mean latency: {fmt(summary.mean_latency_ms, ' ms')}"
    )
    return "\n".join(lines)
