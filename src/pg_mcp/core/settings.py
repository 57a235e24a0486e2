"""Configuration: sensible defaults, environment variables, optional pg-mcp.toml.

Precedence: explicit overrides > environment > pg-mcp.toml > defaults.
The file is found at ``$PG_MCP_CONFIG`` or ``./pg-mcp.toml``.

Example ``pg-mcp.toml``::

    [databases]
    include = ["db_pg_mcp_*"]      # glob patterns; empty = every reachable database
    exclude = ["postgres"]
    # optional, default: the main DSN (PG_MCP_DSN); e.g. queries on a hot standby
    query_dsn = "postgresql://pgmcp_reader@standby.internal/postgres"          # PG_MCP_QUERY_DSN
    introspection_dsn = "postgresql://pgmcp_reader@primary.internal/postgres"  # PG_MCP_INTROSPECTION_DSN

    [limits]
    statement_timeout = 10         # seconds
    lock_timeout = 1
    max_rows = 500
    max_bytes = 1_000_000
    explain_max_cost = 1e9         # 0 disables the EXPLAIN guard
    explain_max_rows = 0

    [policy]
    deny_schemas = ["secret*"]
    deny_tables = ["*.api_keys"]
    deny_columns = ["*.*.password_hash", "hr.employees.salary"]
    allow_functions = ["public.my_stable_fn"]
    allow_secret_catalogs = false

    [references]
    samples = true
    max_samples = 10
    data_budget = 30               # seconds per database: inferred joins, column profiles (0 = off)
    dir = "references"             # served by the MCP server as references://{database}

    [audit]
    log = ".pg-mcp/audit.jsonl"

    [http]                         # bearer auth of `pg-mcp serve --transport http`
    tokens_file = "/etc/pg-mcp/tokens"   # one token per line (also PG_MCP_HTTP_TOKENS_FILE)
    jwks_url = "https://idp.example.com/.well-known/jwks.json"
    issuer = "https://idp.example.com"
    resource_url = "https://pg-mcp.example.com/mcp"
    audience = "https://pg-mcp.example.com/mcp"   # default: resource_url
    required_scopes = ["pg-mcp"]

    [ask]
    model = "gpt-5-mini"
    max_attempts = 3
    min_score = 7
    deadline = 120
    rate = 1.0                     # ask calls per second (token bucket refill)
    burst = 5
    send_rows = true               # false: the judge sees columns and the row count, no row
    send_samples = true            # false: no sample values / enum labels in the prompts
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.policy import DEFAULT_SECRET_SETTINGS


@dataclass(frozen=True)
class Policy:
    """Access policy: glob patterns over schema, schema.table, schema.table.column."""

    deny_schemas: tuple[str, ...] = ()
    deny_tables: tuple[str, ...] = ()
    deny_columns: tuple[str, ...] = ()
    allow_functions: tuple[str, ...] = ()
    allow_secret_catalogs: bool = False
    # Secrets beyond the catalogs, each refused (ACCESS_DENIED) unless its switch is set:
    allow_statistics: bool = False  # pg_stats, pg_statistic, pg_stats_ext*: sampled values
    allow_session_activity: bool = False  # pg_stat_activity, pg_stat_statements: others' SQL
    allow_secret_settings: bool = False  # pg_settings, pg_db_role_setting, rolconfig, ...
    secret_settings: tuple[str, ...] = DEFAULT_SECRET_SETTINGS  # current_setting(name) refused
    allow_raw_pages: bool = False  # pageinspect: raw pages of any table
    # Least privilege: queries are refused (PRIVILEGED_ROLE) on a superuser or a member of
    # pg_read_server_files / pg_write_server_files / pg_execute_server_program, unless this is set.
    allow_privileged_role: bool = False
    # When set, every query transaction runs SET LOCAL ROLE to this role (the role checked above).
    query_role: str | None = None


@dataclass(frozen=True)
class Settings:
    # where the databases are
    dsn: str | None = None  # PG_MCP_DSN; None = embedded server
    # Where run_readonly's queries run (its connection pools) and where schema introspection
    # (the schema cache, references) connects; None = ``dsn``. Discovery and doctor use ``dsn``.
    query_dsn: str | None = None  # PG_MCP_QUERY_DSN / [databases] query_dsn
    introspection_dsn: str | None = None  # PG_MCP_INTROSPECTION_DSN / [databases] introspection_dsn
    home: Path = Path(".pg-mcp")  # PG_MCP_HOME: embedded data dir, cache, audit
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    # execution limits
    statement_timeout: float = 10.0
    lock_timeout: float = 1.0
    idle_in_transaction_timeout: float = 30.0
    connect_timeout: float = 5.0
    max_rows: int = 500
    max_bytes: int = 1_000_000
    explain_max_cost: float = 0.0  # 0 = guard off
    explain_max_rows: float = 0.0
    pool_min_size: int = 0
    pool_max_size: int = 4
    # every connection: TCP keepalives and tcp_user_timeout (seconds), so a dead peer is noticed
    tcp_keepalives_idle: float = 10.0
    tcp_keepalives_interval: float = 5.0
    tcp_keepalives_count: int = 3
    tcp_user_timeout: float = 30.0
    # the validator's own work: refused (TOO_COMPLEX) beyond these
    max_sql_chars: int = 100_000
    max_identifiers: int = 20_000
    validation_budget: float = 2.0  # seconds of CPU time per validation
    # access policy
    policy: Policy = field(default_factory=Policy)
    # references and cache
    samples: bool = True
    max_samples: int = 10
    data_budget: float = 30.0  # seconds per database for the data pass (inferred joins, profiles)
    cache_ttl: float = 600.0
    references_dir: Path = Path("references")  # served as references://{database} by the MCP server
    audit_log: Path | None = None
    # HTTP bearer auth (pg_mcp.server.auth): static tokens and/or JWTs checked against a JWKS
    http_token: str | None = None  # PG_MCP_HTTP_TOKEN (a secret)
    http_tokens_file: Path | None = None  # PG_MCP_HTTP_TOKENS_FILE / [http] tokens_file
    http_jwks_url: str | None = None
    http_issuer: str | None = None
    http_audience: str | None = None  # default: http_resource_url
    http_required_scopes: tuple[str, ...] = ()
    http_resource_url: str | None = None  # this server's public /mcp URL
    # ask
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    model: str = "gpt-5-mini"
    max_attempts: int = 3
    min_score: int = 7
    llm_deadline: float = 120.0
    llm_timeout: float = 60.0
    llm_max_retries: int = 3
    ask_rate: float = 1.0
    ask_burst: int = 5
    context_token_budget: int = 6000
    # what ask sends the model provider: result rows to the judge, sample values and enum labels
    ask_send_rows: bool = True  # PG_MCP_ASK_SEND_ROWS / [ask] send_rows
    ask_send_samples: bool = True  # [ask] send_samples

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def secrets(self) -> list[str]:
        """Every secret value these settings hold (for redaction)."""
        from pg_mcp.core.secrets import dsn_password, tokens_file_secrets

        token = self.http_token.strip() if self.http_token else None
        values = [dsn_password(self.dsn), self.openai_api_key, token]
        values += [dsn_password(self.query_dsn), dsn_password(self.introspection_dsn)]
        values += tokens_file_secrets(self.http_tokens_file)
        return [s for s in values if s]

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


_FILE_KEYS: dict[str, dict[str, str]] = {
    "databases": {
        "include": "include",
        "exclude": "exclude",
        "dsn": "dsn",
        "query_dsn": "query_dsn",
        "introspection_dsn": "introspection_dsn",
    },
    "limits": {
        "statement_timeout": "statement_timeout",
        "lock_timeout": "lock_timeout",
        "idle_in_transaction_timeout": "idle_in_transaction_timeout",
        "connect_timeout": "connect_timeout",
        "max_rows": "max_rows",
        "max_bytes": "max_bytes",
        "explain_max_cost": "explain_max_cost",
        "explain_max_rows": "explain_max_rows",
        "pool_max_size": "pool_max_size",
        "tcp_keepalives_idle": "tcp_keepalives_idle",
        "tcp_keepalives_interval": "tcp_keepalives_interval",
        "tcp_keepalives_count": "tcp_keepalives_count",
        "tcp_user_timeout": "tcp_user_timeout",
        "max_sql_chars": "max_sql_chars",
        "max_identifiers": "max_identifiers",
        "validation_budget": "validation_budget",
    },
    "references": {
        "samples": "samples",
        "max_samples": "max_samples",
        "data_budget": "data_budget",
        "cache_ttl": "cache_ttl",
        "dir": "references_dir",
    },
    "audit": {"log": "audit_log"},
    "http": {
        "tokens_file": "http_tokens_file",
        "jwks_url": "http_jwks_url",
        "issuer": "http_issuer",
        "audience": "http_audience",
        "required_scopes": "http_required_scopes",
        "resource_url": "http_resource_url",
    },
    "ask": {
        "model": "model",
        "max_attempts": "max_attempts",
        "min_score": "min_score",
        "deadline": "llm_deadline",
        "timeout": "llm_timeout",
        "max_retries": "llm_max_retries",
        "rate": "ask_rate",
        "burst": "ask_burst",
        "context_token_budget": "context_token_budget",
        "send_rows": "ask_send_rows",
        "send_samples": "ask_send_samples",
    },
}

_ENV_KEYS: dict[str, str] = {
    "PG_MCP_DSN": "dsn",
    "PG_MCP_QUERY_DSN": "query_dsn",
    "PG_MCP_INTROSPECTION_DSN": "introspection_dsn",
    "PG_MCP_HOME": "home",
    "PG_MCP_STATEMENT_TIMEOUT": "statement_timeout",
    "PG_MCP_MAX_ROWS": "max_rows",
    "PG_MCP_MAX_BYTES": "max_bytes",
    "PG_MCP_AUDIT_LOG": "audit_log",
    "PG_MCP_REFERENCES_DIR": "references_dir",
    "PG_MCP_HTTP_TOKEN": "http_token",
    "PG_MCP_HTTP_TOKENS_FILE": "http_tokens_file",
    "OPENAI_API_KEY": "openai_api_key",
    "OPENAI_BASE_URL": "openai_base_url",
    "OPENAI_MODEL": "model",
    "PG_MCP_MAX_ATTEMPTS": "max_attempts",
    "PG_MCP_LLM_DEADLINE": "llm_deadline",
    "PG_MCP_ASK_SEND_ROWS": "ask_send_rows",
}


def _coerce(name: str, value: Any) -> Any:
    types = {f.name: f.type for f in fields(Settings)}
    t = str(types[name])
    try:
        if name in ("include", "exclude", "http_required_scopes"):
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if name in ("home", "audit_log", "references_dir", "http_tokens_file"):
            return Path(value) if value not in (None, "") else None
        if t == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "on")
            return bool(value)
        if t == "int":
            return int(value)
        if t == "float":
            return float(value)
        return None if value == "" else str(value)
    except (TypeError, ValueError) as exc:
        raise PgMcpError("CONFIG_ERROR", f"invalid value for {name}: {value!r}") from exc


def _policy_from(table: Mapping[str, Any]) -> Policy:
    def tup(key: str) -> tuple[str, ...]:
        v = table.get(key, ())
        if isinstance(v, str):
            v = [v]
        return tuple(str(x) for x in v)

    known = {f.name: f for f in fields(Policy)}
    unknown = set(table) - set(known)
    if unknown:
        raise PgMcpError("CONFIG_ERROR", f"unknown [policy] keys: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key in table:
        kind = str(known[key].type)
        if kind.startswith("tuple"):
            values[key] = tup(key)
        elif kind == "bool":
            if not isinstance(table[key], bool):
                raise PgMcpError("CONFIG_ERROR", f"[policy] {key} must be true or false")
            values[key] = table[key]
        else:  # str | None
            values[key] = None if table[key] in (None, "") else str(table[key])
    return Policy(**values)


def load_settings(
    env: Mapping[str, str] | None = None, config_path: str | Path | None = None, **overrides: Any
) -> Settings:
    """Build Settings from defaults, pg-mcp.toml, the environment and overrides."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    policy = Policy()

    path = Path(config_path or env.get("PG_MCP_CONFIG") or "pg-mcp.toml")
    explicit = bool(config_path or env.get("PG_MCP_CONFIG"))
    if path.is_file():
        import tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PgMcpError("CONFIG_ERROR", f"cannot read {path}: {exc}") from None
        for section, table in data.items():
            if section == "policy":
                policy = _policy_from(table)
                continue
            keys = _FILE_KEYS.get(section)
            if keys is None or not isinstance(table, dict):
                raise PgMcpError("CONFIG_ERROR", f"unknown section [{section}] in {path}")
            for k, v in table.items():
                if k not in keys:
                    raise PgMcpError("CONFIG_ERROR", f"unknown key {k!r} in [{section}] of {path}")
                values[keys[k]] = _coerce(keys[k], v)
    elif explicit:
        raise PgMcpError("CONFIG_ERROR", f"config file not found: {path}")

    for var, name in _ENV_KEYS.items():
        if env.get(var):
            values[name] = _coerce(name, env[var])

    for k, v in overrides.items():
        if v is not None:
            values[k] = v
    values.setdefault("policy", policy)
    return Settings(**values)
