"""Secrets: the catalogs that hold them (pg_authid, pg_shadow, ...) and the secret families of
``pg_mcp.core.policy`` (settings that may hold credentials, raw pages, ...), each with its
policy switch. All ACCESS_DENIED.

- ``secret_calls``: a function of a family (``pg_read_file``, ...), or current_setting of a
  setting that may hold a credential (or of a name that is not a literal);
- ``secret_columns``: a column named like a secret column of a catalog view (``rolconfig``);
- ``secret_relation``: one relation that is a secret catalog or in a family (per relation,
  before it is bound to the schema);
- ``secret_views``: the secret columns of pg_catalog views (pg_roles.rolconfig,
  pg_stat_activity.query), and ``*`` or a whole-row reference over such a view (or over an
  aliased parenthesised join of one);
- ``renamed_view``: a column alias list over such a view (``FROM pg_roles r(a, ..., l)``
  renames rolconfig by position).
"""

from __future__ import annotations

from sqlglot import exp

from pg_mcp.core import policy as pol
from pg_mcp.core.validation.context import Context
from pg_mcp.core.validation.parse import norm
from pg_mcp.core.validation.walk import Source, TableRef

SECRET_VIEWS = pol.secret_views()


def secret_calls(ctx: Context) -> None:
    policy = ctx.policy
    for call in ctx.facts.calls:
        if not call.unlisted:
            continue
        node, schema, name = call.node, call.schema, call.name
        shown = f"{schema}.{name}" if schema else name
        fam = pol.secret_function(policy, schema, name)
        if fam is not None:
            ctx.problem(
                "ACCESS_DENIED",
                f"{shown}() can show secrets ({fam.reason}): {ctx.text(node, shown)}",
                node,
                hint=f"set policy.{fam.switch} = true to allow it",
                at=call.at,
            )
            continue
        if name != "current_setting" or schema not in (None, "pg_catalog"):
            continue
        args = node.expressions if type(node) is exp.Anonymous else []
        first = args[0] if args else None
        setting = first.this if type(first) is exp.Literal and first.is_string else None
        why = pol.secret_setting(policy, setting)
        if why is not None:
            what = (
                f"setting {setting!r} may hold a credential (pattern {why!r} of policy.secret_settings)"
                if setting is not None
                else f"{why} may name one that holds a credential"
            )
            ctx.problem(
                "ACCESS_DENIED",
                f"{what}: {ctx.text(node, shown)}",
                node,
                hint="read another setting by its literal name, or set policy.allow_secret_settings = true",
                at=call.at,
            )


def secret_columns(ctx: Context) -> None:
    if ctx.policy.allow_secret_settings:
        return
    for node, name, at in ctx.facts.secret_columns:
        fam = pol.secret_column_name(ctx.policy, name)
        if fam is not None:
            ctx.problem(
                "ACCESS_DENIED",
                f"column {name} can show secrets ({fam.reason}): {ctx.text(node, name)}",
                node,
                hint=f"leave it out, or set policy.{fam.switch} = true",
                at=at,
            )


def secret_relation(ctx: Context, ref: TableRef) -> bool:
    """Whether ``ref`` is a secret catalog or a relation of a secret family (reported)."""
    policy = ctx.policy
    if pol.is_secret_catalog(ref.schema, ref.name) and not policy.allow_secret_catalogs:
        ctx.problem(
            "ACCESS_DENIED",
            f"{ref.qualified} is a catalog that holds secrets (passwords, server configuration): "
            f"{ctx.text(ref.node, ref.qualified)}",
            ref.node,
            hint="query pg_roles / pg_user instead, or set policy.allow_secret_catalogs",
        )
        return True
    fam = pol.secret_relation(policy, ref.schema, ref.name) if ref.catalog is None else None
    if fam is not None:
        ctx.problem(
            "ACCESS_DENIED",
            f"{ref.qualified} can show secrets ({fam.reason}): {ctx.text(ref.node, ref.qualified)}",
            ref.node,
            hint=f"set policy.{fam.switch} = true to allow it",
        )
        return True
    return False


def secret_views(ctx: Context) -> None:
    """The secret columns of catalog views, and * or whole rows over them."""
    facts = ctx.facts
    found = {}
    for r in facts.tables:
        if r.catalog is None and r.schema in (None, "pg_catalog") and r.name in SECRET_VIEWS:
            view = pol.secret_view(ctx.policy, r.name)
            if view is not None:
                found[id(r)] = view
    if not found:
        return

    def secret(src: Source) -> tuple[pol.SecretFamily, tuple[str, ...]] | None:
        return found.get(id(src.ref)) if src.ref is not None else None

    hits: list[tuple[exp.Expression, Source, str]] = []
    for node, qualifier, scope in facts.stars:
        if scope is None:
            continue
        sources = scope.named(qualifier) if qualifier else scope.sources
        hits.extend((node, src, "") for src in sources if secret(src))
    for node, scope in facts.columns:
        if scope is None:
            continue
        name = norm(node.this)
        qualifier = node.args.get("table")
        if qualifier is not None:
            for src in scope.named(norm(qualifier)):
                view = secret(src)
                if view and name in view[1]:
                    hits.append((node, src, name))
            continue
        for sc in scope.chain():
            for src in sc.sources:
                if src.kind == "group" and src.alias == name:  # the whole row of a join
                    hits.extend((node, m, "") for m in src.expand() if secret(m))
                    continue
                view = secret(src)
                if view and (src.alias == name or name in view[1]):
                    hits.append((node, src, name if name in view[1] else ""))
    if hits:
        node, src, column = hits[0]
        fam, columns = secret(src)  # type: ignore[misc]
        what = f"column {column} of" if column else f"{ctx.text(node, '*')} over"
        ctx.problem(
            "ACCESS_DENIED",
            f"{what} {src.ref.qualified} can show secrets ({fam.reason}; "  # type: ignore[union-attr]
            f"{', '.join(columns)})",
            node,
            hint=f"select other columns by name, or set policy.{fam.switch} = true",
        )


def renamed_view(ctx: Context, ref: TableRef) -> bool:
    """Whether ``ref`` is a secret pg_catalog view under a column alias list (reported): the
    list renames columns by position, so a name check cannot see which one is rolconfig."""
    if ref.catalog is not None or ref.schema not in (None, "pg_catalog"):
        return False
    view = pol.secret_view(ctx.policy, ref.name)
    if view is None:
        return False
    fam, columns = view
    ctx.problem(
        "ACCESS_DENIED",
        f"a column alias list over {ref.qualified} can rename {', '.join(columns)}, "
        f"which can show secrets ({fam.reason}): {ctx.text(ref.node, ref.qualified)}",
        ref.node,
        hint=f"select other columns by name, or set policy.{fam.switch} = true",
    )
    return True
