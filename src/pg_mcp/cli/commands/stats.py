"""pg-mcp stats [--url URL]: print the server's metrics (Prometheus text format).

Metrics live in the process that serves: ``pg-mcp serve --transport http`` exposes them
at ``/metrics``. This command fetches that URL (default ``http://127.0.0.1:8000/metrics``)
and prints it. When no URL was given and nothing answers there, it prints this process's
own registry (every counter at zero) and says so on stderr; an explicit ``--url`` that
does not answer is an error (CONNECTION_ERROR). A server with bearer auth guards
``/metrics`` too: the request carries ``PG_MCP_HTTP_TOKEN`` (else the tokens file's first
token) when one is configured.
"""

from __future__ import annotations

import argparse
import sys

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000/metrics"


def metrics_url(url: str) -> str:
    """Accept a server's base URL or its /mcp endpoint as well as the /metrics URL."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url if "://" in url else f"http://{url}")
    path = parts.path.rstrip("/")
    if path in ("", "/mcp"):
        path = "/metrics"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def bearer_headers(settings: Settings) -> dict[str, str]:
    """``Authorization: Bearer ...`` from the configured static token, if there is one."""
    from pg_mcp.core.secrets import tokens_file_secrets

    tokens = [settings.http_token, *tokens_file_secrets(settings.http_tokens_file)]
    token = next((t.strip() for t in tokens if t and t.strip()), None)
    return {"Authorization": f"Bearer {token}"} if token else {}


def fetch(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> str:
    import urllib.error
    import urllib.request

    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise PgMcpError("CONNECTION_ERROR", f"{url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PgMcpError(
            "CONNECTION_ERROR",
            f"no metrics at {url}: {reason}",
            hint="start the server with `pg-mcp serve --transport http` (metrics are served at /metrics)",
        ) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    headers = bearer_headers(settings)
    if args.url:
        sys.stdout.write(fetch(metrics_url(args.url), headers=headers))
        return 0
    try:
        text = fetch(DEFAULT_URL, timeout=2.0, headers=headers)
    except PgMcpError:
        from pg_mcp.server.metrics import Metrics

        print(
            f"note: no pg-mcp HTTP server answers at {DEFAULT_URL}; showing this process's empty "
            "registry (metrics live in the serving process: `pg-mcp serve --transport http`)",
            file=sys.stderr,
        )
        text = Metrics().render()
    sys.stdout.write(text)
    return 0
