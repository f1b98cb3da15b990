"""
================================================================
FILE: test_logging.py
PATH: /libs/lkern-common/tests/test_logging.py
DESCRIPTION: Log formats (text as the standard shows, JSON lines) and when tracing is asked for
VERSION: v1.0.0
UPDATED: 2026-12-02 06:50:00
================================================================
"""

# === IMPORTS ===
import io
import json
import logging
from collections.abc import Iterator

import pytest

from lkern_common.logging_setup import (
    LOG_FORMAT,
    JsonLineFormatter,
    RequestIdFilter,
    configure_logging,
)
from lkern_common.request_context import request_id_var, subject_var
from lkern_common.tracing import tracing_requested


# === HELPERS ===
def _handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(RequestIdFilter())
    return handler, stream


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("lkern.test.logging")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    log.handlers.clear()


# === JSON ===
def test_a_json_line_has_every_field_and_the_traceback(logger: logging.Logger) -> None:
    handler, stream = _handler(JsonLineFormatter("lkms999-test"))
    logger.addHandler(handler)
    request_token, subject_token = request_id_var.set("req-1"), subject_var.set("alice")
    try:
        try:
            raise ValueError("broken")
        except ValueError:
            logger.exception("it failed: %s", "badly")
    finally:
        subject_var.reset(subject_token)
        request_id_var.reset(request_token)
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "it failed: badly"
    assert record["level"] == "ERROR"
    assert record["logger"] == "lkern.test.logging"
    assert record["service"] == "lkms999-test"
    assert record["request_id"] == "req-1"
    assert record["subject"] == "alice"
    assert record["timestamp"].endswith("+00:00")
    assert "Traceback" in record["exception"] and "ValueError: broken" in record["exception"]
    # No trace and no caller: those fields are left out rather than "-".
    assert "trace_id" not in record and "span_id" not in record


def test_a_json_line_without_a_request_leaves_the_ids_out(logger: logging.Logger) -> None:
    handler, stream = _handler(JsonLineFormatter("svc"))
    logger.addHandler(handler)
    logger.info("plain")
    record = json.loads(stream.getvalue())
    assert set(record) == {"timestamp", "level", "logger", "message", "service"}


# === TEXT ===
def test_the_default_text_format_is_unchanged_without_tracing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    configure_logging("INFO")
    root_handler = next(h for h in logging.getLogger().handlers if getattr(h, "_lkern", False))
    assert root_handler.formatter is not None
    assert root_handler.formatter._fmt == LOG_FORMAT


# === TRACING SWITCH ===
@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ],
)
def test_tracing_is_on_only_with_an_otlp_endpoint(
    environment: dict[str, str], expected: bool
) -> None:
    assert tracing_requested(environment) is expected
