"""
================================================================
FILE: dev_keys.py
PATH: /tools/lkern-devstack/src/lkern_devstack/dev_keys.py
DESCRIPTION: Development token signing key: made on first `lkern up`, mints access tokens
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================

The local stack plays the identity provider: ``lkern up`` makes an RSA key under
``<data folder>/auth/`` on its first start (``signing-key.pem``, readable only by its owner,
never committed: ``.lkern/`` is ignored), publishes its public part as ``jwks.json`` and points
both services at it (AUTH_JWKS_FILE, AUTH_ISSUER, AUTH_AUDIENCE). ``lkern token`` mints access
tokens with it. The tests use the same code with keys of their own (lkern_devstack.testing).
"""

# === IMPORTS ===
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lkern_common.auth import ALL_SCOPES
from lkern_common.registry import discover_services
from lkern_common.settings import LOCAL_AUTH_AUDIENCE, LOCAL_AUTH_ISSUER

# === CONSTANTS ===
ALGORITHM = "RS256"
KEY_FILE = "signing-key.pem"
JWKS_FILE = "jwks.json"
DEFAULT_SUBJECT = "developer"
DEFAULT_TTL_SECONDS = 12 * 3600
REPO_ROOT = Path(__file__).resolve().parents[4]
# Every scope of the stack: the library's and each service's own ([tool.lkern] scopes), so that a
# new service's routes can be called with the development token.
STACK_SCOPES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [*ALL_SCOPES, *(scope for entry in discover_services(REPO_ROOT) for scope in entry.scopes)]
    )
)


# === SIGNING KEY ===
def fingerprint(key: rsa.RSAPrivateKey) -> str:
    """A key id derived from the public key (16 hex digits of its SHA-256): the same key, the
    same kid, with nothing else to store."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(public).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    """An RSA signing key with its key id: mints tokens, gives its public JWK."""

    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, kid: str | None = None) -> "SigningKey":
        """A new 2048-bit RSA key (kid: its fingerprint unless given)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid or fingerprint(key), key)

    def public_jwk(self) -> dict[str, Any]:
        """The public key as a JWK (kid, use "sig", alg RS256)."""
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key())
        )
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def mint(
        self,
        *,
        issuer: str = LOCAL_AUTH_ISSUER,
        audience: str | Sequence[str] = LOCAL_AUTH_AUDIENCE,
        subject: str = DEFAULT_SUBJECT,
        scopes: Iterable[str] = STACK_SCOPES,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        not_before: float | None = None,
        issued_at: float | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token (RFC 9068 claims: iss, sub, aud, exp, iat, jti, scope…)."""
        now = time.time() if issued_at is None else issued_at
        payload: dict[str, Any] = {
            "iss": issuer,
            "sub": subject,
            "aud": audience if isinstance(audience, str) else list(audience),
            "iat": int(now),
            "exp": int(now + ttl_seconds),
            "jti": uuid.uuid4().hex,
            "client_id": "lkern-dev",
            "scope": " ".join(scopes),
            **claims,
        }
        if not_before is not None:
            payload["nbf"] = int(not_before)
        return jwt.encode(
            payload,
            self.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self.kid, "typ": "at+jwt"},
        )


# === FILES ===
def write_jwks(path: Path, keys: Iterable[SigningKey]) -> None:
    """Write the public JWKS of ``keys`` (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"keys": [key.public_jwk() for key in keys]}, indent=2))
    partial.replace(path)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


@dataclass(frozen=True)
class DevAuth:
    """The local stack's issuer: its folder, signing key, JWKS file, issuer and audience."""

    directory: Path
    key: SigningKey
    issuer: str = LOCAL_AUTH_ISSUER
    audience: str = LOCAL_AUTH_AUDIENCE

    @property
    def jwks_file(self) -> Path:
        return self.directory / JWKS_FILE

    def service_env(self) -> dict[str, str]:
        """The settings that point a service at this issuer."""
        return {
            "AUTH_ISSUER": self.issuer,
            "AUTH_AUDIENCE": self.audience,
            "AUTH_JWKS_FILE": str(self.jwks_file.resolve()),
            "AUTH_JWKS_URL": "",
        }

    def mint(self, **options: Any) -> str:
        """A token of this issuer (options as SigningKey.mint)."""
        return self.key.mint(issuer=self.issuer, audience=self.audience, **options)


def dev_auth(data_dir: Path) -> DevAuth:
    """
    The development issuer of the stack whose data folder is ``data_dir``: the key made on the
    first call (``<data_dir>/auth/signing-key.pem``, mode 600), the same key afterwards.
    """
    directory = data_dir / "auth"
    key_file = directory / KEY_FILE
    if key_file.is_file():
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError(f"{key_file} is not an RSA private key")
        key = SigningKey(fingerprint(private), private)
    else:
        key = SigningKey.generate()
        _write_private(key_file, key.private_pem())
    auth = DevAuth(directory, key)
    if not auth.jwks_file.is_file():
        write_jwks(auth.jwks_file, [key])
    return auth


# === TTL ===
def parse_ttl(text: str) -> int:
    """Seconds of ``90``, ``90s``, ``15m``, ``12h`` or ``7d`` (ValueError otherwise)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    factor = units.get(value[-1:], 0)
    number = value[:-1] if factor else value
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"not a duration: {text!r} (e.g. 900, 15m, 12h, 7d)")
    return int(number) * (factor or 1)
