"""
================================================================
FILE: jwks.py
PATH: /libs/lkern-common/src/lkern_common/auth/jwks.py
DESCRIPTION: The public keys that sign access tokens: a JWKS from a file or a URL, cached
VERSION: v1.0.0
UPDATED: 2026-12-02 02:10:00
================================================================

A JSON Web Key Set (RFC 7517) is read from ``AUTH_JWKS_FILE`` or fetched from ``AUTH_JWKS_URL``
(asynchronously, with httpx) and kept in memory. It is read again

- when a token names a key id (``kid``) the set does not hold: a key the issuer just rotated
  in is found without a restart; at most once every ``min_refresh_seconds``, so tokens with
  made-up key ids cannot make the service hammer the issuer;
- when it is older than ``max_age_seconds``: a key the issuer withdrew stops being accepted.

A failed read keeps the keys read before (the issuer being down for a moment must not lock
everyone out) and is logged. Only keys for the asymmetric signature algorithms of
``ALLOWED_ALGORITHMS`` are kept: an HMAC ("oct") key in the set is ignored.
"""

# === IMPORTS ===
import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import jwt

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
# Asymmetric signatures only: never "none", never an HMAC (a shared secret would let every
# holder of the JWKS mint tokens; "HS256 signed with the public key" is the classic trick).
ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
MAX_JWKS_BYTES = 1_000_000

# === TYPES ===
Loader = Callable[[], Awaitable[bytes]]


# === HELPERS ===
def parse_jwks(raw: bytes) -> dict[str | None, jwt.PyJWK]:
    """The usable signing keys of a JWKS document by key id; ValueError when there are none."""
    document = json.loads(raw)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWKS document (an object with a "keys" list)')
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue  # a key type this library cannot use: skip it, as PyJWKSet does
        if key.algorithm_name in ALLOWED_ALGORITHMS:
            keys[entry.get("kid")] = key
    if not keys:
        raise ValueError(f"no usable signing key ({', '.join(sorted(ALLOWED_ALGORITHMS))})")
    return keys


# === KEY SET ===
class JwksKeys:
    """The issuer's public keys, read by ``load`` and cached (see the module's description)."""

    def __init__(
        self,
        load: Loader,
        source: str,
        *,
        min_refresh_seconds: float = 5.0,
        max_age_seconds: float = 300.0,
        close: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._load = load
        self._close = close
        self._clock = clock
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None
        self._lock: asyncio.Lock | None = None

    # --- construction ---
    @classmethod
    def from_file(
        cls, path: str | Path, *, min_refresh_seconds: float = 5.0, max_age_seconds: float = 300.0
    ) -> "JwksKeys":
        """Keys from a JWKS file (read again like a URL: a rotated file is picked up)."""
        file = Path(path)

        async def load() -> bytes:
            return (await asyncio.to_thread(file.read_bytes))[: MAX_JWKS_BYTES + 1]

        return cls(
            load,
            f"file {file}",
            min_refresh_seconds=min_refresh_seconds,
            max_age_seconds=max_age_seconds,
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout_seconds: float = 5.0,
        min_refresh_seconds: float = 5.0,
        max_age_seconds: float = 300.0,
    ) -> "JwksKeys":
        """Keys fetched from a JWKS URL (the issuer's ``jwks_uri``)."""
        client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

        async def load() -> bytes:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.content[: MAX_JWKS_BYTES + 1]

        return cls(
            load,
            f"URL {url}",
            min_refresh_seconds=min_refresh_seconds,
            max_age_seconds=max_age_seconds,
            close=client.aclose,
        )

    # --- keys ---
    @property
    def count(self) -> int:
        """How many usable keys are held now."""
        return len(self._keys)

    async def find(self, kid: str | None) -> jwt.PyJWK | None:
        """
        The key named ``kid`` (a token without ``kid`` may use the only key of a one-key set),
        reading the set again when it is old or does not hold ``kid`` (throttled).
        """
        now = self._clock()
        if self._loaded_at is None or now - self._loaded_at >= self._max_age:
            await self.refresh()
        key = self._lookup(kid)
        if key is None and kid is not None and self._may_refresh(self._clock()):
            await self.refresh()
            key = self._lookup(kid)
        return key

    async def refresh(self) -> bool:
        """Read the set now (one reader at a time, throttled); False when it could not be read."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        asked_at = self._clock()
        async with self._lock:
            if self._attempted_at is not None and self._attempted_at >= asked_at:
                return self._loaded_at is not None  # read while this caller waited
            if not self._may_refresh(self._clock()):
                return self._loaded_at is not None
            self._attempted_at = self._clock()
            try:
                raw = await self._load()
                if len(raw) > MAX_JWKS_BYTES:
                    raise ValueError("larger than 1 MB")
                keys = parse_jwks(raw)
            except (OSError, ValueError, httpx.HTTPError) as error:
                logger.warning(
                    "Cannot read the token signing keys (JWKS %s): %s", self.source, error
                )
                return False
            if set(keys) != set(self._keys):
                logger.info(
                    "Token signing keys from JWKS %s: %s", self.source, sorted(map(str, keys))
                )
            self._keys = keys
            self._loaded_at = self._attempted_at
            return True

    def _may_refresh(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._min_refresh

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def close(self) -> None:
        """Release the HTTP client of a URL source."""
        if self._close is not None:
            await self._close()
