"""
================================================================
FILE: logging_setup.py
PATH: /libs/lkern-common/src/lkern_common/logging_setup.py
DESCRIPTION: Logging setup in the standard's format, with the request id on every line
VERSION: v1.1.0
UPDATED: 2026-12-02 02:20:00
================================================================
"""

# === IMPORTS ===
import logging
import sys

from lkern_common.request_context import get_request_id, get_subject

# === CONSTANTS ===
# The standard's format, plus the request id and who it acts for (the token's subject);
# "-" where there is none: "[4f2a… alice]", "[4f2a… -]" before authentication, "[- -]".
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - [%(request_id)s %(subject)s] %(message)s"


# === FILTER ===
class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` and ``record.subject`` from the current context."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = get_request_id() or "-"
        record.subject = get_subject() or "-"
        return True


# === SETUP ===
def configure_logging(level: str = "INFO") -> None:
    """
    Configure the root logger once per process: one stream handler to stderr in the standard's
    format, the level from configuration. Idempotent; uvicorn's own loggers propagate to it.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_lkern", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._lkern = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Access logging is done by our middleware (with the request id), not by uvicorn.
    logging.getLogger("uvicorn.access").disabled = True
    # aiokafka logs every reconnect attempt at ERROR; keep one line per problem instead.
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))
