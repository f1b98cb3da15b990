"""
================================================================
FILE: auth_cost.py
PATH: /bench/auth_cost.py
DESCRIPTION: CPU cost of checking a bearer token per request, with and without the token cache
VERSION: v1.0.0
UPDATED: 2026-12-02 03:20:00
================================================================

Run: ``.venv/bin/python -m bench.auth_cost [--requests 5000]``. In one process, no network, no
database, so only authentication's own cost shows:

1. ``TokenVerifier.verify`` alone: the same token again and again (cache hit) and with the
   cache off (AUTH_TOKEN_CACHE_SIZE=0: a signature check every time), RS256 and ES256;
2. a request through FastAPI (in-process ASGI): a route that declares ``requires(...)`` vs the
   same route public, cache on and off: the difference is what a request pays.

Prints one line per figure (CPU µs per call, median of 5 rounds). Results in docs/performance.md.
"""

# === IMPORTS ===
import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from lkern_common.auth import CONTACTS_READ, JwksKeys, TokenVerifier
from lkern_common.web.security import requires
from lkern_devstack.testing import TestTokens

# === CONSTANTS ===
ROUNDS = 5


# === HELPERS ===
async def per_call_us(call: Callable[[], Awaitable[object]], count: int) -> float:
    """
    Median over ROUNDS of the mean CPU µs of one ``await call()`` (process time: the machine is
    shared, and waiting for a core is not the code's cost).
    """
    await call()  # warm-up
    results = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(count):
            await call()
        results.append((time.process_time() - started) / count * 1e6)
    return statistics.median(results)


def verifier(tokens: TestTokens, cache_size: int) -> TokenVerifier:
    return TokenVerifier(
        JwksKeys.from_file(tokens.jwks_file),
        issuer=tokens.issuer,
        audience=tokens.audience,
        cache_size=cache_size,
    )


def es256_token(directory: Path) -> tuple[TokenVerifier, str]:
    """An ES256 key and token (PyJWT signs with whatever key type it is given)."""
    import jwt

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)}
    jwk.update(kid="es", use="sig", alg="ES256")
    (directory / "es.json").write_text(f'{{"keys": [{__import__("json").dumps(jwk)}]}}')
    token = jwt.encode(
        {"iss": "i", "aud": "a", "sub": "s", "exp": int(time.time()) + 3600, "scope": "x"},
        key,
        algorithm="ES256",
        headers={"kid": "es"},
    )
    checker = TokenVerifier(JwksKeys.from_file(directory / "es.json"), issuer="i", audience="a")
    return checker, token


def app(checker: TokenVerifier) -> FastAPI:
    application = FastAPI()
    application.state.token_verifier = checker

    @application.get("/protected", dependencies=[requires(CONTACTS_READ)])
    async def protected() -> dict[str, int]:
        return {"id": 1}

    @application.get("/public")
    async def public() -> dict[str, int]:
        return {"id": 1}

    return application


# === MAIN ===
async def main(count: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="lkern-auth-cost-"))
    tokens = TestTokens(directory)
    token = tokens.mint([CONTACTS_READ])
    for cache_size, label in ((10_000, "cache on"), (0, "cache off")):
        checker = verifier(tokens, cache_size)
        cost = await per_call_us(lambda c=checker: c.verify(token), count)  # type: ignore[misc]
        print(f"verify RS256, {label}: {cost:8.1f} µs")
    es_checker, es_token = es256_token(directory)
    es_checker_off = TokenVerifier(es_checker.keys, issuer="i", audience="a", cache_size=0)
    cost = await per_call_us(lambda: es_checker_off.verify(es_token), count)
    print(f"verify ES256, cache off: {cost:8.1f} µs")

    headers = {"Authorization": f"Bearer {token}"}
    for cache_size, label in ((10_000, "cache on"), (0, "cache off")):
        application = app(verifier(tokens, cache_size))
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            public = await per_call_us(lambda c=client: c.get("/public"), count // 5)  # type: ignore[misc]
            protected = await per_call_us(
                lambda c=client: c.get("/protected", headers=headers),  # type: ignore[misc]
                count // 5,
            )
        print(
            f"request, {label}: public {public:8.1f} µs, protected {protected:8.1f} µs, "
            f"authentication {protected - public:8.1f} µs"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    asyncio.run(main(parser.parse_args().requests))
