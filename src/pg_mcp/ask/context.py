"""Pick the part of a schema a question needs, and render it compactly for a prompt (pure).

Scoring (per table, IDF-weighted so that ``id``/``name``/``created_at`` count for little):
question terms (English words, stemmed; CJK bigrams and characters) matched against the
table name (strongest), the table comment, column names and column comments; sample
values and enum labels the question mentions; then foreign-key neighbours of the strong
tables and bridge tables joining two of them get a share of their score. Tables are
packed best-first within a token budget (full detail, else a one-line brief), and the
names of the rest are listed when room remains. A schema that fits the budget whole is
rendered whole.

Tokens are estimated: ~4 characters per token for Latin text, ~1 per CJK character.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pg_mcp.core.datatext import quote_text, sql_literal
from pg_mcp.core.model import INFERRED, Column, DatabaseSchema, Function, Table
from pg_mcp.refs.render import ident, profile_range

_CJK_CHAR = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset(
    """a an the of in on at for to by with from and or not no is are was were be been being what
    which who whom whose how many much each every per all any list show give me my our we i you
    find get tell return display did do does done have has had their its it this that these those
    there than then as into over under between top most least more less please can could would
    should will shall may might one ones also only just some other when where why about
    whether""".split()  # noqa: SIM905
)
# Chinese function characters: bigrams containing a strong one are skipped; weak ones
# are not used as single-character terms.
_CJK_STRONG_STOP = set("的了吗呢吧是和与及或在")
_CJK_WEAK_STOP = set(
    "个每各多少哪些什么请给我们你他她它这那中为按从对被把将所其最前后并且也都就还一二三上下不没几如何谁得地查询列出显示共有到"
)

# The Chinese -> English glossary of common data words (user -> users, 订单 -> orders) lives in
# the notes (references/notes/_glossary.toml, and each database's own terms): it arrives
# here as ``DatabaseSchema.glossary`` (pg_mcp.refs.notes.apply).

# field weights
W_NAME, W_TCOMMENT, W_COLNAME, W_CCOMMENT, W_SAMPLE = 4.0, 3.0, 1.5, 1.0, 3.0
W_ALIAS, W_SCHEMA = 2.5, 1.5
W_UNIGRAM = 0.3  # factor for single CJK characters
PARENT_SHARE, CHILD_SHARE, BRIDGE_SHARE = 0.45, 0.25, 0.5
RELEVANCE_CUTOFF = 0.3  # tables scoring below this share of the best one are left out
MAX_GLOSSARY_LINES = 8  # glossary terms of the question shown in the prompt


def estimate_tokens(text: str) -> int:
    """Rough token count: CJK characters ~1 token each, other text ~4 characters per token."""
    if not text:
        return 0
    cjk = len(_CJK_CHAR.findall(text))
    return math.ceil((len(text) - cjk) / 4 + cjk)


def stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("sses"):
        return word[:-2]
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 4 and word.endswith(("ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str | None) -> set[str]:
    """Stemmed lower-case words of a text or identifier (snake_case and camelCase split)."""
    if not text:
        return set()
    text = _CAMEL.sub(" ", text).lower()
    return {stem(w) for w in _WORD.findall(text) if len(w) >= 2 and w not in STOPWORDS}


def cjk_terms(text: str | None) -> set[str]:
    """CJK bigrams, and single characters prefixed with '1:' (weighted lower)."""
    if not text:
        return set()
    out: set[str] = set()
    for run in _CJK_RUN.findall(text):
        for i, ch in enumerate(run):
            if ch not in _CJK_WEAK_STOP and ch not in _CJK_STRONG_STOP:
                out.add("1:" + ch)
            if i + 1 < len(run):
                pair = run[i : i + 2]
                if pair[0] in _CJK_STRONG_STOP or pair[1] in _CJK_STRONG_STOP:
                    continue
                if pair[0] in _CJK_WEAK_STOP and pair[1] in _CJK_WEAK_STOP:
                    continue
                out.add(pair)
    return out


def terms(text: str | None) -> set[str]:
    return words(text) | cjk_terms(text)


def question_terms(question: str, glossary: dict[str, str] | None = None) -> set[str]:
    """Terms of a question, plus the words glossary terms it contains stand for."""
    out = terms(question)
    lower = question.lower()
    for term, meaning in (glossary or {}).items():
        if term and term.lower() in lower:
            out |= words(meaning)
    return out


# --------------------------------------------------------------------------- scoring
@dataclass
class _Features:
    name: set[str]
    alias: set[str]  # role names of foreign keys pointing here (author_id -> users: "author")
    schema: set[str]  # words of the schema name ("sales", "hr")
    tcomment: set[str]
    colnames: set[str]
    ccomment: set[str]
    samples: list[tuple[str, str]]  # (lower-cased value, column name)

    def all(self) -> set[str]:
        return self.name | self.alias | self.schema | self.tcomment | self.colnames | self.ccomment


def _features(t: Table, alias: set[str] | None = None) -> _Features:
    samples: list[tuple[str, str]] = []
    for c in t.columns:
        for v in (c.samples or []) + (c.enum_labels or []):
            s = str(v).strip().lower()
            if _mentionable(s):
                samples.append((s, c.name))
    return _Features(
        name=words(t.name) | {t.name.lower()},
        alias=set(alias or ()),
        schema=words(t.schema) - {"public"},
        tcomment=terms(t.comment) | terms(t.note),
        colnames=set().union(*(words(c.name) | {c.name.lower()} for c in t.columns))
        if t.columns
        else set(),
        ccomment=set().union(*(terms(c.comment) | terms(c.note) for c in t.columns))
        if t.columns
        else set(),
        samples=samples,
    )


def _mentionable(s: str) -> bool:
    if _CJK_CHAR.search(s):
        return len(s) >= 2
    return len(s) >= 3 and not s.replace(".", "").replace("-", "").isdigit() and s not in STOPWORDS


_FK_KINDS = ("foreign key", INFERRED)  # declared, and inferred from names and data


def _fk_targets(t: Table) -> list[str]:
    out = []
    for c in t.constraints:
        if c.kind in _FK_KINDS and c.ref_table:
            out.append(f"{c.ref_schema or t.schema}.{c.ref_table}")
    return out


def candidate_tables(schema: DatabaseSchema) -> list[Table]:
    """Tables worth offering: everything but partitions of a partitioned parent."""
    return [t for t in schema.tables if not t.partition_of]


@dataclass
class Scored:
    table: Table
    base: float
    final: float
    # columns whose sample values the question names
    mentioned: set[str] = field(default_factory=set)


def score_tables(schema: DatabaseSchema, question: str) -> list[Scored]:
    """Every candidate table with its relevance to the question, best first."""
    tables = candidate_tables(schema)
    if not tables:
        return []
    aliases: dict[str, set[str]] = {}
    for t in tables:
        for c in t.constraints:
            if c.kind in _FK_KINDS and c.ref_table and len(c.columns) == 1:
                role = words(re.sub(r"_?(id|key|code|no)$", "", c.columns[0], flags=re.IGNORECASE))
                aliases.setdefault(f"{c.ref_schema or t.schema}.{c.ref_table}", set()).update(role)
    feats = {t.qualified: _features(t, aliases.get(t.qualified)) for t in tables}
    for f in feats.values():
        f.alias -= f.name
    q_terms = question_terms(question, schema.glossary)
    q_lower = question.lower()
    n = len(tables)
    df: dict[str, int] = {}
    for f in feats.values():
        for term in f.all() & q_terms:
            df[term] = df.get(term, 0) + 1
    q_words = {
        w for w in q_terms if not w.startswith("1:") and not _CJK_CHAR.search(w) and len(w) >= 4
    }

    scored: dict[str, Scored] = {}
    for t in tables:
        f = feats[t.qualified]
        s = 0.0
        for term in q_terms:
            d = df.get(term)
            if d:
                idf = math.log(1.0 + n / d)
                w = (
                    (W_NAME if term in f.name else W_ALIAS if term in f.alias else 0.0)
                    + (W_SCHEMA if term in f.schema else 0.0)
                    + (W_TCOMMENT if term in f.tcomment else 0.0)
                    + (W_COLNAME if term in f.colnames else 0.0)
                    + (W_CCOMMENT if term in f.ccomment else 0.0)
                )
                if term.startswith("1:"):
                    w *= W_UNIGRAM
                s += w * idf
        # prefix matches on the table name ("cust" / "customer", "categor" / "category")
        for w in q_words:
            for nw in f.name:
                if nw != w and len(nw) >= 4 and (nw.startswith(w) or w.startswith(nw)):
                    s += 0.5 * W_NAME
                    break
        # the whole name in the question ("order items", "order_items")
        if len(t.name) >= 4 and (
            t.name.lower() in q_lower or t.name.lower().replace("_", " ") in q_lower
        ):
            s += W_NAME
        mentioned: set[str] = set()
        for value, col in f.samples:
            if col not in mentioned and value in q_lower:
                mentioned.add(col)
                if len(mentioned) <= 2:
                    s += W_SAMPLE
        scored[t.qualified] = Scored(t, s, s, mentioned)

    # foreign-key neighbours (parents a strong table references count more than its
    # children) and bridges (tables referencing two matched tables)
    children: dict[str, set[str]] = {k: set() for k in scored}  # referenced -> referencing
    for t in tables:
        for target in _fk_targets(t):
            if target in scored and target != t.qualified:
                children[target].add(t.qualified)
    for t in tables:
        sc = scored[t.qualified]
        from_children = [scored[x].base for x in children[t.qualified]]
        from_parents = [scored[x].base for x in _fk_targets(t) if x in scored and x != t.qualified]
        sc.final += max(
            PARENT_SHARE * max(from_children, default=0.0),
            CHILD_SHARE * max(from_parents, default=0.0),
        )
        refs = sorted(
            {scored[x].base for x in _fk_targets(t) if x in scored and scored[x].base > 0},
            reverse=True,
        )
        if len(refs) >= 2:
            sc.final += BRIDGE_SHARE * refs[1]
    return sorted(scored.values(), key=lambda x: (-x.final, -x.base, x.table.qualified))


def score_database(schema: DatabaseSchema, question: str) -> float:
    """How likely this database answers the question: its best three tables plus name/comment hits."""
    ranked = score_tables(schema, question)
    s = sum(x.base for x in ranked[:3])
    q = question_terms(question, schema.glossary)
    s += W_TCOMMENT * len(q & (words(schema.name) | terms(schema.comment)))
    return s


# --------------------------------------------------------------------------- rendering
def _fmt_rows(n: int | None) -> str:
    if n is None or n < 0:
        return ""
    if n >= 1_000_000:
        return f" ~{n / 1_000_000:.1f}M rows"
    if n >= 1_000:
        return f" ~{n / 1_000:.0f}k rows"
    return f" ~{n} rows"


def render_table(
    t: Table, *, full: bool = True, mentioned: Iterable[str] = (), samples: bool = True
) -> str:
    """One table: full (one line per column) or brief (one line).

    Text from the database is quoted (pg_mcp.core.datatext): comments as JSON strings, enum
    labels and sample values as SQL literals; ``samples=False`` leaves both of those out."""
    kind = {"view": "VIEW", "materialized view": "MATVIEW", "foreign table": "FOREIGN TABLE"}.get(
        t.kind, "TABLE"
    )
    pk: set[str] = set()
    fk_single: dict[str, tuple[str, str | None]] = {}  # column -> (target table, its column)
    fk_multi: list[str] = []
    for c in t.constraints:
        if c.kind == "primary key":
            pk.update(c.columns)
        elif c.kind in _FK_KINDS and c.ref_table:
            target = sql_name(c.ref_schema or t.schema, c.ref_table)
            refs = c.ref_columns or []
            if len(c.columns) == 1 and len(refs) <= 1:
                ref = ident(refs[0]) if refs else None
                if c.kind == INFERRED:  # "-> customer.customer_id (inferred)"
                    ref = f"{ref} (inferred)" if ref else None
                fk_single.setdefault(c.columns[0], (target, ref))
            else:
                fk_multi.append(f"{_names(c.columns)} -> {target}{_names(refs)}")
    comment = f" -- {quote_text(t.comment, 160)}" if t.comment else ""
    if t.note and samples:  # from the notes people keep (they may quote values)
        comment += f"{' --' if not comment else ';'} note: {quote_text(t.note, 200)}"
    name = sql_name(t.schema, t.name)
    if not full:
        cols = []
        for c in t.columns:
            ref = fk_single.get(c.name)
            cols.append(f"{ident(c.name)}->{ref[0]}" if ref else ident(c.name))
        return f"{kind} {name}({', '.join(cols)}){comment}"
    extra = ""
    if t.partition_key:
        extra = f" partitioned by {' '.join(t.partition_key.split())}"
    lines = [f"{kind} {name}{extra}{_fmt_rows(t.row_estimate)}{comment}"]
    must = set(mentioned)
    for c in t.columns:
        ref = fk_single.get(c.name)
        target = (f"{ref[0]}.{ref[1]}" if ref[1] else ref[0]) if ref else None
        lines.append("  " + _render_column(c, c.name in pk, target, c.name in must, samples))
    for fk in fk_multi:
        lines.append(f"  FK {fk}")
    return "\n".join(lines)


def sql_name(schema: str, name: str) -> str:
    """``schema.name`` as SQL writes it: quoted when needed, one line (``render.ident``)."""
    return f"{ident(schema)}.{ident(name)}"


def _names(columns: Iterable[str]) -> str:
    return "(" + ", ".join(ident(c) for c in columns) + ")"


def _render_column(c: Column, pk: bool, fk: str | None, mentioned: bool, samples: bool) -> str:
    parts = [ident(c.name), " ".join(c.type.split())]
    if c.base_type and c.base_type != c.type:
        parts.append(f"({' '.join(c.base_type.split())})")
    if pk:
        parts.append("PK")
    elif not c.nullable:
        parts.append("NOT NULL")
    if fk:
        parts.append(f"-> {fk}")
    notes = []
    if c.comment:
        notes.append(quote_text(c.comment, 120))
    if c.note and samples:
        notes.append("note: " + quote_text(c.note, 160))
    if c.unit and samples:
        notes.append("unit: " + quote_text(c.unit, 40))
    if not samples:
        pass
    elif c.enum_labels:
        notes.append("values: " + ", ".join(sql_literal(v, 30) for v in c.enum_labels[:20]))
    elif c.samples:
        shown = list(dict.fromkeys(sql_literal(v, 30) for v in c.samples))
        if c.samples_complete:
            notes.append("values: " + ", ".join(shown))
        else:
            k = 10 if mentioned else (5 if all(len(v) < 32 for v in shown) else 2)
            notes.append("e.g. " + ", ".join(shown[:k]))
    notes += _profile_notes(c, samples)
    return " ".join(parts) + (f"  -- {'; '.join(notes)}" if notes else "")


def _profile_notes(c: Column, samples: bool) -> list[str]:
    """What the data says about units and ranges: epoch integers, dates held as text, the
    range of dates and times (the period a question's "last 6 months" counts back from)."""
    out = []
    if c.epoch_unit:
        out.append(f"Unix epoch {c.epoch_unit}")
    if c.value_format:
        out.append(f"text as {c.value_format}")
    typ = (c.base_type or c.type).lower()
    dated = typ.startswith(("date", "timestamp")) or c.epoch_unit or c.value_format
    if samples and dated and c.min_value and c.max_value and c.min_value != c.max_value:
        lo, hi = profile_range(c)
        out.append(f"range {lo} .. {hi}")
    return out


def usable_functions(
    schema: DatabaseSchema, allowed: Callable[[Function], bool] | None = None
) -> list[Function]:
    """User functions a read-only query may call: immutable or stable, not trigger functions,
    and (``allowed``, e.g. policy.allow_functions) named by the policy."""
    return [
        f
        for f in schema.functions
        if f.volatility in ("immutable", "stable")
        and f.extension is None
        and f.kind == "function"
        and f.returns not in ("trigger", "event_trigger")
        and (allowed is None or allowed(f))
    ]


def render_function(f: Function) -> str:
    comment = f" -- {quote_text(f.comment, 120)}" if f.comment else ""
    args, returns = " ".join(f.arguments.split()), " ".join(f.returns.split())
    return f"FUNCTION {sql_name(f.schema, f.name)}({args}) -> {returns}{comment}"


def render_schema(
    schema: DatabaseSchema,
    tables: Iterable[Table] | None = None,
    *,
    samples: bool = True,
    allowed: Callable[[Function], bool] | None = None,
) -> str:
    """Render tables (default: all candidates) in full, and the usable functions: the 'whole schema' prompt."""
    chosen = list(tables) if tables is not None else candidate_tables(schema)
    lines = [_header(schema), *(render_table(t, samples=samples) for t in chosen)]
    lines += [render_function(f) for f in usable_functions(schema, allowed)]
    return "\n".join(lines)


def _header(schema: DatabaseSchema) -> str:
    c = f" -- {quote_text(schema.comment, 160)}" if schema.comment else ""
    return f"DATABASE {ident(schema.name)}{c}"


# --------------------------------------------------------------------------- selection
@dataclass
class Context:
    database: str
    text: str
    tables: list[str]  # qualified names rendered (full or brief)
    tokens: int  # estimated tokens of text
    total_tables: int
    whole: bool  # every table was rendered in full
    listed: int = 0  # further tables named only in the "other tables" line
    brief: list[str] = field(default_factory=list)  # of ``tables``, those rendered on one line

    def to_dict(self) -> dict[str, object]:
        return {
            "tables": self.tables,
            "schema_tokens": self.tokens,
            "total_tables": self.total_tables,
            "whole_schema": self.whole,
        }


def notes_lines(schema: DatabaseSchema, question: str) -> list[str]:
    """From the notes people keep: the database's description and the glossary terms the
    question uses (quoted: people's text is rendered like database text)."""
    lines = []
    if schema.note:
        lines.append(f"NOTE: {quote_text(schema.note, 300)}")
    lower = question.lower()
    used = [(t, m) for t, m in sorted(schema.glossary.items()) if t and t.lower() in lower]
    for term, meaning in used[:MAX_GLOSSARY_LINES]:
        lines.append(f"GLOSSARY {quote_text(term, 60)}: {quote_text(meaning, 200)}")
    return lines


def select_context(
    schema: DatabaseSchema,
    question: str,
    budget: int,
    *,
    samples: bool = True,
    allowed: Callable[[Function], bool] | None = None,
) -> Context:
    """The relevant tables of ``schema`` for ``question``, rendered within ``budget`` tokens
    (``samples=False``: no sample values or enum labels, for ``[ask] send_samples = false``;
    ``allowed``: which user functions the validator would accept, for the functions shown).
    The notes' description and the glossary terms the question uses come first."""
    ctx = _select_context(schema, question, budget, samples=samples, allowed=allowed)
    extra = notes_lines(schema, question) if samples else []
    if extra:
        head, _, rest = ctx.text.partition("\n")
        ctx.text = "\n".join([head, *extra, rest]) if rest else "\n".join([head, *extra])
        ctx.tokens = estimate_tokens(ctx.text)
    return ctx


def _select_context(
    schema: DatabaseSchema,
    question: str,
    budget: int,
    *,
    samples: bool = True,
    allowed: Callable[[Function], bool] | None = None,
) -> Context:
    cands = candidate_tables(schema)
    whole = render_schema(schema, cands, samples=samples, allowed=allowed)
    whole_tokens = estimate_tokens(whole)
    if whole_tokens <= budget:
        return Context(
            schema.name, whole, [t.qualified for t in cands], whole_tokens, len(cands), True
        )

    ranked = score_tables(schema, question)
    top = ranked[0].final if ranked else 0.0
    if top > 0:
        order = [s for s in ranked if s.final > 0 and s.final >= RELEVANCE_CUTOFF * top]
    else:  # nothing matched: the most connected / biggest tables
        degree: dict[str, int] = {}
        for t in cands:
            for target in _fk_targets(t):
                degree[target] = degree.get(target, 0) + 1
                degree[t.qualified] = degree.get(t.qualified, 0) + 1
        order = sorted(
            ranked,
            key=lambda s: (
                -degree.get(s.table.qualified, 0),
                -(s.table.row_estimate or 0),
                s.table.qualified,
            ),
        )

    head = _header(schema)
    used = estimate_tokens(head) + 1
    reserve = max(0, int(budget * 0.1))  # room for the "other tables" line
    parts: list[str] = []
    names: list[str] = []
    brief: list[str] = []
    for s in order:
        for full in (True, False):
            text = render_table(s.table, full=full, mentioned=s.mentioned, samples=samples)
            cost = estimate_tokens(text) + 1
            if used + cost <= budget - reserve:
                parts.append(text)
                names.append(s.table.qualified)
                if not full:
                    brief.append(s.table.qualified)
                used += cost
                break
        if used >= budget - reserve:
            break

    # functions whose name or comment shares a term with the question
    q_terms = question_terms(question, schema.glossary)
    for f in usable_functions(schema, allowed):
        if q_terms & (words(f.name) | terms(f.comment)):
            text = render_function(f)
            cost = estimate_tokens(text) + 1
            if used + cost <= budget - reserve // 2:
                parts.append(text)
                used += cost

    # name the rest (best first) within the reserve, so the model knows they exist
    shown = set(names)
    rest = [
        sql_name(s.table.schema, s.table.name) for s in ranked if s.table.qualified not in shown
    ]
    listed = 0
    limit = min(budget, used + reserve)
    if rest:
        prefix = "OTHER TABLES (columns not shown): "
        line = prefix
        cost_prefix = estimate_tokens(prefix) + 1
        if used + cost_prefix < limit:
            line_tokens = cost_prefix
            for name in rest:
                add = estimate_tokens(name + ", ")
                if used + line_tokens + add > limit:
                    break
                line += ("" if listed == 0 else ", ") + name
                line_tokens += add
                listed += 1
            if listed:
                parts.append(line)
    text = head + "\n" + "\n".join(parts)
    return Context(
        schema.name, text, names, estimate_tokens(text), len(cands), False, listed, brief
    )


def rank_databases(schemas: dict[str, DatabaseSchema], question: str) -> list[tuple[str, float]]:
    """Databases by relevance to the question, best first (ties by table count, then name)."""
    out = [(name, score_database(s, question), len(s.tables)) for name, s in schemas.items()]
    out.sort(key=lambda x: (-x[1], -x[2], x[0]))
    return [(name, score) for name, score, _ in out]
