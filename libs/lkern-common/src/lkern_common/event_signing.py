"""
================================================================
FILE: event_signing.py
PATH: /libs/lkern-common/src/lkern_common/event_signing.py
DESCRIPTION: Event signatures: a detached JWS over the exact Kafka value, signed and verified
VERSION: v1.0.0
UPDATED: 2026-12-02 02:30:00
================================================================

Only the service that owns an aggregate may speak for it. Every event a service publishes
carries, in the Kafka header ``x-lkern-signature``, a JWS in compact form with a detached
payload (RFC 7515 appendix F: ``<protected header>..<signature>``) over the message value's
exact bytes. The protected header names the algorithm (EdDSA, Ed25519 keys; ES256 and RS256
keys are accepted too) and the key (``kid``).

- The outbox relay signs (`EventSigner`, key from EVENT_SIGNING_KEY_FILE: a private JWK with
  its ``kid``), so every service that publishes through the outbox signs.
- The shared consumer verifies before anything else (`EventVerifier`): the key must be in the
  JWKS of the service that owns the topic (EVENT_TRUSTED_JWKS, by service name). Unsigned, a
  bad signature or an unknown key → the dead-letter topic with reason ``bad-signature``; the
  event changes nothing. A JWKS file is read again (at most every few seconds) when a key id is
  unknown, so a rotated key is trusted without a restart.

JOSE is PyJWT's (on ``cryptography``); only asymmetric algorithms are allowed, and the
algorithm must be the one the trusted key declares.
"""

# === IMPORTS ===
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from jwt.api_jwk import PyJWK, PyJWKSet
from jwt.api_jws import PyJWS

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
SIGNATURE_HEADER = "x-lkern-signature"
ALLOWED_ALGORITHMS = ("EdDSA", "ES256", "RS256")
RELOAD_INTERVAL_S = 5.0


# === ERRORS ===
class EventSigningError(RuntimeError):
    """The signing or trusted keys are not configured or cannot be read."""


class BadSignatureError(ValueError):
    """An event is unsigned, its signature is wrong, or its key is not trusted."""


# === HELPERS ===
def _read_json(path: Path, setting: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EventSigningError(
            f"{setting}: cannot read {path} ({exc}). The local stack makes the keys on "
            "`lkern up`; elsewhere see docs/events.md"
        ) from None
    if not isinstance(data, dict):
        raise EventSigningError(f"{setting}: {path} is not a JSON object")
    return data


def _algorithm(key: PyJWK) -> str:
    name = key.algorithm_name
    if name not in ALLOWED_ALGORITHMS:
        raise EventSigningError(f"key {key.key_id!r}: algorithm {name} is not allowed")
    return name


# === SIGNER ===
class EventSigner:
    """Signs message values with one private key (a JWK with ``kid``)."""

    def __init__(self, key: PyJWK) -> None:
        if not key.key_id:
            raise EventSigningError("the event signing key has no kid")
        self._key = key
        self._algorithm = _algorithm(key)
        self._headers: dict[str, Any] = {"kid": key.key_id, "typ": None}  # a JWS, not a JWT
        self._jws = PyJWS(algorithms=[self._algorithm])

    @property
    def key_id(self) -> str:
        return str(self._key.key_id)

    @classmethod
    def from_file(cls, path: Path | None) -> "EventSigner":
        """The signer of EVENT_SIGNING_KEY_FILE (a clear error when unset or unreadable)."""
        if path is None:
            raise EventSigningError(
                "EVENT_SIGNING_KEY_FILE must be set: every published event is signed"
            )
        data = _read_json(path, "EVENT_SIGNING_KEY_FILE")
        if "d" not in data:
            raise EventSigningError(f"EVENT_SIGNING_KEY_FILE: {path} holds no private key")
        try:
            return cls(PyJWK.from_dict(data))
        except jwt.PyJWTError as exc:
            raise EventSigningError(f"EVENT_SIGNING_KEY_FILE: {path}: {exc}") from None

    def sign(self, value: bytes) -> bytes:
        """The compact detached JWS over ``value`` (the header value)."""
        token = self._jws.encode(
            value,
            self._key.key,
            algorithm=self._algorithm,
            headers=self._headers,
            is_payload_detached=True,
        )
        return token.encode("ascii")


# === VERIFIER ===
class _TrustedKeys:
    """One publisher's JWKS file, read again when an unknown kid shows up (rate-limited)."""

    def __init__(self, source: str, path: Path) -> None:
        self.source = source
        self.path = path
        self._keys: dict[str, PyJWK] = {}
        self._loaded_at = float("-inf")
        self._load()

    def _load(self) -> None:
        data = _read_json(self.path, f"EVENT_TRUSTED_JWKS[{self.source}]")
        try:
            keyset = PyJWKSet.from_dict(data)
        except jwt.PyJWTError as exc:
            raise EventSigningError(f"EVENT_TRUSTED_JWKS[{self.source}]: {exc}") from None
        self._keys = {key.key_id: key for key in keyset.keys if key.key_id}
        self._loaded_at = time.monotonic()

    def get(self, kid: str) -> PyJWK | None:
        if kid not in self._keys and time.monotonic() - self._loaded_at >= RELOAD_INTERVAL_S:
            try:
                self._load()
            except EventSigningError as exc:
                logger.warning("Keeping the trusted keys of %s: %s", self.source, exc)
                self._loaded_at = time.monotonic()
        return self._keys.get(kid)


class EventVerifier:
    """Checks that a message value was signed by the publisher that owns its topic."""

    def __init__(self, trusted_jwks: Mapping[str, Path]) -> None:
        self._trusted = {
            source: _TrustedKeys(source, path) for source, path in trusted_jwks.items()
        }
        self._jws = PyJWS(algorithms=list(ALLOWED_ALGORITHMS))

    def trusts(self, source: str) -> bool:
        return source in self._trusted

    def verify(self, source: str, value: bytes | None, signature: bytes | None) -> None:
        """Raise :class:`BadSignatureError` unless ``signature`` is ``source``'s over ``value``."""
        if signature is None:
            raise BadSignatureError("the event is not signed")
        trusted = self._trusted.get(source)
        if trusted is None:
            raise BadSignatureError(f"no trusted keys of {source}")
        try:
            kid = jwt.get_unverified_header(signature).get("kid")
        except jwt.PyJWTError:
            raise BadSignatureError("invalid signature") from None
        key = trusted.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise BadSignatureError(f"unknown key {str(kid)[:100]!r} for {source}")
        try:
            self._jws.decode_complete(
                signature,
                key.key,
                algorithms=[_algorithm(key)],
                detached_payload=value or b"",
            )
        except (jwt.PyJWTError, EventSigningError):
            raise BadSignatureError("invalid signature") from None
