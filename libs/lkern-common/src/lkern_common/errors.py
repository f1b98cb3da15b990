"""
================================================================
FILE: errors.py
PATH: /libs/lkern-common/src/lkern_common/errors.py
DESCRIPTION: Domain errors that carry their HTTP status and gRPC code (one error contract)
VERSION: v1.1.0
UPDATED: 2026-12-02 06:05:00
================================================================
"""

# === IMPORTS ===
from typing import ClassVar

import grpc

# === ERRORS ===


class DomainError(Exception):
    """
    Base of every error a service raises on purpose. It carries the message a person can act
    on, and how each interface presents it: REST renders ``{"detail": message}`` with
    ``status_code``; gRPC aborts with ``grpc_code`` and the same message.
    """

    status_code: ClassVar[int] = 400
    grpc_code: ClassVar[grpc.StatusCode] = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(DomainError):
    """The request is well-formed but cannot be carried out (400)."""

    status_code = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(DomainError):
    """The resource does not exist (404)."""

    status_code = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class ConflictError(DomainError):
    """The resource's current state does not allow the request (409)."""

    status_code = 409
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class ServiceUnavailableError(DomainError):
    """
    A service this one depends on cannot be reached (503). REST sends ``Retry-After`` with
    ``retry_after_seconds``: when to try again (a circuit breaker knows when it probes again).
    """

    status_code = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, *, retry_after_seconds: int = 1) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, retry_after_seconds)
