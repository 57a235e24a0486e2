"""Stage 4, the one walk over the tree: the facts every rule reads.

One iterative pass, in source order, finds nested statements, SELECT INTO and locking
clauses, every function call wherever it stands (select list, WHERE, FROM, LATERAL, ROWS
FROM, CTEs, windows, ...), every relation, column and ``*``, with CTE visibility and SELECT
scopes tracked. It judges nothing (but refuses names PostgreSQL would not parse, see
``Parsed.check_name``); what it finds is a ``Facts`` record, each fact with the walk step it was
met at, so that problems rank in source order whichever rule reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlglot import exp

from pg_mcp.core import policy as pol
from pg_mcp.core.validation.calls import Call, CallReader
from pg_mcp.core.validation.parse import (
    DML_NODES,
    STATEMENT_NODES,
    Parsed,
    Tools,
    alias_of,
    cte_name,
    cte_names,
    norm,
)

if TYPE_CHECKING:
    from pg_mcp.core.model import Table

BUDGET_EVERY = 512  # walk steps between two looks at the clock
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
# columns the settings family hides wherever they appear (rolconfig of pg_roles, ...)
SECRET_COLUMN_NAMES = frozenset(c for fam in pol.SECRET_FAMILIES for c in fam.columns)
_TABLE_NAME_ARGS = frozenset({"db", "catalog", "alias"})  # hold only names: not walked
_NAMED_ARG = (exp.Kwarg, exp.PropertyEQ)

# node kinds for the walk
(
    K_GENERIC,
    K_LEAF,
    K_STMT,
    K_SELECT,
    K_SETOP,
    K_COLUMN,
    K_TABLE,
    K_FUNC,
    K_STAR,
    K_SUBQUERY,
    K_SOURCE,
    K_FROMJOIN,
) = range(12)


def classify(cls: type, kinds: dict[type, int]) -> int:
    """The walk's kind of a class (anything that is not a sqlglot node counts as a leaf),
    remembered in ``kinds``."""
    if not issubclass(cls, exp.Expression):
        k = K_LEAF
    elif issubclass(cls, STATEMENT_NODES):
        k = K_STMT
    elif cls is exp.Select:
        k = K_SELECT
    elif issubclass(cls, exp.SetOperation):
        k = K_SETOP
    elif cls is exp.Column:
        k = K_COLUMN
    elif cls is exp.Table:
        k = K_TABLE
    elif issubclass(cls, exp.Func):
        k = K_FUNC
    elif cls is exp.Star:
        k = K_STAR
    elif cls is exp.Subquery:
        k = K_SUBQUERY
    elif cls is exp.Lateral or cls is exp.Values:
        k = K_SOURCE
    elif cls is exp.From or cls is exp.Join:
        k = K_FROMJOIN
    elif cls in (exp.Identifier, exp.Literal, exp.Var, exp.Boolean, exp.Null, exp.Parameter):
        k = K_LEAF
    else:
        k = K_GENERIC
    kinds[cls] = k
    return k


# --- scopes and collected references -------------------------------------------------------------


class TableRef:
    """A relation the query reads (not a CTE); ``model`` and ``resolved_schema`` are filled
    when it is looked up in the database schema (rules/names.py)."""

    __slots__ = ("catalog", "model", "name", "node", "resolved_schema", "schema")

    def __init__(self, node: exp.Table, schema: str | None, name: str, catalog: str | None) -> None:
        self.node = node
        self.schema = schema
        self.name = name
        self.catalog = catalog
        self.model: Table | None = None
        self.resolved_schema: str | None = schema

    @property
    def qualified(self) -> str:
        s = self.resolved_schema
        return f"{s}.{self.name}" if s else self.name

    @property
    def system(self) -> bool:
        s = self.resolved_schema or self.schema
        if s is not None:
            return s in SYSTEM_SCHEMAS or s.startswith("pg_")
        return self.name.startswith("pg_")


class Source:
    """Something a FROM clause reads from, under the name it is visible by."""

    __slots__ = ("alias", "kind", "members", "node", "ref", "renamed")

    def __init__(
        self, kind: str, alias: str | None, ref: TableRef | None = None, renamed: bool = False
    ) -> None:
        self.kind = kind  # table | cte | subquery | function | values | group
        self.alias = alias
        self.ref = ref
        self.renamed = renamed  # FROM t AS x(a, b): column names changed
        self.node: exp.Expression | None = None  # a group's (a JOIN b) AS j node
        self.members: list[Source] = []  # a group's sources (its joined tables), after the walk

    def expand(self) -> list[Source]:
        """This source, or for an aliased parenthesised join the sources it joins (its
        columns are theirs: j.col, j.* and the whole row j read them)."""
        if self.kind != "group":
            return [self]
        out: list[Source] = []
        for m in self.members:
            out.extend(m.expand())
        return out


class Scope:
    """The sources of one SELECT (and the aliases of its select list), in its parent's."""

    __slots__ = ("aliases", "exists", "opaque", "parent", "sources")

    def __init__(self, parent: Scope | None, opaque: bool = False, exists: bool = False) -> None:
        self.parent = parent
        self.sources: list[Source] = []
        self.aliases: set[str] = set()
        # unqualified names here may be output columns (set operations, VALUES)
        self.opaque = opaque
        self.exists = exists  # the SELECT list of EXISTS (...) reads nothing

    def chain(self) -> list[Scope]:
        out: list[Scope] = []
        s: Scope | None = self
        while s is not None:
            out.append(s)
            s = s.parent
        return out

    def named(self, qualifier: str) -> list[Source]:
        """The sources ``qualifier`` names, in the nearest scope that has one (for an aliased
        parenthesised join, the sources it joins)."""
        for s in self.chain():
            found = [src for src in s.sources if src.alias == qualifier]
            if found:
                return [m for src in found for m in src.expand()]
        return []

    def qualified(self, qualifier: str, schema: str | None) -> Source | None:
        """The source of a column written ``[schema.]qualifier.column``."""
        for s in self.chain():
            for cand in s.sources:
                if (schema is None and cand.alias == qualifier) or (
                    schema is not None
                    and cand.ref is not None
                    and cand.ref.name == qualifier
                    and ((cand.ref.resolved_schema or cand.ref.schema) == schema)
                ):
                    return cand
        return None


