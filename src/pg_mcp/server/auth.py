"""Bearer auth for ``pg-mcp serve --transport http``: pg-mcp as an OAuth 2.1 resource server.

The MCP SDK does the HTTP part (its ``AuthenticationMiddleware`` + ``BearerAuthBackend`` read
``Authorization: Bearer ...``; ``RequireAuthMiddleware`` answers 401 with a ``WWW-Authenticate:
Bearer ...`` header, or 403 ``insufficient_scope``; it serves the RFC 9728 protected-resource
metadata). This module only supplies what the SDK asks for: a ``TokenVerifier`` and the
``AuthSettings``, built from ``[http]`` in pg-mcp.toml and two environment variables.

Two kinds of credentials, either or both (static tokens are tried first):

- static bearer tokens: ``PG_MCP_HTTP_TOKEN`` (one) and/or a tokens file
  (``PG_MCP_HTTP_TOKENS_FILE`` or ``[http] tokens_file``: one token per line, blank lines and
  ``#`` comments ignored). Each token is hashed with SHA-256 once at start; a presented token's
  digest is compared with every configured digest with ``hmac.compare_digest`` (no early exit),
  so the comparison time does not depend on which token, or how much of one, matched. Only
  :func:`short_hash` (12 hex characters of the SHA-256) is ever logged.
- JWTs from an issuer (``[http] jwks_url``, ``issuer``, ``resource_url``, optional ``audience``
  and ``required_scopes``): signature against the issuer's JWKS (asymmetric algorithms only),
  ``exp`` (required), ``nbf``/``iat`` with a small leeway, exact ``iss``, ``aud`` (default: the
  ``resource_url``), scopes (enforced by the SDK, 403). The JWKS is fetched with a timeout and
  cached; an unknown ``kid`` refetches it at most once a minute, so a flood of forged tokens
  cannot turn into a flood of requests to the issuer.

A token that fails any check makes the verifier return None: the SDK answers 401.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pg_mcp.core.errors import PgMcpError
from pg_mcp.core.logs import log_event
from pg_mcp.core.settings import Settings

log = logging.getLogger("pg_mcp.server.auth")

MIN_TOKEN_CHARS = 16  # shorter static tokens are guessable: refused at start
LEEWAY = 30.0  # seconds of clock skew tolerated on nbf / iat
JWKS_TIMEOUT = 5.0  # seconds for one JWKS fetch
JWKS_TTL = 600.0  # seconds before a JWKS is fetched again (keys are rotated and revoked)
JWKS_MIN_REFETCH = 60.0  # at most one fetch a minute (unknown kid, failed fetch)
JWKS_MAX_BYTES = 1_000_000
# asymmetric only: a JWKS never makes an HMAC secret (or "none") acceptable
ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# AuthSettings requires an issuer URL even without JWTs; it is only served in the
# protected-resource metadata, which static-token-only servers do not serve.
_NO_ISSUER = "http://localhost"


# --- hosts and tokens ---------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine can connect there."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def short_hash(token: str) -> str:
    """What the logs may say about a token: the first 12 hex characters of its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def _check_token(token: str, where: str) -> str:
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise PgMcpError(
            "CONFIG_ERROR",
            f"{where}: a bearer token needs at least {MIN_TOKEN_CHARS} characters and no spaces "
            "(generate one with: openssl rand -hex 32)",
        )
    return token


from pg_mcp.core.secrets import token_lines as _token_lines  # noqa: E402
from pg_mcp.core.secrets import tokens_file_secrets  # noqa: E402,F401  (re-exported)


