"""
================================================================
FILE: verifier.py
PATH: /libs/lkern-common/src/lkern_common/auth/verifier.py
DESCRIPTION: Checks OAuth 2.0 access tokens (JWT, RFC 9068) and says who called with which scopes
VERSION: v1.0.0
UPDATED: 2026-12-02 02:10:00
================================================================

Transport-agnostic: REST (lkern_common.web.security) and gRPC call the same
``TokenVerifier.verify(token)``. A token is accepted when

- its header names an allowed asymmetric algorithm (RS256, ES256, EdDSA) and a key of the
  issuer's JWKS of that same algorithm, and its signature verifies with that key;
- ``iss`` is AUTH_ISSUER, ``aud`` is or contains AUTH_AUDIENCE, ``exp`` has not passed and
  ``nbf``/``iat`` are not in the future (both with AUTH_LEEWAY_SECONDS of clock skew);
- ``sub`` is a plain string of at most 255 characters (it is stored as created_by/updated_by).

Anything else raises ``InvalidTokenError`` whose message is only "invalid token": the reason is
logged, never told to the caller. A verified token is cached by its SHA-256 until it expires,
so a client that sends the same token on every request pays one signature check, not one per
request (figures in docs/performance.md).
"""

# === IMPORTS ===
import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt

from lkern_common.auth.jwks import ALLOWED_ALGORITHMS, JwksKeys

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
MAX_TOKEN_LENGTH = 16_384  # longer "tokens" are refused before any parsing
MAX_SUBJECT_LENGTH = 255
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


# === ERRORS ===
class InvalidTokenError(Exception):
    """The token is not acceptable. ``str(error)`` is "invalid token"; ``reason`` is for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid token")
        self.reason = reason


# === PRINCIPAL ===
@dataclass(frozen=True, slots=True)
class Principal:
    """
    Who called: ``subject`` (the token's ``sub``), the ``scopes`` it was granted (the
    space-separated ``scope`` claim), the OAuth client it was issued to (``client_id`` or
    ``azp``, when given) and when the token expires (epoch seconds).
    """

    subject: str
    scopes: frozenset[str]
    client_id: str | None = None
    expires_at: float = 0.0

    def has_scopes(self, *required: str) -> bool:
        """True when every one of ``required`` was granted."""
        return self.scopes.issuperset(required)


# === SETTINGS ===
class AuthSettings(Protocol):
    """The settings a verifier is built from (ServiceSettings has them: docs/configuration.md)."""

    auth_issuer: str
    auth_audience: str
    auth_jwks_url: str
    auth_jwks_file: str
    auth_leeway_seconds: float
    auth_jwks_min_refresh_seconds: float
    auth_jwks_max_age_seconds: float
    auth_jwks_timeout_seconds: float
    auth_token_cache_size: int


# === HELPERS ===
def _unverified_header(token: str) -> dict[str, Any]:
    """
    The token's header (alg, kid), to choose the key. Only the first segment is decoded:
    PyJWT's own header peek validates the whole token byte by byte in Python (~0.4 ms for an
    RS256 token), and jwt.decode does that strict check right after anyway.
    """
    segment = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidTokenError("malformed header") from None
    if not isinstance(header, dict):
        raise InvalidTokenError("malformed header")
    return header


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise InvalidTokenError("scope claim is not a string")
    return frozenset(scope.split())


def _subject(claims: dict[str, Any]) -> str:
    subject = claims.get("sub")
    if (
        not isinstance(subject, str)
        or not subject
        or len(subject) > MAX_SUBJECT_LENGTH
        or not subject.isprintable()
    ):
        raise InvalidTokenError("sub is not a printable string of 1-255 characters")
    return subject


# === VERIFIER ===
class TokenVerifier:
    """
    Verifies bearer tokens against the issuer's keys (``JwksKeys``). One per process, shared by
    REST and gRPC; ``await verify(token)`` returns the ``Principal`` or raises
    ``InvalidTokenError``. ``close()`` releases the JWKS source.
    """

    def __init__(
        self,
        keys: JwksKeys,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway_seconds
        self._cache_size = cache_size
        self._cache: dict[bytes, Principal] = {}
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> "TokenVerifier":
        """The verifier configured by AUTH_* settings (AUTH_JWKS_URL wins over AUTH_JWKS_FILE)."""
        refresh = settings.auth_jwks_min_refresh_seconds
        max_age = settings.auth_jwks_max_age_seconds
        if settings.auth_jwks_url:
            keys = JwksKeys.from_url(
                settings.auth_jwks_url,
                timeout_seconds=settings.auth_jwks_timeout_seconds,
                min_refresh_seconds=refresh,
                max_age_seconds=max_age,
            )
        else:
            keys = JwksKeys.from_file(
                settings.auth_jwks_file, min_refresh_seconds=refresh, max_age_seconds=max_age
            )
        return cls(
            keys,
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            leeway_seconds=settings.auth_leeway_seconds,
            cache_size=settings.auth_token_cache_size,
        )

    # --- verification ---
    async def verify(self, token: str) -> Principal:
        """The caller of ``token``, or InvalidTokenError (reason logged, never returned)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("longer than 16 KiB")
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            if cached.expires_at + self.leeway > self._clock():
                return cached
            del self._cache[digest]
        try:
            principal = await self._verify_signed(token)
        except InvalidTokenError as error:
            logger.info("Bearer token refused: %s", error.reason)
            raise
        self._remember(digest, principal)
        return principal

    async def _verify_signed(self, token: str) -> Principal:
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError(f"algorithm {algorithm!r} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidTokenError("kid is not a string")
        key = await self.keys.find(kid)
        if key is None:
            raise InvalidTokenError(f"no signing key {kid!r} in the JWKS ({self.keys.source})")
        if key.algorithm_name != algorithm:
            raise InvalidTokenError(f"key {kid!r} is for {key.algorithm_name}, not {algorithm}")
        try:
            claims = jwt.decode(
                token,
                key,  # a PyJWK verifies with its own algorithm only
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as error:
            raise InvalidTokenError(f"{type(error).__name__}: {error}") from None
        client_id = claims.get("client_id") or claims.get("azp")
        return Principal(
            subject=_subject(claims),
            scopes=_scopes(claims),
            client_id=client_id if isinstance(client_id, str) else None,
            expires_at=float(claims["exp"]),
        )

    # --- cache ---
    def _remember(self, digest: bytes, principal: Principal) -> None:
        if self._cache_size <= 0:
            return
        if len(self._cache) >= self._cache_size:
            now = self._clock()
            expired = [k for k, p in self._cache.items() if p.expires_at + self.leeway <= now]
            for stale in expired:
                del self._cache[stale]
            while len(self._cache) >= self._cache_size:  # still full: drop the oldest
                del self._cache[next(iter(self._cache))]
        self._cache[digest] = principal

    def forget_tokens(self) -> None:
        """Empty the cache of verified tokens (the next use of each is verified again)."""
        self._cache.clear()

    # --- lifecycle ---
    async def ready(self) -> bool:
        """True when signing keys are loaded (loads them when none are yet)."""
        if self.keys.count == 0:
            await self.keys.refresh()
        return self.keys.count > 0

    async def close(self) -> None:
        """Release the JWKS source (HTTP client)."""
        await self.keys.close()
