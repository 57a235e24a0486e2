"""THE list of functions a query may never call, in families, with a reason each.

This is the only place that names forbidden functions: the validator, the docs and
the tests all read it from here. Names are matched case-insensitively and whatever
the schema qualification (``pg_catalog.pg_sleep``, ``"pg_sleep"``, ``PG_SLEEP``,
``public.pg_sleep`` all count), either exactly or by prefix.

What is deliberately *not* here (harmless reads, documented so nobody "fixes" it):
``currval``/``lastval`` (read the session's last sequence value, change nothing),
``current_setting`` (cannot read passwords; settings hold no secrets),
``pg_backend_pid``, ``pg_export_snapshot``, ``pg_current_xact_id_if_assigned``,
``txid_current_if_assigned``, ``pg_blocking_pids``, ``pg_stat_*`` readers, ``random``,
``gen_random_uuid``, ``clock_timestamp``.

``pg_hba_file_rules()``, ``pg_show_all_file_settings()`` and ``pg_ident_file_mappings()``
back the secret catalog views: they are refused with ACCESS_DENIED (not
FORBIDDEN_FUNCTION) and allowed when ``policy.allow_secret_catalogs`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    reason: str
    names: tuple[str, ...] = ()  # exact names; "name/N" means only when called with N arguments
    prefixes: tuple[str, ...] = ()
    code: str = "FORBIDDEN_FUNCTION"


FAMILIES: tuple[Family, ...] = (
    Family(
        "sleep",
        "sleeping",
        "it holds a connection and a snapshot doing nothing (a denial-of-service tool)",
        names=("pg_sleep", "pg_sleep_for", "pg_sleep_until"),
    ),
    Family(
        "files",
        "file and directory access",
        "it reads, lists or writes files on the database server",
        names=(
            "pg_read_file",
            "pg_read_binary_file",
            "pg_stat_file",
            "pg_current_logfile",
            "pg_logdir_ls",
        ),
        prefixes=(
            "pg_ls_",
            "pg_file_",
        ),  # pg_ls_dir, pg_ls_waldir, ...; adminpack's pg_file_write, ...
    ),
    Family(
        "large_objects",
        "large objects",
        "large objects import/export server files and change stored data outside any table",
        names=("loread", "lowrite"),
        prefixes=(
            "lo_",
        ),  # lo_import, lo_export, lo_get, lo_put, lo_open, lo_creat, lo_unlink, ...
    ),
    Family(
        "remote",
        "dblink and remote connections",
        "it connects to another server and runs SQL there, outside this read-only transaction",
        names=("postgres_fdw_disconnect", "postgres_fdw_disconnect_all"),
        prefixes=("dblink",),
    ),
    Family(
        "admin",
        "backend signalling and server administration",
        "it signals other sessions or changes the state of the server",
        names=(
            "pg_cancel_backend",
            "pg_terminate_backend",
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_rotate_logfile_old",
            "pg_promote",
            "pg_log_backend_memory_contexts",
            "pg_log_standby_snapshot",
            "pg_truncate_visibility_map",
            "heap_force_kill",
            "heap_force_freeze",
            "autoprewarm_start_worker",
            "autoprewarm_dump_now",
        ),
        prefixes=("binary_upgrade_",),
    ),
    Family(
        "set_config",
        "set_config",
        "it changes session settings (role, search_path, timeouts), which a pooled connection "
        "would carry over to the next query",
        names=("set_config",),
    ),
    Family(
        "advisory_locks",
        "advisory locks",
        "advisory locks outlive the statement and block other sessions",
        prefixes=("pg_advisory_", "pg_try_advisory_"),
    ),
    Family(
        "sequences",
        "sequence changes",
        "it advances or sets a sequence, which no ROLLBACK undoes (currval and lastval are allowed)",
        names=("nextval", "setval"),
    ),
    Family(
        "sql_text",
        "functions that run SQL text (query_to_xml family)",
        "it executes SQL given as a string, out of the validator's sight",
        names=("ts_stat", "ts_rewrite/2", "connectby"),
        prefixes=(
            "query_to_xml",  # query_to_xml, query_to_xmlschema, query_to_xml_and_xmlschema
            "cursor_to_xml",
            "table_to_xml",
            "schema_to_xml",
            "database_to_xml",
            "crosstab",  # tablefunc: crosstab(text), crosstab2..4
        ),
    ),
    Family(
        "notify",
        "notify",
        "it sends notifications to other sessions",
        names=("pg_notify",),
    ),
    Family(
        "wal_replication",
        "WAL, backup, replication and slot functions",
        "it writes WAL, controls backups, or creates, advances or consumes replication slots and origins",
        names=(
            "pg_switch_wal",
            "pg_switch_xlog",
            "pg_create_restore_point",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_backup_start",
            "pg_backup_stop",
            "pg_logical_emit_message",
            "pg_replication_slot_advance",
            "pg_drop_replication_slot",
            "pg_sync_replication_slots",
        ),
        prefixes=(
            "pg_create_",  # pg_create_physical_replication_slot, pg_create_logical_replication_slot
            "pg_copy_",  # pg_copy_physical_replication_slot, pg_copy_logical_replication_slot
            "pg_logical_slot_",  # pg_logical_slot_get_changes, ..._peek_changes (consume/decode)
            "pg_replication_origin_",
            "pg_wal_replay_",
            "pg_xlog_replay_",
        ),
    ),
    Family(
        "stats_writes",
        "statistics resets and overwrites",
        "it resets or overwrites statistics other people rely on",
        names=(
            "pg_stat_statements_reset",
            "pg_set_relation_stats",
            "pg_set_attribute_stats",
            "pg_clear_relation_stats",
            "pg_clear_attribute_stats",
            "pg_restore_relation_stats",
            "pg_restore_attribute_stats",
        ),
        prefixes=("pg_stat_reset",),
    ),
    Family(
        "collation_import",
        "collation import",
        "it creates collations in the catalog",
        names=("pg_import_system_collations",),
    ),
    Family(
        "xid",
        "transaction id assignment",
        "it assigns a transaction id, a write to the cluster's xid space (the *_if_assigned variants are allowed)",
        names=("txid_current", "pg_current_xact_id"),
    ),
    Family(
        "secret_files",
        "server configuration file readers",
        "it returns server configuration files (pg_hba.conf, postgresql.conf, pg_ident.conf), "
        "which the secret catalogs hide",
        names=("pg_hba_file_rules", "pg_show_all_file_settings", "pg_ident_file_mappings"),
        code="ACCESS_DENIED",
    ),
)

_EXACT: dict[str, Family] = {}
_ARITY: dict[tuple[str, int], Family] = {}
_PREFIXES: list[tuple[str, Family]] = []
for _fam in FAMILIES:
    for _n in _fam.names:
        if "/" in _n:
            _base, _nargs = _n.split("/")
            _ARITY[(_base, int(_nargs))] = _fam
        else:
            _EXACT[_n] = _fam
    _PREFIXES.extend((_p, _fam) for _p in _fam.prefixes)
_ARITY_NAMES = frozenset(name for name, _ in _ARITY)
_PREFIX_TUPLE = tuple(p for p, _ in _PREFIXES)


def forbidden_family(name: str, nargs: int | None = None) -> Family | None:
    """The family that forbids calling ``name`` (unqualified, any case), or None.

    ``nargs`` is the number of arguments of the call (None when unknown; then an
    arity-specific rule applies, to stay on the safe side).
    """
    n = name.lower()
    fam = _EXACT.get(n)
    if fam is not None:
        return fam
    if n in _ARITY_NAMES:
        if nargs is None:
            return next(f for (b, _), f in _ARITY.items() if b == n)
        fam = _ARITY.get((n, nargs))
        if fam is not None:
            return fam
    if n.startswith(_PREFIX_TUPLE):
        for prefix, fam in _PREFIXES:
            if n.startswith(prefix):
                return fam
    return None


def all_exact_names() -> list[str]:
    """Every exactly named forbidden function (for tests and docs)."""
    out = list(_EXACT)
    out.extend(f"{b}/{n}" for b, n in _ARITY)
    return out


def describe() -> str:
    """A Markdown list of the families (used by docs and the skill)."""
    lines = []
    for fam in FAMILIES:
        names = [n.replace("/", " with ") + (" args" if "/" in n else "") for n in fam.names]
        names += [p + "*" for p in fam.prefixes]
        lines.append(f"- **{fam.title}** ({', '.join(names)}): {fam.reason}.")
    return "\n".join(lines)
