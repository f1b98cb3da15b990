"""
================================================================
FILE: logging_setup.py
PATH: /libs/lkern-common/src/lkern_common/logging_setup.py
DESCRIPTION: Logging setup: the standard's text format or JSON lines (LOG_FORMAT), with the
             request id, subject and trace ids on every line; the level changeable at runtime
VERSION: v2.0.0
UPDATED: 2026-12-02 06:10:00
================================================================
"""

# === IMPORTS ===
import logging
import sys
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

from lkern_common.request_context import get_request_id, get_subject
from lkern_common.tracing import current_ids, tracing_requested

# === CONSTANTS ===
# The standard's format, plus the request id and who it acts for (the token's subject);
# "-" where there is none: "[4f2a… alice]", "[4f2a… -]" before authentication, "[- -]".
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - [%(request_id)s %(subject)s] %(message)s"
# The same with the trace and span ids when tracing is on (docs/observability.md):
# "[4f2a… alice trace=0af7… span=b7ad…]", "trace=- span=-" outside a span.
TRACED_LOG_FORMAT = (
    "%(asctime)s - %(name)s - %(levelname)s - "
    "[%(request_id)s %(subject)s trace=%(trace_id)s span=%(span_id)s] %(message)s"
)
# LOG_FORMAT=json: one object per line with these fields (renamed from the LogRecord's), plus
# "timestamp" (ISO 8601, UTC), "service", and request_id / subject / trace_id / span_id /
# exception when there are such.
JSON_FIELDS = ("levelname", "name", "message")
JSON_RENAMES = {"levelname": "level", "name": "logger", "exc_info": "exception"}
# Levels the runtime API (GET/PUT /config/log-level) accepts, lower case as it shows them.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LogFormat = Literal["text", "json"]


# === FILTER ===
class RequestIdFilter(logging.Filter):
    """
    Adds ``record.request_id``, ``record.subject``, ``record.trace_id`` and ``record.span_id``
    from the current context ("-" where there is none; the JSON formatter leaves those out).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = get_request_id() or "-"
        record.subject = get_subject() or "-"
        ids = current_ids()
        record.trace_id, record.span_id = ids if ids is not None else ("-", "-")
        return True


# === JSON ===
class JsonLineFormatter(JsonFormatter):
    """
    python-json-logger's formatter with L-KERN's field names: ``timestamp``, ``level``,
    ``logger``, ``message``, ``service``, ``request_id``, ``subject``, ``trace_id``, ``span_id``,
    ``exception`` (the traceback as one string); fields without a value are left out.
    """

    def __init__(self, service: str) -> None:
        super().__init__(
            list(JSON_FIELDS),
            rename_fields=JSON_RENAMES,
            static_fields={"service": service},
            timestamp=True,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in log_data.items() if value not in ("-", None)}


# === SETUP ===
def _formatter(log_format: LogFormat, service: str) -> logging.Formatter:
    if log_format == "json":
        return JsonLineFormatter(service)
    return logging.Formatter(TRACED_LOG_FORMAT if tracing_requested() else LOG_FORMAT)


def configure_logging(
    level: str = "INFO", *, log_format: LogFormat = "text", service: str = "lkern"
) -> None:
    """
    Configure the root logger once per process: one stream handler to stderr, in the standard's
    text format (``log_format="text"``) or as JSON lines (``"json"``), the level from
    configuration. Idempotent; uvicorn's own loggers propagate to it.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_lkern", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._lkern = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(_formatter(log_format, service))
    set_log_level(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # Access logging is done by our middleware (with the request id), not by uvicorn.
    logging.getLogger("uvicorn.access").disabled = True


def set_log_level(level: str) -> None:
    """Set the process's log level (root logger) now: at start and from the runtime API."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR; keep one line per problem instead.
    logging.getLogger("aiokafka").setLevel(max(root.level, logging.WARNING))


def current_log_level() -> str:
    """The process's log level, lower case ("info")."""
    return logging.getLevelName(logging.getLogger().level).lower()