def read_tokens_file(path: Path) -> list[str]:
    """The tokens of a tokens file, checked: missing, unreadable, empty or readable by every
    user (mode o+r or o+w) is a CONFIG_ERROR, like ssh refusing a world-readable key."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PgMcpError("CONFIG_ERROR", f"HTTP tokens file not found: {path}") from None
    except OSError as exc:
        raise PgMcpError(
            "CONFIG_ERROR", f"cannot read HTTP tokens file {path}: {exc.strerror}"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise PgMcpError("CONFIG_ERROR", f"HTTP tokens file {path} is not a regular file")
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        mode = stat.S_IMODE(st.st_mode)
        raise PgMcpError(
            "CONFIG_ERROR",
            f"HTTP tokens file {path} is accessible to every user (mode {mode:04o}): chmod 600 it",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PgMcpError("CONFIG_ERROR", f"cannot read HTTP tokens file {path}: {exc}") from None
    tokens = [_check_token(t, f"{path} line {n}") for n, t in _token_lines(text)]
    if not tokens:
        raise PgMcpError("CONFIG_ERROR", f"HTTP tokens file {path} has no tokens")
    return tokens


# --- verifiers ------------------------------------------------------------------------------


def _access_token(**fields: Any) -> Any:
    from mcp.server.auth.provider import AccessToken

    return AccessToken(**fields)


class StaticTokens:
    """Configured static tokens, kept only as SHA-256 digests."""

    def __init__(self, tokens: Iterable[str], scopes: Iterable[str] = ()) -> None:
        unique = dict.fromkeys(tokens)
        self.entries = [(_digest(t), short_hash(t)) for t in unique]
        self.scopes = list(scopes)  # a static token holds every required scope

    @property
    def hashes(self) -> list[str]:
        return [short for _, short in self.entries]

    def match(self, token: str) -> str | None:
        """The matching token's short hash, comparing against every entry in constant time."""
        presented = _digest(token)
        found = None
        for digest, short in self.entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = short
        return found

    def verify(self, token: str) -> Any:
        short = self.match(token)
        if short is None:
            return None
        return _access_token(token=token, client_id=f"token:{short}", scopes=list(self.scopes))


@dataclass
class _Jwk:
    """One key of the set, with its verification key per algorithm (parsed once)."""

    data: dict[str, Any]
    parsed: dict[str, Any] = field(default_factory=dict)

    def key(self, alg: str) -> Any:
        """The verification key for ``alg`` (PyJWK refuses a key of another type)."""
        import jwt

        if alg not in self.parsed:
            self.parsed[alg] = jwt.PyJWK(self.data, algorithm=alg).key
        return self.parsed[alg]


