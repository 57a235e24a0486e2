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
    from pg_mcp.model import DatabaseSchema
    from pg_mcp.settings import Policy

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
    }
)
# Schemas the secret catalogs may be reached through (views are in pg_catalog;
# information_schema has user_mapping_options / _pg_user_mappings).
SECRET_SCHEMAS: frozenset[str] = frozenset({"pg_catalog", "information_schema"})
SECRET_INFO_SCHEMA: frozenset[str] = frozenset(
    {"_pg_user_mappings", "user_mapping_options", "user_mappings"}
)


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
