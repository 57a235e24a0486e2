"""The access policy as pure functions: which schemas, tables and columns are hidden.

Patterns are shell globs (``*``, ``?``, ``[...]``) over ``schema``, ``schema.table``
and ``schema.table.column``, matched case-insensitively (so a pattern can never
be dodged by quoting an identifier in another case). The validator refuses
queries that read what they hide (ACCESS_DENIED), and the reference generator
leaves the same things out (``apply_policy``).

A denied schema hides all its tables; a denied table hides all its columns.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from fnmatch import translate
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pg_mcp.core.model import DatabaseSchema
    from pg_mcp.core.settings import Policy

# Catalogs that expose password hashes, user-mapping options (passwords of foreign
# servers) or server configuration files. Denied unless policy.allow_secret_catalogs.
SECRET_CATALOGS: frozenset[str] = frozenset(
    {
        "pg_authid",
        "pg_shadow",
        "pg_user_mapping",
        "pg_user_mappings",
        "pg_hba_file_rules",
        "pg_file_settings",
        "pg_ident_file_mappings",
        "pg_subscription",  # subconninfo: the publisher's connection string, password included
    }
)
# Schemas the secret catalogs may be reached through (views are in pg_catalog;
# information_schema has user_mapping_options / _pg_user_mappings).
SECRET_SCHEMAS: frozenset[str] = frozenset({"pg_catalog", "information_schema"})
SECRET_INFO_SCHEMA: frozenset[str] = frozenset(
    {"_pg_user_mappings", "user_mapping_options", "user_mappings"}
)


# Settings whose value can hold a credential (current_setting(name) is refused for them unless
# policy.allow_secret_settings): the default of policy.secret_settings, globs over the name.
DEFAULT_SECRET_SETTINGS: tuple[str, ...] = (
    "primary_conninfo",
    "*conninfo*",
    "*password*",
    "*passwd*",
    "*passphrase*",
    "*secret*",
    "*key*",
    "*token*",
    "*credential*",
    # commands the server runs can carry credentials (restore_command = 'PGPASSWORD=... ',
    # 'AWS_SECRET_ACCESS_KEY=... wal-g ...'); restore_command is readable by any role
    "*_command",
    "*jwt*",
    "*pass*",
    "*pwd*",
    "*dsn*",
    "*url*",
    "*salt*",
    "*hmac*",
    "*private*",
    "*signing*",
)


@dataclasses.dataclass(frozen=True)
class SecretFamily:
    """Relations, functions and columns that can show a secret without naming a secret
    catalog, refused (ACCESS_DENIED) unless the policy switch ``switch`` is true."""

    key: str
    switch: str  # the Policy field that allows the family
    reason: str
    relations: frozenset[str] = frozenset()  # in pg_catalog (or unqualified)
    extension_relations: frozenset[str] = frozenset()  # views an extension creates, in any schema
    functions: frozenset[str] = frozenset()  # in pg_catalog, or an extension's (any schema)
    columns: frozenset[str] = frozenset()  # names refused wherever they appear (distinctive)
    schema_prefixes: tuple[str, ...] = ()  # every relation of a schema named so (pg_toast*)
    # pg_catalog views -> their secret columns (refused, and so are * and whole rows over them)
    view_columns: tuple[tuple[str, tuple[str, ...]], ...] = ()


SECRET_FAMILIES: tuple[SecretFamily, ...] = (
    SecretFamily(
        "statistics",
        "allow_statistics",
        "planner statistics hold sampled column values (most common values, histograms), "
        "also of pg_authid.rolpassword and of columns the access policy hides",
        relations=frozenset(
            {
                "pg_statistic",
                "pg_stats",
                "pg_stats_ext",
                "pg_stats_ext_exprs",
                "pg_statistic_ext_data",
            }
        ),
    ),
    SecretFamily(
        "session_activity",
        "allow_session_activity",
        "it shows the SQL text of other sessions, which can hold a password (ALTER ROLE ... PASSWORD)",
        view_columns=(("pg_stat_activity", ("query",)),),
        extension_relations=frozenset(
            {
                "pg_stat_statements",
                "pg_stat_statements_info",
                "pg_stat_monitor",
                "pg_stat_kcache_detail",  # pg_stat_kcache: query text
                "pg_store_plans",  # plans with the statements' constants
                "pg_qualstats",  # constvalue: the constants of other sessions' WHERE clauses
                "pg_qualstats_all",
                "pg_qualstats_pretty",
            }
        ),
        functions=frozenset(
            {
                "pg_stat_get_activity",
                "pg_stat_get_backend_activity",
                "pg_stat_statements",
                "pg_stat_monitor_internal",
                "pg_store_plans",
                "pg_qualstats",
                "pg_qualstats_example_query",
                "pg_qualstats_example_queries",
            }
        ),
    ),
    SecretFamily(
        "settings",
        "allow_secret_settings",
        "server, database and role settings can hold credentials (primary_conninfo, "
        "custom settings such as app.jwt_secret)",
        relations=frozenset({"pg_settings", "pg_db_role_setting", "pg_stat_wal_receiver"}),
        functions=frozenset({"pg_show_all_settings", "pg_stat_get_wal_receiver"}),
        columns=frozenset({"rolconfig", "useconfig", "setconfig", "proconfig"}),
        view_columns=(
            ("pg_roles", ("rolconfig",)),
            ("pg_user", ("useconfig",)),
            ("pg_proc", ("proconfig",)),  # ALTER FUNCTION f SET app.secret = ...
        ),
    ),
    SecretFamily(
        "raw_pages",
        "allow_raw_pages",
        "it returns raw table and index pages or toast chunks, whatever the access policy or "
        "the catalogs hide (the pages of pg_authid hold password hashes; pg_toast.pg_toast_2619 "
        "holds pg_statistic's sampled values out of line)",
        schema_prefixes=("pg_toast",),
        functions=frozenset(
            {
                "get_raw_page",
                "page_header",
                "page_checksum",
                "heap_page_items",
                "heap_page_item_attrs",
                "heap_tuple_infomask_flags",
                "tuple_data_split",
                "bt_metap",
                "bt_page_stats",
                "bt_multi_page_stats",
                "bt_page_items",
                "brin_page_type",
                "brin_metapage_info",
                "brin_revmap_data",
                "brin_page_items",
                "gin_metapage_info",
                "gin_page_opaque_info",
                "gin_leafpage_items",
                "gist_page_opaque_info",
                "gist_page_items",
                "gist_page_items_bytea",
                "hash_page_type",
                "hash_page_stats",
                "hash_page_items",
                "hash_bitmap_info",
                "hash_metapage_info",
                "fsm_page_contents",
            }
        ),
    ),
)
_CURRENT_SETTING = frozenset({"current_setting"})


def _allowed(policy: Policy, family: SecretFamily) -> bool:
    return bool(getattr(policy, family.switch, False))


def secret_relation(policy: Policy, schema: str | None, table: str) -> SecretFamily | None:
    """The secret family ``[schema.]table`` belongs to, when the policy does not allow it."""
    t, s = table.lower(), schema.lower() if schema else None
    for fam in SECRET_FAMILIES:
        hit = (
            (t in fam.relations and (s is None or s == "pg_catalog"))
            or (t in fam.extension_relations)
            or (s is not None and s.startswith(fam.schema_prefixes or ("\0",)))
        )
        if hit and not _allowed(policy, fam):
            return fam
    return None


def secret_function(policy: Policy, schema: str | None, name: str) -> SecretFamily | None:
    """The secret family of a call of ``[schema.]name()``, when the policy does not allow it
    (``current_setting`` is judged by its argument: see :func:`secret_setting`)."""
    n = name.lower()
    for fam in SECRET_FAMILIES:
        if n in fam.functions and not _allowed(policy, fam):
            return fam
    return None


def settings_family() -> SecretFamily:
    return next(f for f in SECRET_FAMILIES if f.key == "settings")


def secret_setting(policy: Policy, name: str | None) -> str | None:
    """Why ``current_setting(name)`` may show a credential (the matching pattern, or a reason
    when the name is not a constant), or None when it may be read."""
    if policy.allow_secret_settings:
        return None
    if name is None:
        return "a setting name that is not a constant"
    return matching_pattern(policy.secret_settings, name.strip())


def secret_view(policy: Policy, relation: str) -> tuple[SecretFamily, tuple[str, ...]] | None:
    """(family, secret columns) of the pg_catalog view ``relation``, when not allowed: those
    columns, ``*`` and whole-row references over it are refused."""
    r = relation.lower()
    for fam in SECRET_FAMILIES:
        for view, cols in fam.view_columns:
            if view == r and not _allowed(policy, fam):
                return fam, cols
    return None


def secret_views() -> frozenset[str]:
    return frozenset(v for fam in SECRET_FAMILIES for v, _ in fam.view_columns)


def secret_column_name(policy: Policy, column: str) -> SecretFamily | None:
    """The secret family of a column *named* like a secret one (rolconfig, useconfig,
    setconfig), whatever it is qualified with: conservative where the owner is unknown."""
    c = column.lower()
    for fam in SECRET_FAMILIES:
        if c in fam.columns and not _allowed(policy, fam):
            return fam
    return None


@lru_cache(maxsize=512)
def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern.lower()), re.DOTALL)


def matching_pattern(patterns: Iterable[str], name: str) -> str | None:
    """The first glob in ``patterns`` that matches ``name`` (case-insensitive), or None."""
    low = name.lower()
    for p in patterns:
        if _rx(p).match(low):
            return p
    return None


def schema_denial(policy: Policy, schema: str | None) -> str | None:
    """The deny_schemas pattern hiding ``schema``, or None (an unknown schema: None)."""
    return matching_pattern(policy.deny_schemas, schema) if schema is not None else None


def _part_match(pattern: str, names: tuple[str, ...]) -> bool:
    """Whether a dotted pattern matches ``names`` on its last len(names) parts (the
    parts before them, e.g. the schema, match anything)."""
    parts = pattern.split(".")
    if len(parts) < len(names):
        return False
    tail = parts[len(parts) - len(names) :]
    return all(_rx(p).match(n.lower()) for p, n in zip(tail, names, strict=True))


def table_denial(policy: Policy, schema: str | None, table: str) -> str | None:
    """The pattern hiding ``schema.table`` (its schema's or its own), or None.

    ``schema=None`` means the schema is not known: any deny_tables pattern whose table
    part matches counts (conservative).
    """
    if schema is None:
        return next((p for p in policy.deny_tables if _part_match(p, (table,))), None)
    return schema_denial(policy, schema) or matching_pattern(
        policy.deny_tables, f"{schema}.{table}"
    )


def column_denial(policy: Policy, schema: str | None, table: str, column: str) -> str | None:
    """The pattern hiding ``schema.table.column`` (its schema's, table's or own), or None.

    ``schema=None`` means the schema is not known (conservative, as for table_denial).
    """
    found = table_denial(policy, schema, table)
    if found:
        return found
    if schema is None:
        return next((p for p in policy.deny_columns if _part_match(p, (table, column))), None)
    return matching_pattern(policy.deny_columns, f"{schema}.{table}.{column}")


def is_schema_denied(policy: Policy, schema: str) -> bool:
    return schema_denial(policy, schema) is not None


def is_table_denied(policy: Policy, schema: str, table: str) -> bool:
    return table_denial(policy, schema, table) is not None


def is_column_denied(policy: Policy, schema: str, table: str, column: str) -> bool:
    return column_denial(policy, schema, table, column) is not None


def column_patterns_for(policy: Policy, schema: str | None, table: str) -> list[str]:
    """deny_columns patterns that could match *some* column of ``schema.table``.

    Used when the table's columns are not known: ``SELECT *`` or a whole-row reference
    over such a table might read a denied column. ``schema=None``: any schema. Patterns
    that are not three dot-separated parts are kept (conservative).
    """
    out = []
    for p in policy.deny_columns:
        parts = p.split(".")
        if len(parts) != 3 or (
            (schema is None or _rx(parts[0]).match(schema.lower()))
            and _rx(parts[1]).match(table.lower())
        ):
            out.append(p)
    return out


def is_secret_catalog(schema: str | None, table: str) -> bool:
    """Whether ``[schema.]table`` names a catalog that holds secrets.

    Unqualified names count (pg_catalog is always searched first), and so does any
    relation of that name in pg_catalog or information_schema.
    """
    t = table.lower()
    s = schema.lower() if schema is not None else None
    if s == "information_schema" and t in SECRET_INFO_SCHEMA:
        return True
    return t in SECRET_CATALOGS and (s is None or s in SECRET_SCHEMAS)


def is_function_allowed(policy: Policy, schema: str | None, name: str) -> bool:
    """Whether policy.allow_functions allowlists a (VOLATILE) user function.

    Patterns may be ``schema.name`` or a bare ``name`` (any schema).
    """
    qualified = f"{schema}.{name}" if schema else name
    for p in policy.allow_functions:
        target = qualified if "." in p else name
        if _rx(p).match(target.lower()):
            return True
    return False


def apply_policy(policy: Policy, schema: DatabaseSchema) -> DatabaseSchema:
    """A copy of ``schema`` without what the policy hides (for the reference generator).

    Denied schemas, tables and columns are removed; constraints and indexes that
    mention a removed column are removed too, as are partitions/children lists
    naming removed tables. Functions, types and sequences of denied schemas go.
    """
    if not (policy.deny_schemas or policy.deny_tables or policy.deny_columns):
        return schema
    tables = []
    for t in schema.tables:
        if is_table_denied(policy, t.schema, t.name):
            continue
        hidden = {c.name for c in t.columns if is_column_denied(policy, t.schema, t.name, c.name)}
        cols = [c for c in t.columns if c.name not in hidden]
        cons = [c for c in t.constraints if not hidden.intersection(c.columns)]
        idx = [
            i
            for i in t.indexes
            if not hidden.intersection(i.columns) and not _mentions(i.definition, hidden)
        ]
        parts = [p for p in t.partitions if not is_table_denied(policy, *_split(p))]
        tables.append(
            dataclasses.replace(t, columns=cols, constraints=cons, indexes=idx, partitions=parts)
        )
    keep = [s for s in schema.schemas if not is_schema_denied(policy, s)]
    return dataclasses.replace(
        schema,
        schemas=keep,
        schema_comments={
            k: v for k, v in schema.schema_comments.items() if not is_schema_denied(policy, k)
        },
        tables=tables,
        enums=[e for e in schema.enums if not is_schema_denied(policy, e.schema)],
        domains=[d for d in schema.domains if not is_schema_denied(policy, d.schema)],
        composites=[c for c in schema.composites if not is_schema_denied(policy, c.schema)],
        sequences=[s for s in schema.sequences if not is_schema_denied(policy, s.schema)],
        functions=[f for f in schema.functions if not is_schema_denied(policy, f.schema)],
    )


def _split(qualified: str) -> tuple[str, str]:
    schema, _, name = qualified.partition(".")
    return (schema, name) if name else ("public", schema)


def _mentions(definition: str, names: set[str]) -> bool:
    low = definition.lower()
    return any(re.search(rf"\b{re.escape(n.lower())}\b", low) for n in names)
