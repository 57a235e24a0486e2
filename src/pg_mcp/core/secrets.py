"""Keep secrets out of everything pg-mcp prints, logs or returns."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_URI_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/?#@\s]*:)([^@/?#\s]*)(@)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_BEARER = re.compile(r"(\b(?:sk|key|Bearer)[-_ ][A-Za-z0-9_\-]{8,})")
# What a password looks like once PostgreSQL has stored it (pg_authid.rolpassword): an error that
# echoes a value (``invalid input syntax for type integer: "SCRAM-SHA-256$..."``) must not
# carry one, however the query reached it.
_SCRAM = re.compile(r"SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")
_MD5_HASH = re.compile(r"\bmd5[0-9a-f]{32}\b")
# a JSON Web Token (header.payload.signature, base64url): a custom setting such as app.jwt_secret
# or a column can hold one, and a cast error would echo it
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}")

MASK = "***"


def redact_dsn(dsn: str | None) -> str:
    """Return the DSN with its password masked (URI or key=value form)."""
    if not dsn:
        return ""
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return _URI_PASSWORD.sub(rf"\1{MASK}\3", dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:{MASK}@{host}"
        query = _KV_PASSWORD.sub(rf"\1{MASK}", parts.query.replace("&", " ")).replace(" ", "&")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return _KV_PASSWORD.sub(rf"\1{MASK}", dsn)


class Redactor:
    """Scrubs known secret strings (and anything shaped like a DSN password) from text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3 and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        out = _URI_PASSWORD.sub(rf"\1{MASK}\3", text)
        out = _KV_PASSWORD.sub(rf"\1{MASK}", out)
        if "SCRAM-SHA-256$" in out:
            out = _SCRAM.sub(MASK, out)
        if "md5" in out:
            out = _MD5_HASH.sub(MASK, out)
        if "eyJ" in out:
            out = _JWT.sub(MASK, out)
        for s in self._secrets:
            out = out.replace(s, MASK)
        return out


def dsn_password(dsn: str | None) -> str | None:
    """The password a DSN carries, if any (so it can be scrubbed everywhere)."""
    if not dsn:
        return None
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return None
        if parts.password:
            from urllib.parse import unquote

            return unquote(parts.password)
        m = _KV_PASSWORD.search(parts.query.replace("&", " "))
        return m.group(2).strip("'") if m else None
    m = _KV_PASSWORD.search(dsn)
    return m.group(2).strip("'") if m else None


def token_lines(text: str) -> list[tuple[int, str]]:
    """(line number, token) for every line that is not blank or a # comment."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        value = line.strip()
        if value and not value.startswith("#"):
            out.append((number, value))
    return out


def tokens_file_secrets(path: Path | None) -> list[str]:
    """The file's tokens without any checks (for the redactor: never fails)."""
    if path is None:
        return []
    try:
        return [t for _, t in token_lines(path.read_text(encoding="utf-8"))]
    except (OSError, UnicodeDecodeError):
        return []
