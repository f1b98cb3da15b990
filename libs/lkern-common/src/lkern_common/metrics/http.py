"""
================================================================
FILE: http.py
PATH: /libs/lkern-common/src/lkern_common/metrics/http.py
DESCRIPTION: ASGI middleware that counts HTTP requests by route template and times them
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

The route label is the full template of the route that answered
(``/api/v1/contacts/{contact_id}``). The router leaves the route it matched in the request's
scope (``scope["route"]``): the route as its router declared it, without the prefix the app
included the router under; the full template comes from FastAPI's list of the app's routes
(``iter_route_contexts``, read once). A request no route matched (a 404 for an unknown path,
a CORS preflight, the docs' static files) is ``unmatched``. The raw path is never a
label: ids would make a new time series per contact. Methods outside the usual ones are
``other``, so a client cannot create series either.

Cheap on purpose (it runs on every request): the metric children of each (method, route,
status) are looked up once and kept, so a request costs two dictionary look-ups, one counter
increment and one histogram observation (docs/observability.md has the measured overhead).
"""

# === IMPORTS ===
import time
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lkern_common.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS

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


# === MIDDLEWARE ===
class HttpMetricsMiddleware:
    """Counts and times every HTTP request (``lkern_http_requests_total``, ``…_duration_…``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._timers: dict[tuple[str, str], Histogram] = {}
        self._templates: dict[int, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500  # an exception that escapes is answered 500 further out

        async def send_noting_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            self._record(scope, status_code, time.perf_counter() - started)

    def _record(self, scope: Scope, status_code: int, seconds: float) -> None:
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = OTHER_METHOD
        route = self._route_template(scope)
        counter_key = (method, route, status_code)
        counter = self._counters.get(counter_key)
        if counter is None:
            counter = self._counters[counter_key] = HTTP_REQUESTS.labels(
                method, route, str(status_code)
            )
        timer_key = (method, route)
        timer = self._timers.get(timer_key)
        if timer is None:
            timer = self._timers[timer_key] = HTTP_REQUEST_SECONDS.labels(method, route)
        counter.inc()
        timer.observe(seconds)

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


def copy_route(inner_scope: Scope, outer_scope: Scope) -> None:
    """Hand the matched route of a copied scope back to the outer one (see HeadAsGetMiddleware)."""
    route: Any = inner_scope.get("route")
    if route is not None:
        outer_scope["route"] = route
