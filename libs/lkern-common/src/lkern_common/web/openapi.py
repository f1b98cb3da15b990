"""
================================================================
FILE: openapi.py
PATH: /libs/lkern-common/src/lkern_common/web/openapi.py
DESCRIPTION: Completes a service's OpenAPI document with the answers every API route can give
VERSION: v1.1.0
UPDATED: 2026-12-02 03:50:00
================================================================

FastAPI documents the responses a route declares. Some answers come from the shared pieces
instead, for every route under the API prefix, and are added here so that the document tells
the truth (docs/errors.md): the error body ``{"detail": "..."}`` on every 4xx/5xx a route
declares, 400 where a malformed If-Match / If-None-Match / Idempotency-Key header is refused,
413 on routes with a body (HTTP_MAX_BODY_BYTES), 503 with ``Retry-After`` when the
database cannot be reached, the ``X-Request-ID`` header on every response, and links from
each create to the operations on what it created.
"""

# === IMPORTS ===
import re
from typing import Any

from fastapi import FastAPI

# === CONSTANTS ===
ERROR_SCHEMA_NAME = "ErrorResponse"
ERROR_SCHEMA: dict[str, Any] = {
    "title": ERROR_SCHEMA_NAME,
    "description": "Every error except 422: a message a person can act on",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}
ERROR_CONTENT: dict[str, Any] = {
    "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}}
}
REQUEST_ID_DOC: dict[str, Any] = {
    "description": "The request id: the client's X-Request-ID when it sent a valid one, "
    "else a new one; it tags every log line of the request",
    "schema": {"type": "string"},
}
TOTAL_COUNT_DOC: dict[str, Any] = {
    "description": "Number of all items that match the filters (not only this page)",
    "schema": {"type": "integer", "minimum": 0},
}
# For a list route: `responses=LIST_RESPONSES` documents the X-Total-Count header.
LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": {"X-Total-Count": {**TOTAL_COUNT_DOC, "required": True}}}
}
TOO_LARGE: dict[str, Any] = {
    "description": "The request body is larger than HTTP_MAX_BODY_BYTES",
    "content": ERROR_CONTENT,
}
UNAVAILABLE: dict[str, Any] = {
    "description": "The database (or a service this one depends on) cannot be reached: retry later",
    "content": ERROR_CONTENT,
    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
}


# Request headers whose malformed value is a 400 (lkern_common.web.conditional, .idempotency).
CHECKED_HEADERS = ("if-match", "if-none-match", "idempotency-key")


# === DOCUMENT ===
def _document_header_errors(operation: dict[str, Any], responses: dict[str, Any]) -> None:
    """A 400 for a malformed If-Match / If-None-Match / Idempotency-Key the operation takes."""
    names = [
        parameter["name"]
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "header" and parameter["name"].lower() in CHECKED_HEADERS
    ]
    if not names:
        return
    reason = f"a malformed {' / '.join(names)} header"
    if "400" in responses:
        responses["400"]["description"] = f"{responses['400']['description']}; or {reason}"
    else:
        responses["400"] = {"description": reason[0].upper() + reason[1:]}


def _complete_operation(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    _document_header_errors(operation, responses)
    if "requestBody" in operation:
        responses.setdefault("413", TOO_LARGE)
    responses.setdefault("503", UNAVAILABLE)
    for code, response in responses.items():
        if code[0] in "45" and code != "422" and "content" not in response:
            response["content"] = ERROR_CONTENT
        headers = response.setdefault("headers", {})
        headers.setdefault("X-Request-ID", {**REQUEST_ID_DOC, "required": True})


def _add_links(paths: dict[str, Any]) -> None:
    """
    OpenAPI links from each create (``POST /things/`` → 201 with ``id``) to the operations on
    the item it made (``/things/{thing_id}`` and below): clients and the stateful fuzzing phase
    follow create → get → update → delete.
    """
    for collection, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        if not collection.endswith("/") or created is None:
            continue
        item_path = re.compile(re.escape(collection) + r"\{(\w+)\}(/.*)?$")
        links: dict[str, Any] = created.setdefault("links", {})
        for path, operations in paths.items():
            match = item_path.match(path)
            if match is None:
                continue
            for operation in operations.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {match.group(1): "$response.body#/id"},
                }


def complete_openapi(app: FastAPI, api_prefix: str) -> None:
    """Make ``app.openapi()`` return FastAPI's document completed for the API routes."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = (
                ERROR_SCHEMA
            )
            for path, item in document.get("paths", {}).items():
                if path.startswith(api_prefix):
                    for operation in item.values():
                        _complete_operation(operation)
            _add_links(document.get("paths", {}))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
