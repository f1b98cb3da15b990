"""
================================================================
FILE: request_context.py
PATH: /libs/lkern-common/src/lkern_common/request_context.py
DESCRIPTION: Request id carried through logs, gRPC metadata and Kafka headers
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
import re
import uuid
from contextvars import ContextVar

# === CONSTANTS ===
# Header / metadata key used everywhere (HTTP header, gRPC metadata, Kafka header).
REQUEST_ID_HEADER = "x-request-id"
# An incoming id is accepted only when it is short and plain, so that it cannot inject into logs.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# === CONTEXT ===
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


# === HELPERS ===
def get_request_id() -> str | None:
    """Return the request id of the current request / task, if any."""
    return request_id_var.get()


def new_request_id() -> str:
    """Generate a fresh request id."""
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """Return the caller's request id when it is well-formed, else a new one."""
    if candidate and _VALID_REQUEST_ID.match(candidate):
        return candidate
    return new_request_id()
