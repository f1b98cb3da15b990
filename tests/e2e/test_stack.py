"""
================================================================
FILE: test_stack.py
PATH: /tests/e2e/test_stack.py
DESCRIPTION: End-to-end: lkern up runs the system; REST, events, docs in a browser; SIGTERM
VERSION: v1.2.0
UPDATED: 2026-12-02 06:20:00
================================================================
"""

# === IMPORTS ===
import shutil
import socket
import subprocess
import tempfile
import time

import httpx
import psutil
import pytest

from tests.e2e.conftest import LKERN, RunningStack, start_stack, stop_stack, wait_until_ready

# === CONSTANTS ===
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# === HELPERS ===
def render_dom(url: str) -> str:
    """The DOM of ``url`` after its scripts ran, in headless Chromium limited to localhost."""
    assert CHROMIUM, "Chromium is needed: apt-get install chromium (.ci/run installs it)"
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                # Nothing but localhost: every other host goes to a dead proxy and resolves nowhere.
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=127.0.0.1;localhost",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    return result.stdout


# === TESTS ===
def test_contact_and_order_through_rest(stack: RunningStack) -> None:
    with stack.client() as client:
        contact = client.post(
            f"{stack.url('contacts')}/api/v1/contacts/",
            json={"name": "E2E Customer", "email": "e2e@example.com"},
        )
        assert contact.status_code == 201, contact.text
        contact_id = contact.json()["id"]

        order = client.post(
            f"{stack.url('orders')}/api/v1/orders/",
            json={
                "contact_id": contact_id,
                "lines": [{"description": "Widget", "quantity": "3", "unit_price": "9.99"}],
            },
        )
        assert order.status_code == 201, order.text
        body = order.json()
        assert body["total"] == "29.97"
        assert body["contact"]["name"] == "E2E Customer"
        assert body["number"].startswith("ORD-")

        # The rename travels as an event (outbox → broker → orders' read model).
        renamed = client.put(
            f"{stack.url('contacts')}/api/v1/contacts/{contact_id}", json={"name": "E2E Renamed"}
        )
        assert renamed.status_code == 200
        deadline = time.monotonic() + 10
        name = None
        while time.monotonic() < deadline:
            shown = client.get(f"{stack.url('orders')}/api/v1/orders/{body['id']}").json()
            name = shown["contact"]["name"]
            if name == "E2E Renamed":
                break
            time.sleep(0.2)
        assert name == "E2E Renamed"


def test_the_api_needs_a_token_and_lkern_token_prints_one(stack: RunningStack) -> None:
    assert "lkern token" in stack.text()  # lkern up says how to get one
    url = f"{stack.url('contacts')}/api/v1/contacts/"
    assert httpx.get(url, timeout=10).status_code == 401
    printed = subprocess.run(
        [str(LKERN), "token", "--data-dir", str(stack.data_dir), "--scope", "contacts:read"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    headers = {"Authorization": f"Bearer {printed}"}
    assert httpx.get(url, headers=headers, timeout=10).status_code == 200
    refused = httpx.post(url, headers=headers, json={"name": "N", "email": "n@example.com"})
    assert refused.status_code == 403


@pytest.mark.parametrize("service", ["contacts", "orders"])
def test_docs_render_in_a_browser_without_internet(stack: RunningStack, service: str) -> None:
    dom = render_dom(f"{stack.url(service)}/docs")
    assert "swagger-ui" in dom
    assert "opblock-summary-path" in dom, dom[:2000]
    assert f"/api/v1/{service}/" in dom
    # The bearer scheme of the OpenAPI document: Swagger UI shows its Authorize button.
    assert "btn authorize" in dom
    assert "Failed to load API definition" not in dom


def test_the_start_up_table_is_whole_in_a_log(stack: RunningStack) -> None:
    """The output goes through a pipe, as into a log file: no address is cut or split."""
    text = stack.text()
    assert f"postgresql://postgres@127.0.0.1:{stack.ports['postgres_port']}" in text
    assert f"127.0.0.1:{stack.ports['kafka_port']}" in text
    for service in ("contacts", "orders"):
        assert f"REST {stack.url(service)}" in text
        assert f"gRPC 127.0.0.1:{stack.ports[f'{service}_grpc_port']}" in text


def test_sigterm_stops_every_process_it_started(stack: RunningStack) -> None:
    processes = stack.descendants()
    names = " ".join(" ".join(p.cmdline()) for p in processes)
    assert "tansu" in names and "postgres" in names and "-m app" in names, names
    stack.process.terminate()
    assert stack.process.wait(60) == 0, stack.text()
    _gone, alive = psutil.wait_procs(processes, timeout=15)
    assert alive == [], [p.cmdline() for p in alive]
    assert stack.descendants() == []
    assert "Stopped: lkms101-contacts, lkms102-orders, Kafka broker, PostgreSQL." in stack.text()


def test_a_taken_port_is_named_and_nothing_is_left_running() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    stack = start_stack(orders_http_port=taken)
    try:
        assert stack.process.wait(60) == 1
        time.sleep(0.5)  # let the output reader finish
        assert f"Port {taken} (lkms102-orders REST)" in stack.text()
        assert "already in use" in stack.text()
        assert stack.descendants() == []
    finally:
        blocker.close()
        stop_stack(stack)


def test_a_second_up_reuses_the_data() -> None:
    first = start_stack()
    try:
        wait_until_ready(first)
        with first.client() as client:
            created = client.post(
                f"{first.url('contacts')}/api/v1/contacts/",
                json={"name": "Kept", "email": "kept@example.com"},
            )
            assert created.status_code == 201
        first.process.terminate()
        assert first.process.wait(60) == 0
        second = start_stack(data_dir=first.data_dir)
        try:
            wait_until_ready(second)
            with second.client() as client:
                found = client.get(
                    f"{second.url('contacts')}/api/v1/contacts/", params={"q": "kept@"}
                )
            assert [c["name"] for c in found.json()] == ["Kept"]
        finally:
            second.process.terminate()
            second.process.wait(60)
    finally:
        stop_stack(first)
