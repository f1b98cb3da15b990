"""
================================================================
FILE: test_auth.py
PATH: /libs/lkern-common/tests/test_auth.py
DESCRIPTION: TokenVerifier on its own: token cache, JWKS re-reads, refused keys, error text
VERSION: v1.0.0
UPDATED: 2026-12-02 03:25:00
================================================================

The ways a token can be bad are tested against the real services (services/*/tests/test_auth.py);
here what is hard to see through HTTP: how often a signature is checked and the keys re-read.
"""

# === IMPORTS ===
import base64
import json
import time
from pathlib import Path

import jwt
import pytest

from lkern_common.auth import InvalidTokenError, JwksKeys, Principal, TokenVerifier
from lkern_devstack.testing import TestTokens

# === CONSTANTS ===
MINUTE = 60.0


# === HELPERS ===
class Clock:
    """A clock the test moves (the token cache's notion of now; PyJWT keeps the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def counting_verifier(
    tokens: TestTokens, clock: Clock, **options: float
) -> tuple[TokenVerifier, list[str | None]]:
    """A verifier whose key lookups (one per signature check) are recorded."""
    keys = JwksKeys.from_file(tokens.jwks_file, min_refresh_seconds=0)
    looked_up: list[str | None] = []
    find = keys.find

    async def recording_find(kid: str | None) -> jwt.PyJWK | None:
        looked_up.append(kid)
        return await find(kid)

    keys.find = recording_find  # type: ignore[method-assign]
    verifier = TokenVerifier(
        keys, issuer=tokens.issuer, audience=tokens.audience, clock=clock, **options
    )
    return verifier, looked_up


@pytest.fixture
def tokens(tmp_path: Path) -> TestTokens:
    return TestTokens(tmp_path)


# === TOKEN CACHE ===
async def test_a_token_is_verified_once_then_served_from_the_cache_until_it_expires(
    tokens: TestTokens,
) -> None:
    clock = Clock()
    verifier, looked_up = counting_verifier(tokens, clock)
    token = tokens.mint(["contacts:read"], subject="alice", ttl_seconds=10 * MINUTE)
    first = await verifier.verify(token)
    assert first == Principal(
        subject="alice",
        scopes=frozenset({"contacts:read"}),
        client_id="lkern-dev",
        expires_at=first.expires_at,
    )
    for _ in range(5):
        assert await verifier.verify(token) is first
    assert len(looked_up) == 1
    clock.now += 11 * MINUTE  # past exp + leeway for the cache: checked again
    await verifier.verify(token)
    assert len(looked_up) == 2


async def test_without_the_cache_every_use_is_checked(tokens: TestTokens) -> None:
    verifier, looked_up = counting_verifier(tokens, Clock(), cache_size=0)
    token = tokens.mint()
    for _ in range(3):
        await verifier.verify(token)
    assert len(looked_up) == 3


async def test_the_cache_keeps_at_most_its_size(tokens: TestTokens) -> None:
    verifier, looked_up = counting_verifier(tokens, Clock(), cache_size=2)
    first, second, third = (tokens.mint(subject=name) for name in ("a", "b", "c"))
    for token in (first, second, third, third, second):
        await verifier.verify(token)
    assert len(looked_up) == 3  # the third pushed the first out; the others were cached
    await verifier.verify(first)
    assert len(looked_up) == 4


async def test_a_refused_token_is_not_cached(tokens: TestTokens) -> None:
    verifier, looked_up = counting_verifier(tokens, Clock())
    wrong = tokens.mint(aud="elsewhere")
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            await verifier.verify(wrong)
    assert len(looked_up) == 2


# === KEYS ===
async def test_a_key_rotated_into_the_jwks_file_is_used_and_a_broken_file_keeps_the_keys(
    tokens: TestTokens,
) -> None:
    verifier, _ = counting_verifier(tokens, Clock())
    assert (await verifier.verify(tokens.mint())).subject == "test-user"
    tokens.rotate(keep_old=False)
    assert (await verifier.verify(tokens.mint(subject="new"))).subject == "new"
    assert verifier.keys.count == 1

    tokens.jwks_file.write_text("{not json")
    assert await verifier.keys.refresh() is False
    assert (await verifier.verify(tokens.mint(subject="still"))).subject == "still"


async def test_hmac_keys_in_the_jwks_are_ignored(tokens: TestTokens) -> None:
    secret = b"a shared secret that every holder of the JWKS could sign with"
    oct_key = {"kty": "oct", "kid": "hmac", "k": base64.urlsafe_b64encode(secret).decode()}
    document = json.loads(tokens.jwks_file.read_text())
    tokens.jwks_file.write_text(json.dumps({"keys": [*document["keys"], oct_key]}))
    verifier, _ = counting_verifier(tokens, Clock())
    claims = {"iss": tokens.issuer, "aud": tokens.audience, "sub": "x", "exp": time.time() + 60}
    forged = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "hmac"})
    with pytest.raises(InvalidTokenError) as refused:
        await verifier.verify(forged)
    assert str(refused.value) == "invalid token"
    assert "HS256" in refused.value.reason
    assert await verifier.ready()
    assert verifier.keys.count == 1  # the RSA key only


async def test_a_token_without_kid_may_use_the_only_key(tokens: TestTokens) -> None:
    verifier, _ = counting_verifier(tokens, Clock())
    header, payload, signature = tokens.mint().split(".")
    decoded = json.loads(base64.urlsafe_b64decode(header + "=="))
    assert decoded.pop("kid")
    # Dropping kid changes the signed header: the signature no longer matches.
    bare = base64.urlsafe_b64encode(json.dumps(decoded).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidTokenError):
        await verifier.verify(f"{bare}.{payload}.{signature}")
    unnamed = jwt.encode(
        jwt.decode(tokens.mint(), options={"verify_signature": False}),
        tokens.key.private_key,
        algorithm="RS256",
    )
    assert (await verifier.verify(unnamed)).subject == "test-user"


@pytest.mark.parametrize("subject", ["", "x" * 256, "line\nbreak"])
async def test_a_subject_that_cannot_be_stored_or_logged_is_refused(
    tokens: TestTokens, subject: str
) -> None:
    verifier, _ = counting_verifier(tokens, Clock())
    with pytest.raises(InvalidTokenError, match=r"^invalid token$"):
        await verifier.verify(tokens.mint(subject=subject))
