"""
================================================================
FILE: security.py
PATH: /libs/lkern-common/src/lkern_common/web/security.py
DESCRIPTION: REST authentication: bearer tokens, the scope each route declares, 401/403 answers
VERSION: v1.3.0
UPDATED: 2026-12-02 06:40:00
================================================================

Each route declares what it needs next to it, in its decorator::

    @router.get("/{contact_id}", dependencies=[requires(CONTACTS_READ)])

``requires`` reads ``Authorization: Bearer <JWT>``, verifies it with the app's TokenVerifier
(``app.state.token_verifier``, lkern_common.auth), binds the token's subject to the request
(log lines, created_by/updated_by, the events' ``actor``) and checks the scopes:

- no token: 401, ``WWW-Authenticate: Bearer``;
- a bad one: 401, ``WWW-Authenticate: Bearer error="invalid_token"``, detail "Invalid token";
- a good one without the scope: 403, ``error="insufficient_scope", scope="contacts:write"``.

Only PUBLIC_PATHS (and the docs' assets) need nothing; the app factory documents 401/403 on
every API route (AUTH_RESPONSES). ``check_routes`` refuses to build an
app with a route that neither declares a requirement nor is public, so a route added
tomorrow cannot be open by accident. The OpenAPI document declares the HTTP bearer scheme:
Swagger UI's "Authorize" takes a token and "Try it out" sends it.
"""

# === IMPORTS ===
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Security, status
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPBearer
from starlette.routing import BaseRoute, Mount

from lkern_common.auth import InvalidTokenError, Principal, TokenVerifier
from lkern_common.request_context import subject_var

# === CONSTANTS ===
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/metrics",  # Prometheus scrapes it from inside the network (docs/observability.md)
        "/",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)


def _challenge_header(description: str) -> dict[str, Any]:
    """The documented WWW-Authenticate header of a 401/403 (schemathesis checks it is sent)."""
    return {
        "WWW-Authenticate": {
            "description": description,
            "required": True,
            "schema": {"type": "string"},
        }
    }


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "No bearer token, or an invalid one (`WWW-Authenticate` says which)",
        "headers": _challenge_header('`Bearer`, or `Bearer error="invalid_token"`'),
    },
    403: {
        "description": "The token lacks the scope this operation needs",
        "headers": _challenge_header('`Bearer error="insufficient_scope", scope="..."`'),
    },
}

BEARER_DESCRIPTION = (
    "An OAuth 2.0 access token (JWT) from the identity provider; locally `lkern token` prints "
    "one. Scopes: contacts:read, contacts:write, orders:read, orders:write, lkern:admin."
)


# === ERRORS ===
def _unauthorized(detail: str, challenge: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": challenge},
    )


def _forbidden(scopes: Sequence[str]) -> HTTPException:
    needed = " ".join(scopes)
    return HTTPException(
        status_code=status.HTTP_403_FORBIDDEN,
        detail=f"This operation needs the scope {needed}",
        headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
    )


# === DEPENDENCY ===
class RequireScopes(HTTPBearer):
    """
    The dependency ``requires(...)`` declares: a valid bearer token with every one of
    ``scopes``; returns its Principal. It is itself the OpenAPI security scheme (an HTTP bearer
    scheme named "HTTPBearer", shared by every route), so a request resolves one dependency,
    not a scheme and a check.
    """

    def __init__(self, scopes: Sequence[str]) -> None:
        if not scopes:
            raise ValueError("a route needs at least one scope (or is on PUBLIC_PATHS)")
        super().__init__(
            bearerFormat="JWT",
            scheme_name="HTTPBearer",
            description=BEARER_DESCRIPTION,
            auto_error=False,
        )
        self.scopes = tuple(scopes)

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("Not authenticated", "Bearer")
        verifier: TokenVerifier = request.app.state.token_verifier
        try:
            principal = await verifier.verify(token)
        except InvalidTokenError:
            raise _unauthorized("Invalid token", 'Bearer error="invalid_token"') from None
        subject_var.set(principal.subject)
        if not principal.scopes.issuperset(self.scopes):
            raise _forbidden(self.scopes)
        return principal


def requires(*scopes: str) -> Any:
    """
    A route's requirement: ``dependencies=[requires(CONTACTS_READ)]``. The scopes also appear
    in the OpenAPI security requirement of the route.
    """
    return Security(RequireScopes(scopes), scopes=list(scopes))


# === ROUTE CHECK ===
def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for child in dependant.dependencies:
        yield from _walk(child)


def declared_scopes(route: Any) -> tuple[str, ...] | None:
    """
    The scopes a route (an APIRoute, or the route as an app includes it) declared with
    ``requires``, in its decorator or its router's ``dependencies``; None when it declared none.
    """
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return None
    for node in _walk(dependant):
        if isinstance(node.call, RequireScopes):
            return node.call.scopes
    return None


def is_public(route: Any) -> bool:
    """On the public list: liveness, readiness, service info, the API docs and their assets."""
    if isinstance(route, Mount):
        return route.name == "static-offline-docs"  # the docs' JS/CSS (fastapi-offline)
    return getattr(route, "path", None) in PUBLIC_PATHS


def app_routes(app: FastAPI) -> list[tuple[str, BaseRoute, Any]]:
    """``(METHODS path, original route, route as served)`` of every route of ``app``."""
    found = []
    for context in iter_route_contexts(app.routes):
        methods = ",".join(sorted(context.methods or ["*"]))
        found.append((f"{methods} {context.path}", context.original_route, context))
    return found


def unprotected_routes(app: FastAPI) -> list[str]:
    """``METHOD path`` of every route that is neither public nor declares a requirement."""
    return [
        name
        for name, original, served in app_routes(app)
        if not is_public(original)
        and not (isinstance(original, APIRoute) and declared_scopes(served) is not None)
    ]


def check_routes(app: FastAPI) -> None:
    """Refuse an app with an open route: RuntimeError naming every one."""
    open_routes = unprotected_routes(app)
    if open_routes:
        raise RuntimeError(
            "Routes without a declared requirement (add dependencies=[requires(...)], "
            f"lkern_common.web.security): {', '.join(open_routes)}"
        )