class Nested(NamedTuple):
    """A statement node inside the query (or the body of a CTE)."""

    node: exp.Expression
    in_cte: bool
    where: exp.Expression | None  # the CTE it is the body of
    at: int


class Facts:
    """What the walk found. Columns, stars and scopes' sources are collected only when
    ``names`` (something will read them: a schema, deny_columns, a secret view)."""

    def __init__(self, names: bool) -> None:
        self.names = names
        self.tables: list[TableRef] = []
        self.calls: list[Call] = []
        self.columns: list[tuple[exp.Column, Scope | None]] = []
        self.stars: list[tuple[exp.Expression, str | None, Scope | None]] = []
        # columns named like a secret column of a catalog view (rolconfig, ...), always collected
        self.secret_columns: list[tuple[exp.Column, str, int]] = []
        self.statements: list[Nested] = []
        self.selects: list[tuple[exp.Select, int]] = []  # with INTO or a locking clause
        # FROM t AS x(a, b, ...): the table and how many of its columns the list renames
        self.renamed: list[tuple[TableRef, int]] = []
        self.groups: list[tuple[Source, Scope]] = []  # FROM (a JOIN b) AS j, members filled
        self.operators: list[tuple[exp.Operator, int]] = []  # a OPERATOR(schema.op) b
        self.fields: list[tuple[exp.Dot, int]] = []  # (expression).name: maybe f(t)


