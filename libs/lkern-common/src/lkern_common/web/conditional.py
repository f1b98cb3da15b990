"""
================================================================
FILE: conditional.py
PATH: /libs/lkern-common/src/lkern_common/web/conditional.py
DESCRIPTION: Conditional requests (RFC 9110): strong ETags from versions, If-Match, If-None-Match
VERSION: v1.0.0
UPDATED: 2026-12-02 02:10:00
================================================================

Optimistic concurrency for every resource that has a ``version`` (1 when created, +1 on every
change). Its entity tag is the version in quotes (``ETag: "3"``, a strong validator).

- ``If-Match`` on a change (PUT, DELETE, a status change): the route depends on
  :data:`IfMatchDep` and hands the parsed :class:`IfMatch` to its service, which calls
  :meth:`IfMatch.check` *after* it has locked the row (``SELECT … FOR UPDATE``) and before it
  changes anything. The check and the change are in one transaction under one row lock: a
  second request with the same ``If-Match`` waits for the lock, then sees the new version and
  gets 412 (:class:`PreconditionFailedError`, the current version in the body and the ETag).
- Without ``If-Match`` the change is applied (the standard's contract), unless the service runs
  with ``REQUIRE_IF_MATCH=true``: then 428 (:class:`PreconditionRequiredError`).
- ``If-None-Match`` on a GET: :func:`not_modified` answers 304 when a tag matches.

The documentation for clients is in docs/errors.md.
"""

# === IMPORTS ===
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import grpc
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from lkern_common.errors import BadRequestError, DomainError

# === CONSTANTS ===
ETAG_HEADER = "ETag"
# Longest If-Match / If-None-Match accepted (a handful of tags; anything longer is not a client
# of ours).
MAX_CONDITION_LENGTH = 1024


# === OPENAPI ===
class PreconditionFailedBody(BaseModel):
    """The 412 body: the message and the version the resource has now."""

    detail: str
    current_version: int


# OpenAPI: the answers that conditional requests add to a route's documented responses.
ETAG_RESPONSE_HEADER: dict[str, Any] = {
    ETAG_HEADER: {
        "description": 'The resource\'s version as a strong entity tag, e.g. `"3"`',
        "schema": {"type": "string"},
    }
}
NOT_MODIFIED_RESPONSE: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: `If-None-Match` names the current version"}
}
PRECONDITION_RESPONSES: dict[int | str, dict[str, Any]] = {
    412: {
        "model": PreconditionFailedBody,
        "description": "`If-Match` does not name the current version: nothing was changed; "
        "the body has `current_version` and the `ETag` header the current tag",
    },
    428: {"description": "`If-Match` is required by this deployment (`REQUIRE_IF_MATCH`)"},
}


# === ERRORS ===
class PreconditionFailedError(DomainError):
    """The resource changed since the client read it (412); carries the current version."""

    status_code = 412
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, current_version: int) -> None:
        super().__init__(
            f"The resource has changed: its current version is {current_version} "
            "(read it again, then retry with If-Match set to its ETag)"
        )
        self.current_version = current_version


class PreconditionRequiredError(DomainError):
    """The deployment requires If-Match on changes and the request has none (428)."""

    status_code = 428

    def __init__(self) -> None:
        super().__init__(
            "This request must be conditional: send If-Match with the ETag of the version you read"
        )


class InvalidConditionError(BadRequestError):
    """An If-Match / If-None-Match header that is not a list of entity tags (400)."""


# === ENTITY TAGS ===
def etag(version: int) -> str:
    """The strong entity tag of a version: ``"3"``."""
    return f'"{version}"'


def _parse_tags(header_name: str, value: str) -> tuple[bool, list[tuple[bool, str]]]:
    """
    ``*``, or the entity tags of a header as (weak, opaque tag) pairs. Raises
    InvalidConditionError for anything else.
    """
    text = value.strip()
    if text == "*":
        return True, []
    if len(text) > MAX_CONDITION_LENGTH:
        raise InvalidConditionError(f"{header_name} is too long")
    tags: list[tuple[bool, str]] = []
    for item in text.split(","):
        tag = item.strip()
        weak = tag.startswith("W/")
        opaque = tag[2:] if weak else tag
        if len(opaque) < 2 or not (opaque.startswith('"') and opaque.endswith('"')):
            raise InvalidConditionError(
                f'{header_name} must be "*" or a list of entity tags such as "3"'
            )
        tags.append((weak, opaque[1:-1]))
    return False, tags


@dataclass(frozen=True)
class IfMatch:
    """A parsed ``If-Match``: ``*`` (any current version) or the versions it names."""

    any_version: bool
    versions: frozenset[str]

    @classmethod
    def parse(cls, value: str) -> "IfMatch":
        any_version, tags = _parse_tags("If-Match", value)
        # If-Match uses the strong comparison: a weak tag never matches.
        return cls(any_version, frozenset(tag for weak, tag in tags if not weak))

    def matches(self, current_version: int) -> bool:
        return self.any_version or str(current_version) in self.versions

    def check(self, current_version: int) -> None:
        """Raise PreconditionFailedError unless the condition holds for ``current_version``."""
        if not self.matches(current_version):
            raise PreconditionFailedError(current_version)


def not_modified(if_none_match: str | None, version: int) -> Response | None:
    """
    304 with the ETag when ``If-None-Match`` names ``version`` (weak comparison, ``*`` matches
    any), else None: the route answers normally.
    """
    if if_none_match is None:
        return None
    any_version, tags = _parse_tags("If-None-Match", if_none_match)
    if any_version or str(version) in {tag for _weak, tag in tags}:
        return Response(status_code=304, headers={ETAG_HEADER: etag(version)})
    return None


def set_etag(response: Response, version: int) -> None:
    """Put the version's ETag on a response."""
    response.headers[ETAG_HEADER] = etag(version)


# === DEPENDENCIES ===
async def get_if_match(
    request: Request,
    if_match: Annotated[
        str | None,
        Header(
            description='Apply the change only if the resource\'s version is this ETag (`"3"`); '
            "412 otherwise. Required (428) when the service runs with REQUIRE_IF_MATCH=true",
        ),
    ] = None,
) -> IfMatch | None:
    """The request's If-Match, or None; 428 when it is missing and the service requires it."""
    if if_match is None:
        if getattr(request.app.state, "require_if_match", False):
            raise PreconditionRequiredError()
        return None
    return IfMatch.parse(if_match)


IfMatchDep = Annotated[IfMatch | None, Depends(get_if_match)]
IfNoneMatchHeader = Annotated[
    str | None,
    Header(description='Answer 304 without a body when the current ETag is one of these ("3")'),
]


# === ERROR HANDLER ===
async def precondition_failed_handler(request: Request, exc: Exception) -> JSONResponse:
    """412 with the current version in the body and as the ETag, so a client can re-read."""
    assert isinstance(exc, PreconditionFailedError)
    body = PreconditionFailedBody(detail=exc.message, current_version=exc.current_version)
    return JSONResponse(
        status_code=412,
        content=body.model_dump(),
        headers={ETAG_HEADER: etag(exc.current_version)},
    )


def install_conditional_requests(app: FastAPI, *, require_if_match: bool) -> None:
    """Register the 412 handler and the If-Match policy on an app."""
    app.state.require_if_match = require_if_match
    app.add_exception_handler(PreconditionFailedError, precondition_failed_handler)