@dataclass
class JwksCache:
    """The issuer's JSON Web Key Set, fetched on demand and cached by key id.

    A fetch happens when the set is older than ``ttl`` or a token names a ``kid`` the set does
    not have, but never more often than once per ``min_refetch`` seconds (failed fetches
    included); a failed fetch keeps the keys already known. ``clock`` is injectable for tests.
    """

    url: str
    timeout: float = JWKS_TIMEOUT
    ttl: float = JWKS_TTL
    min_refetch: float = JWKS_MIN_REFETCH
    clock: Callable[[], float] = time.monotonic
    keys: dict[str, _Jwk] = field(default_factory=dict)  # kid ("" when it has none) -> key
    fetches: int = 0
    _fetched: float | None = None  # last successful fetch
    _attempted: float | None = None  # last fetch, successful or not
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _lookup(self, kid: str) -> _Jwk | None:
        if kid == "" and "" not in self.keys:  # no kid: only with a single-key set
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    def peek(self, kid: str) -> _Jwk | None:
        """The key when the set is fresh and has it (no fetch, no blocking: the fast path)."""
        fetched = self._fetched
        if fetched is None or self.clock() - fetched >= self.ttl:
            return None
        return self._lookup(kid)

    def _due(self, now: float, kid: str) -> bool:
        if self._attempted is None:
            return True
        if now - self._attempted < self.min_refetch:
            return False
        stale = self._fetched is None or now - self._fetched >= self.ttl
        return stale or self._lookup(kid) is None

    def _download(self) -> dict[str, _Jwk]:
        import urllib.request

        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as resp:
            body = resp.read(JWKS_MAX_BYTES + 1)
        if len(body) > JWKS_MAX_BYTES:
            raise ValueError(f"the JWKS is larger than {JWKS_MAX_BYTES} bytes")
        data = json.loads(body)
        keys: dict[str, _Jwk] = {}
        for jwk in data.get("keys", []) if isinstance(data, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # symmetric ("oct") or malformed keys are never used
            if jwk.get("use") not in (None, "sig"):
                continue
            keys[str(jwk.get("kid") or "")] = _Jwk(jwk)
        return keys

    def get_sync(self, kid: str) -> _Jwk | None:
        """The key for ``kid`` (blocking: may fetch; run it in a worker thread)."""
        with self._lock:
            now = self.clock()
            if self._due(now, kid):
                self._attempted = now
                self.fetches += 1
                try:
                    self.keys = self._download()
                    self._fetched = now
                    log_event(log, "jwks_fetched", url=self.url, keys=len(self.keys))
                except Exception as exc:  # the issuer is down or answered garbage
                    log_event(
                        log,
                        "jwks_fetch_failed",
                        level=logging.WARNING,
                        url=self.url,
                        error=type(exc).__name__,
                        message=str(exc)[:200],
                    )
            return self._lookup(kid)


class JwtVerifier:
    """Access tokens that are JWTs signed by the configured issuer, for this resource."""

    def __init__(
        self,
        jwks: JwksCache,
        issuer: str,
        audience: str,
        *,
        leeway: float = LEEWAY,
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    async def verify(self, token: str) -> Any:
        import anyio.to_thread
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg not in ALGORITHMS:
                return self._reject(token, "algorithm")
            kid = str(header.get("kid") or "")
            jwk = self.jwks.peek(kid) or await anyio.to_thread.run_sync(self.jwks.get_sync, kid)
            if jwk is None:
                return self._reject(token, "unknown_key")
            if jwk.data.get("alg") not in (None, alg):
                return self._reject(token, "algorithm")
            claims = jwt.decode(
                token,
                jwk.key(alg),
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            return self._reject(token, type(exc).__name__)
        except (ValueError, TypeError, KeyError) as exc:
            return self._reject(token, type(exc).__name__)
        return self._access(token, claims)

    def _access(self, token: str, claims: dict[str, Any]) -> Any:
        scopes = claims.get("scope", claims.get("scp", ""))
        if isinstance(scopes, str):
            scopes = scopes.split()
        subject = claims.get("sub")
        client = claims.get("client_id") or claims.get("azp") or subject or "jwt"
        return _access_token(
            token=token,
            client_id=str(client),
            scopes=[str(s) for s in scopes] if isinstance(scopes, list) else [],
            expires_at=int(claims["exp"]),
            resource=self.audience,
            subject=str(subject) if subject is not None else None,
            claims={"iss": claims.get("iss")},
        )

    def _reject(self, token: str, reason: str) -> None:
        log_event(log, "auth_rejected", kind="jwt", reason=reason, token_hash=short_hash(token))
        return None


class PgMcpTokenVerifier:
    """The SDK's ``TokenVerifier``: static tokens first, then JWTs. Never raises."""

    def __init__(self, static: StaticTokens | None, jwt_verifier: JwtVerifier | None) -> None:
        self.static = static
        self.jwt = jwt_verifier

    async def verify_token(self, token: str) -> Any:
        if self.static is not None:
            found = self.static.verify(token)
            if found is not None:
                return found
        if self.jwt is not None:
            try:
                return await self.jwt.verify(token)
            except Exception:
                log.exception("jwt_verify_crashed")
                return None
        log_event(log, "auth_rejected", kind="static", token_hash=short_hash(token))
        return None


def client_key(token: Any) -> str | None:
    """The rate-limit identity of an authenticated request: ``token:<short hash>`` for a
    static token, ``jwt:<sub>`` (else ``jwt:<client_id>``) for a JWT; None when unauthenticated."""
    if token is None:
        return None
    if not (token.claims or {}).get("iss"):  # static tokens carry no issuer
        return str(token.client_id)
    return f"jwt:{token.subject or token.client_id}"


def current_client() -> str | None:
    """The authenticated client of the request being served (the SDK's auth context)."""
    from mcp.server.auth.middleware.auth_context import get_access_token

    return client_key(get_access_token())


# --- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpAuth:
    """What ``build_server`` hands the SDK, plus what the startup log may say about it."""

    verifier: PgMcpTokenVerifier
    auth_settings: Any  # mcp.server.auth.settings.AuthSettings
    kinds: tuple[str, ...]
    token_hashes: tuple[str, ...]
    required_scopes: tuple[str, ...]
    resource_url: str | None = None
    issuer: str | None = None
    jwks_url: str | None = None
    audience: str | None = None

    @property
    def resource_metadata_url(self) -> Any:
        """RFC 9728 metadata URL for the WWW-Authenticate header (JWT mode only)."""
        if self.resource_url is None:
            return None
        from mcp.server.auth.routes import build_resource_metadata_url

        return build_resource_metadata_url(self.auth_settings.resource_server_url)

    def describe(self) -> dict[str, Any]:
        """The startup log's fields: kinds, token count and hash prefixes, never a token."""
        return {
            "kinds": list(self.kinds),
            "static_tokens": len(self.token_hashes),
            "token_hashes": list(self.token_hashes) or None,
            "jwks_url": self.jwks_url,
            "issuer": self.issuer,
            "audience": self.audience,
            "resource": self.resource_url,
            "required_scopes": list(self.required_scopes) or None,
        }


def _http_url(value: str, key: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PgMcpError("CONFIG_ERROR", f"[http] {key} must be an http(s) URL, not {value!r}")
    return value


def load_http_auth(settings: Settings) -> HttpAuth | None:
    """The HTTP auth the settings ask for (None: none configured). CONFIG_ERROR, one line,
    for a bad tokens file, a weak token or an incomplete JWT configuration."""
    tokens: list[str] = []
    if settings.http_token:
        tokens.append(_check_token(settings.http_token.strip(), "PG_MCP_HTTP_TOKEN"))
    if settings.http_tokens_file is not None:
        tokens += read_tokens_file(settings.http_tokens_file)

    jwt_only = {
        "issuer": settings.http_issuer,
        "audience": settings.http_audience,
        "resource_url": settings.http_resource_url,
    }
    if not settings.http_jwks_url:
        stray = [k for k, v in jwt_only.items() if v]
        if stray:
            raise PgMcpError(
                "CONFIG_ERROR", f"[http] {', '.join(stray)} only apply to JWTs: set jwks_url too"
            )
    scopes = tuple(settings.http_required_scopes)
    static = StaticTokens(tokens, scopes) if tokens else None
    jwt_verifier = None
    if settings.http_jwks_url:
        missing = [k for k in ("issuer", "resource_url") if not jwt_only[k]]
        if missing:
            raise PgMcpError(
                "CONFIG_ERROR", f"[http] jwks_url needs {' and '.join(missing)} as well"
            )
        jwks_url = _http_url(settings.http_jwks_url, "jwks_url")
        host = urlsplit(jwks_url).hostname or ""
        if urlsplit(jwks_url).scheme != "https" and not is_loopback(host):
            raise PgMcpError(
                "CONFIG_ERROR", "[http] jwks_url must be https (plain http only on loopback)"
            )
        _http_url(str(settings.http_issuer), "issuer")
        _http_url(str(settings.http_resource_url), "resource_url")
        audience = settings.http_audience or str(settings.http_resource_url)
        jwt_verifier = JwtVerifier(JwksCache(jwks_url), str(settings.http_issuer), audience)
    if static is None and jwt_verifier is None:
        return None

    from mcp.server.auth.settings import AuthSettings
    from pydantic import ValidationError

    try:
        auth_settings = AuthSettings(
            issuer_url=settings.http_issuer if jwt_verifier else _NO_ISSUER,
            resource_server_url=settings.http_resource_url if jwt_verifier else None,
            required_scopes=list(scopes) or None,
            # the verifier checks the audience itself (aud defaults to resource_url)
            validate_token_resource=False if jwt_verifier else None,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PgMcpError("CONFIG_ERROR", f"[http]: {first.get('msg')}") from None
    kinds = tuple(k for k, on in (("static", static), ("jwt", jwt_verifier)) if on)
    return HttpAuth(
        verifier=PgMcpTokenVerifier(static, jwt_verifier),
        auth_settings=auth_settings,
        kinds=kinds,
        token_hashes=tuple(static.hashes) if static else (),
        required_scopes=scopes,
        resource_url=settings.http_resource_url if jwt_verifier else None,
        issuer=settings.http_issuer if jwt_verifier else None,
        jwks_url=settings.http_jwks_url if jwt_verifier else None,
        audience=jwt_verifier.audience if jwt_verifier else None,
    )
