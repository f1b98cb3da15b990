"""
================================================================
FILE: http.py
PATH: /libs/lkern-common/src/lkern_common/metrics/http.py
DESCRIPTION: Counts HTTP requests by route template and times them (for EdgeMiddleware)
VERSION: v1.1.0
UPDATED: 2026-12-02 09:50:00
================================================================

The route label is the full template of the route that answered
(``/api/v1/contacts/{contact_id}``). The router leaves the route it matched in the request's
scope (``scope["route"]``): the route as its router declared it, without the prefix the app
included the router under; the full template comes from FastAPI's list of the app's routes
(``iter_route_contexts``, read once). A request no route matched (a 404 for an unknown path,
a CORS preflight, the docs' static files) is ``unmatched``. The raw path is never a
label: ids would make a new time series per contact. Methods outside the usual ones are
``other``, so a client cannot create series either.

Cheap on purpose (it runs on every request): ``EdgeMiddleware`` (lkern_common.web.
middleware), the only middleware, already times each request and sees its status, so it
calls ``HttpMetrics.record`` at its end instead of another middleware layer wrapping every
request (a layer cost as much again); the count and the time go to the tallies of
lkern_common.metrics.buffer (plain dictionaries, written to the metrics once a second).
docs/observability.md has the measured overhead.
"""

# === IMPORTS ===
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.types import Scope

from lkern_common.metrics import HTTP_REQUEST_SECONDS_TALLY, HTTP_REQUESTS_TALLY

# === CONSTANTS ===
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"


# === HELPERS ===
def full_templates(app: Any) -> dict[int, str]:
    """id(route as declared) → its full path template, for every route of ``app``."""
    templates: dict[int, str] = {}
    for context in iter_route_contexts(getattr(app, "routes", [])):
        if context.path:
            templates.setdefault(id(context.original_route), context.path)
    return templates


# === RECORDER ===
class HttpMetrics:
    """Counts and times HTTP requests (``lkern_http_requests_total``, ``…_duration_…``)."""

    def __init__(self) -> None:
        self._templates: dict[int, str] | None = None

    def record(self, scope: Scope, status_code: int, seconds: float) -> None:
        """One answered request: its scope (after routing), status and duration."""
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        route = self._route_template(scope)
        HTTP_REQUESTS_TALLY.inc((method, route, str(status_code)))
        HTTP_REQUEST_SECONDS_TALLY.observe((method, route), seconds)

    def _route_template(self, scope: Scope) -> str:
        """The full template of the route that answered, else ``unmatched``."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        if self._templates is None:  # the first request: every route is included by now
            self._templates = full_templates(scope.get("app"))
        template = self._templates.get(id(route))
        if template is None:
            path = getattr(route, "path", None)
            template = path if isinstance(path, str) and path else UNMATCHED_ROUTE
        return template