def walk(
    parsed: Parsed, tools: Tools, *, names: bool, in_budget: Callable[[], None] | None = None
) -> Facts:
    """The facts of ``parsed``; ``in_budget`` is called every BUDGET_EVERY steps."""
    return _Walker(parsed, tools, names, in_budget).run()


class _Walker:
    def __init__(
        self,
        parsed: Parsed,
        tools: Tools,
        names: bool,
        in_budget: Callable[[], None] | None,
    ) -> None:
        self.parsed = parsed
        self.tools = tools
        self.facts = Facts(names)
        self.reader = CallReader(parsed.sql, tools)
        self.in_budget = in_budget
        self._flat: Scope | None = None

    def run(self) -> Facts:
        facts = self._walk()
        self._group_members()
        return facts

    def _walk(self) -> Facts:
        """One pass over the tree, in source order. Each stack entry carries (visible CTE
        names, SELECT scope, inside a CTE, in a FROM position)."""
        facts = self.facts
        empty: frozenset[str] = frozenset()
        stack: list[tuple[Any, tuple[frozenset[str], Scope | None, bool, bool]]] = [
            (self.parsed.root, (empty, None, False, False))
        ]
        push = stack.append
        pop = stack.pop
        kinds = self.tools.kinds
        columns = facts.columns
        names = facts.names
        Expression = exp.Expression
        secret_names = SECRET_COLUMN_NAMES
        in_budget = self.in_budget
        steps = 0
        while stack:
            steps += 1
            if steps % BUDGET_EVERY == 0 and in_budget is not None:
                in_budget()
            node, ctx = pop()
            cls = type(node)
            k = kinds.get(cls)
            if k is None:
                k = classify(cls, kinds)
            if k == K_LEAF:
                continue
            args = node.args
            if k == K_GENERIC:
                if cls is exp.Operator:
                    facts.operators.append((node, steps))
                elif cls is exp.Dot and isinstance(node.this, exp.Paren | exp.Dot):
                    facts.fields.append((node, steps))  # (t).f: maybe f(t), attribute notation
                for v in reversed(args.values()):
                    if v is None:
                        continue
                    if type(v) is list:
                        for x in reversed(v):
                            kx = kinds.get(type(x))
                            if kx is None:
                                kx = classify(type(x), kinds)
                            if kx != K_LEAF:
                                push((x, ctx))
                    else:
                        kx = kinds.get(type(v))
                        if kx is None:
                            kx = classify(type(v), kinds)
                        if kx != K_LEAF:
                            push((v, ctx))
                continue
            ctes, scope, in_cte, in_from = ctx
            if k == K_COLUMN:
                this = args.get("this")
                if type(this) is exp.Identifier:
                    name = this.this if this.quoted else this.this.lower()
                    if name in secret_names:
                        facts.secret_columns.append((node, name, steps))
                if not names:
                    pass
                elif type(this) is exp.Star:
                    table = args.get("table")
                    facts.stars.append((node, norm(table) if table is not None else None, scope))
                elif node.arg_key != "this" or not isinstance(node.parent, _NAMED_ARG):
                    columns.append((node, scope))
                continue
            if k == K_STMT:
                facts.statements.append(Nested(node, in_cte, None, steps))
                continue
            with_ = None
            if k == K_FUNC:
                facts.calls.append(self.reader.call(node, steps))
                if cls is exp.Unnest:
                    self.parsed.check_names(node)
                if in_from and cls is exp.Unnest and scope is not None:
                    scope.sources.append(Source("function", alias_of(node)))
                if in_from:
                    ctx = (ctes, scope, in_cte, False)
            elif k == K_STAR:
                if names and not isinstance(node.parent, exp.Func):
                    facts.stars.append((node, None, scope))
                continue
            elif k in (K_SELECT, K_SETOP):
                with_ = args.get("with_")
                outer_ctes = ctes
                if with_ is not None:
                    ctes = ctes.union(cte_names(with_))
                if k == K_SETOP:
                    ctx = (ctes, self._scope(scope, opaque=True), in_cte, False)
                else:
                    inner = self._select(node, scope, steps)
                    plain = (ctes, inner, in_cte, False)
                    source = (ctes, inner, in_cte, True)
                    for key, v in reversed(args.items()):
                        if v is None or key == "with_":
                            continue
                        c = source if (key == "from_" or key == "joins") else plain
                        if type(v) is list:
                            for x in reversed(v):
                                if isinstance(x, Expression):
                                    push((x, c))
                        elif isinstance(v, Expression):
                            push((v, c))
                    if with_ is not None:
                        self._push_with(with_, outer_ctes, scope, in_cte, push, steps)
                    continue
            elif k == K_TABLE:
                self._table(node, ctes, scope, in_from)
                plain = (ctes, scope, in_cte, False)
                source = (ctes, scope, in_cte, True) if in_from else plain
                for key, v in reversed(args.items()):
                    if v is None or key in _TABLE_NAME_ARGS:
                        continue
                    c = source if key == "joins" else plain
                    if type(v) is list:
                        for x in reversed(v):
                            if isinstance(x, Expression):
                                push((x, c))
                    elif isinstance(v, Expression):
                        push((v, c))
                continue
            elif k == K_FROMJOIN:
                this = args.get("this")
                plain = (ctes, scope, in_cte, False)
                for v in reversed(args.values()):
                    if v is None:
                        continue
                    if type(v) is list:
                        for x in reversed(v):
                            if isinstance(x, Expression):
                                push((x, plain))
                    elif isinstance(v, Expression):
                        push((v, ctx if v is this else plain))
                continue
            elif k == K_SUBQUERY:
                self.parsed.check_names(node)
                this = node.this
                # FROM ((a JOIN b) j1 JOIN c) j: the inner parenthesised join is a Subquery too
                joined = not isinstance(this, exp.Query) or (
                    isinstance(this, exp.Subquery)
                    and bool(this.args.get("joins") or this.args.get("alias"))
                )
                if in_from and scope is not None:
                    if not joined:
                        scope.sources.append(Source("subquery", alias_of(node)))
                    else:  # FROM (a JOIN b): a parenthesised join
                        alias = alias_of(node)
                        if alias:
                            group = Source("group", alias)
                            group.node = node
                            a = args.get("alias")
                            group.renamed = bool(a is not None and a.args.get("columns"))
                            scope.sources.append(group)
                            facts.groups.append((group, scope))
                        for key, v in reversed(args.items()):  # the join and its own joins
                            if v is None or key == "alias":
                                continue
                            for x in reversed(v) if type(v) is list else (v,):
                                if isinstance(x, Expression):
                                    push((x, ctx))
                        continue
                with_ = args.get("with_")
                outer_ctes = ctes
                if with_ is not None:
                    ctes = ctes.union(cte_names(with_))
                ctx = (ctes, scope, in_cte, False)
            elif k == K_SOURCE:  # LATERAL, VALUES
                self.parsed.check_names(node)
                if in_from and scope is not None:
                    scope.sources.append(
                        Source("function" if cls is exp.Lateral else "values", alias_of(node))
                    )
                ctx = (
                    ctes,
                    self._scope(scope, opaque=True) if cls is exp.Values else scope,
                    in_cte,
                    False,
                )
            for key, v in reversed(args.items()):
                if v is None or key == "with_":
                    continue
                if type(v) is list:
                    for x in reversed(v):
                        if isinstance(x, Expression):
                            push((x, ctx))
                elif isinstance(v, Expression):
                    push((v, ctx))
            if with_ is not None:
                self._push_with(with_, outer_ctes, scope, in_cte, push, steps)
        return facts

    def _push_with(
        self,
        with_: exp.With,
        ctes: frozenset[str],
        scope: Scope | None,
        in_cte: bool,
        push: Any,
        at: int,
    ) -> None:
        """Push the CTE bodies (last, so they are visited first), each seeing the CTE names
        PostgreSQL lets it see: earlier siblings, or all of them under RECURSIVE."""
        items = [c for c in with_.expressions if isinstance(c, exp.CTE)]
        names = [cte_name(c) for c in items]
        recursive = bool(with_.args.get("recursive"))
        everything = ctes.union(names)
        for i in range(len(items) - 1, -1, -1):
            cte = items[i]
            body = cte.this
            if isinstance(body, DML_NODES):
                self.facts.statements.append(Nested(body, True, cte, at))
                continue
            visible = everything if recursive else ctes.union(names[:i])
            push((body, (visible, scope, True, False)))

    def _scope(self, parent: Scope | None, opaque: bool = False, exists: bool = False) -> Scope:
        """A new scope; or, when no column is going to be checked, one scope shared by the
        whole walk (nothing reads it then, and building one per SELECT costs)."""
        if self.facts.names:
            return Scope(parent, opaque, exists)
        if self._flat is None:
            self._flat = Scope(None)
        return self._flat

    def _select(self, node: exp.Select, parent: Scope | None, at: int) -> Scope:
        scope = self._scope(parent, exists=isinstance(node.parent, exp.Exists))
        args = node.args
        if self.facts.names:
            for e in args.get("expressions") or ():
                if isinstance(e, exp.Alias):
                    scope.aliases.add(norm(e.args["alias"]) if e.args.get("alias") else "")
        if args.get("into") is not None or args.get("locks"):
            self.facts.selects.append((node, at))
        return scope

    def _table(
        self, node: exp.Table, ctes: frozenset[str], scope: Scope | None, in_from: bool
    ) -> None:
        args = node.args
        this = args.get("this")
        alias_node = args.get("alias")
        # Parsed.check_names, inline
        if type(this) is exp.Identifier and this.quoted:
            self.parsed.check_name(this)
        renamed = 0
        if alias_node is not None:
            for ident in alias_node.args.get("columns") or ():
                renamed += 1
                if type(ident) is exp.Identifier and not ident.quoted:
                    self.parsed.check_name(ident)
        sources = scope.sources if in_from and scope is not None and self.facts.names else None
        if not isinstance(this, exp.Identifier):
            # a function in FROM (f(x), ROWS FROM (...)): the function itself is walked as a child
            if sources is not None:
                sources.append(Source("function", alias_of(node)))
            return
        name = this.this if this.quoted else this.this.lower()  # norm
        v = args.get("db")
        schema = (norm(v) or None) if v is not None else None
        v = args.get("catalog")
        catalog = (norm(v) or None) if v is not None else None
        if schema is None and catalog is None and name in ctes:
            if sources is not None:
                sources.append(Source("cte", alias_of(node) or name))
            return
        ref = TableRef(node, schema, name, catalog)
        self.facts.tables.append(ref)
        if renamed:
            self.facts.renamed.append((ref, renamed))
        if sources is not None:
            sources.append(Source("table", alias_of(node) or name, ref, bool(renamed)))

    def _group_members(self) -> None:
        """The sources each aliased parenthesised join joins: those of its scope whose nearest
        enclosing group node is it (one walk up per source: linear, whatever the count)."""
        groups = self.facts.groups
        if not groups:
            return
        by_node = {id(g.node): g for g, _ in groups}
        seen: set[int] = set()
        for _, scope in groups:
            if id(scope) in seen:
                continue
            seen.add(id(scope))
            if self.in_budget is not None:
                self.in_budget()
            for src in scope.sources:
                inner = src.node if src.kind == "group" else (src.ref.node if src.ref else None)
                p = inner.parent if inner is not None else None
                while p is not None:
                    group = by_node.get(id(p))
                    if group is not None:
                        group.members.append(src)
                        break
                    p = p.parent
