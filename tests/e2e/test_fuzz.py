"""
================================================================
FILE: test_fuzz.py
PATH: /tests/e2e/test_fuzz.py
DESCRIPTION: Schemathesis against both services' OpenAPI documents on the real stack: no server
             errors, responses as documented (status, body schema, content type, headers)
VERSION: v1.0.0
UPDATED: 2026-12-02 03:20:00
================================================================

`lkern up` starts both services with their real PostgreSQL, broker and gRPC; schemathesis's
command line fuzzes each service's `/api/` operations through every phase (schema examples,
coverage of each constraint's edges, random fuzzing, and the stateful phase that follows the
OpenAPI links create → get → update → delete). Fixed seed and bounded example counts keep a
run reproducible and at about a minute per service on the 2-core machine.

A failure prints schemathesis's report, with a curl command for each failing request. The same
run by hand against `make up`:

    .venv/bin/st run http://127.0.0.1:4101/openapi.json --include-path-regex '^/api/' \\
        --checks not_a_server_error,response_schema_conformance,status_code_conformance,\\
    content_type_conformance,response_headers_conformance --seed 1 --max-examples 10
"""

# === IMPORTS ===
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import REPO_ROOT, RunningStack, ready_stack

# === CONSTANTS ===
SCHEMATHESIS = REPO_ROOT / ".venv" / "bin" / "st"
CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")
SEED = 20261202
MAX_EXAMPLES = 10
RUN_TIMEOUT_SECONDS = 300


# === HELPERS ===
def api_headers(stack: RunningStack) -> dict[str, str]:
    """Headers every fuzzed request carries: an all-scopes access token of the stack."""
    return {"Authorization": f"Bearer {stack.token()}"}


def run_schemathesis(
    base_url: str, workdir: Path, headers: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """One bounded schemathesis run against a service's /api/ operations."""
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{base_url}/openapi.json",
        "--include-path-regex",
        "^/api/",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        ",".join(PHASES),
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    for name, value in headers.items():
        args += ["--header", f"{name}: {value}"]
    return subprocess.run(
        args,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


# === FIXTURES ===
@pytest.fixture(scope="module")
def fuzzed_stack() -> Iterator[RunningStack]:
    """
    The stack, with one contact (id 1: the example contact id of the orders document) so that
    orders' create succeeds and the stateful phase reaches get / update / delete.
    """
    with ready_stack() as running:
        with httpx.Client(base_url=running.url("contacts"), headers=api_headers(running)) as client:
            created = client.post(
                "/api/v1/contacts/", json={"name": "Fuzz Target", "email": "fuzz@example.com"}
            )
        assert created.status_code == 201, created.text
        assert created.json()["id"] == 1
        yield running


# === TESTS ===
# Orders first: the contacts run may deactivate or delete contact 1.
@pytest.mark.parametrize("service", ["orders", "contacts"])
def test_schemathesis_finds_no_failure(
    fuzzed_stack: RunningStack, service: str, tmp_path: Path
) -> None:
    result = run_schemathesis(fuzzed_stack.url(service), tmp_path, api_headers(fuzzed_stack))
    report = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    # Zero failures. Warnings are not failures: e.g. "mostly rejected generated data" when
    # most generated values (random If-Match / Idempotency-Key headers, bodies) are refused
    # with a documented 4xx.
    assert re.search(r"No issues found|\b\d+ warnings? in\b", report), report


def test_real_server_bounds_bodies_and_answers_head(fuzzed_stack: RunningStack) -> None:
    """What the in-process tests cannot show: uvicorn's framing of 413, chunked bodies, HEAD."""
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'", "email": "big@example.com"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    with httpx.Client(
        base_url=fuzzed_stack.url("contacts"), headers=api_headers(fuzzed_stack)
    ) as client:
        declared = client.post(
            "/api/v1/contacts/", content=big, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert declared.json()["detail"].startswith("Request body is larger than")
        chunked = client.post(
            "/api/v1/contacts/", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert "X-Request-ID" in chunked.headers
        created = client.post(
            "/api/v1/contacts/", json={"name": "Head", "email": "head@example.com"}
        )
        item = f"/api/v1/contacts/{created.json()['id']}"
        get = client.get(item)
        assert get.status_code == 200
        head = client.head(item)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]
