"""
================================================================
FILE: routing.py
PATH: /libs/lkern-common/src/lkern_common/web/routing.py
DESCRIPTION: API routes that parse JSON bodies with bounded nesting and numbers (orjson)
VERSION: v1.0.0
UPDATED: 2026-12-02 02:35:00
================================================================

Every service router is ``APIRouter(..., route_class=ApiRoute)`` (``create_service_app``
refuses another route class). Its request bodies are parsed by orjson instead of the standard
``json`` module, which turned hostile bodies into an undocumented 400 "There was an error
parsing the body" (or worse). With orjson each of these is a ``json_invalid`` 422 like any other
invalid body (docs/errors.md):

- bytes that are not UTF-8, and escaped unpaired surrogates (``"\\ud800"``);
- nesting deeper than 1024 levels (orjson's fixed limit; the standard module hit Python's
  recursion limit);
- ``NaN`` / ``Infinity`` literals and numbers beyond a double (``1e400``); an integer of more
  than 64 bits is read as a float, so it is never taken as an id (ids are strict integers),
  and its size is bounded by the body limit, not parsed digit by digit into a huge integer.
"""

# === IMPORTS ===
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


# === REQUEST ===
class JsonRequest(Request):
    """A request whose ``json()`` is orjson's (errors are ``json.JSONDecodeError``: a 422)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


# === ROUTE ===
class ApiRoute(APIRoute):
    """An API route that hands its endpoint a ``JsonRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def json_route_handler(request: Request) -> Response:
            return await handler(JsonRequest(request.scope, request.receive))

        return json_route_handler
