"""pg-mcp stats [--url URL]: print the server's metrics (Prometheus text format).

Metrics live in the process that serves: ``pg-mcp serve --transport http`` exposes them
at ``/metrics``. This command fetches that URL (default ``http://127.0.0.1:8000/metrics``)
and prints it. When no URL was given and nothing answers there, it prints this process's
own registry (every counter at zero) and says so on stderr; an explicit ``--url`` that
does not answer is an error (CONNECTION_ERROR).
"""

from __future__ import annotations

import argparse
import sys

from pg_mcp.errors import PgMcpError
from pg_mcp.settings import Settings

DEFAULT_URL = "http://127.0.0.1:8000/metrics"


def metrics_url(url: str) -> str:
    """Accept a server's base URL or its /mcp endpoint as well as the /metrics URL."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url if "://" in url else f"http://{url}")
    path = parts.path.rstrip("/")
    if path in ("", "/mcp"):
        path = "/metrics"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def fetch(url: str, timeout: float = 5.0) -> str:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
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
    if args.url:
        sys.stdout.write(fetch(metrics_url(args.url)))
        return 0
    try:
        text = fetch(DEFAULT_URL, timeout=2.0)
    except PgMcpError:
        from pg_mcp.metrics import Metrics

        print(
            f"note: no pg-mcp HTTP server answers at {DEFAULT_URL}; showing this process's empty "
            "registry (metrics live in the serving process: `pg-mcp serve --transport http`)",
            file=sys.stderr,
        )
        text = Metrics().render()
    sys.stdout.write(text)
    return 0
