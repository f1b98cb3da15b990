"""
================================================================
FILE: test_log_level.py
PATH: /services/lkms101-contacts/tests/test_log_level.py
DESCRIPTION: GET/PUT /config/log-level: admin scope, 422 on a bad level, applied at once,
             picked up from the database (other workers), kept across a restart
VERSION: v1.0.0
UPDATED: 2026-12-02 06:40:00
================================================================

The app runs in this process on a real PostgreSQL. "Another worker" is the database row
changed behind the app's back (what a PUT answered by another worker does); "a restart" is a
new app on the same database in a process whose level was reset. Every worker of a real
HTTP_WORKERS=2 service is covered end to end by tests/e2e/test_observability.py.
"""

# === IMPORTS ===
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from app.config import Settings
from app.database import Database
from app.main import create_app
from lkern_common.auth import CONTACTS_READ, CONTACTS_WRITE
from lkern_common.logging_setup import current_log_level, set_log_level
from lkern_common.runtime_config import store_log_level
from lkern_devstack.testing import TestTokens, eventually

# === CONSTANTS ===
URL = "/config/log-level"


# === FIXTURES ===
@pytest.fixture(autouse=True)
async def reset_log_level(db: Database) -> AsyncIterator[None]:
    """Each test starts and ends at INFO with no stored level."""
    set_log_level("info")
    yield
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM runtime_settings"))
    set_log_level("info")


# === AUTHORISATION ===
async def test_log_level_needs_a_token_and_the_admin_scope(
    anonymous_client: httpx.AsyncClient, tokens: TestTokens
) -> None:
    for method in ("GET", "PUT"):
        body = {"level": "debug"} if method == "PUT" else None
        anonymous = await anonymous_client.request(method, URL, json=body)
        assert anonymous.status_code == 401, anonymous.text
        not_admin = await anonymous_client.request(
            method, URL, json=body, headers=tokens.bearer(CONTACTS_READ, CONTACTS_WRITE)
        )
        assert not_admin.status_code == 403, not_admin.text
        assert 'scope="lkern:admin"' in not_admin.headers["www-authenticate"]
    assert current_log_level() == "info"


# === VALIDATION ===
@pytest.mark.parametrize("body", [{"level": "loud"}, {"level": 10}, {}, {"level": "debug", "x": 1}])
async def test_a_bad_level_is_422_and_names_the_valid_levels(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.put(URL, json=body)
    assert response.status_code == 422, response.text
    if body.get("level") == "loud":
        assert all(level in response.text for level in ("debug", "info", "warning", "error"))
    assert current_log_level() == "info"


# === CHANGING IT ===
async def test_put_applies_the_level_at_once_and_get_shows_it(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    before = await client.get(URL)
    assert before.status_code == 200, before.text
    assert before.json()["level"] == "info"
    assert before.json()["stored"] is None
    assert before.json()["levels"] == ["debug", "info", "warning", "error", "critical"]

    changed = await client.put(URL, json={"level": "DEBUG"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["level"] == changed.json()["stored"] == "debug"
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    with caplog.at_level(logging.NOTSET):
        logging.getLogger("app.example").debug("now visible")
    assert "now visible" in caplog.text


async def test_a_level_stored_by_another_worker_is_applied(
    settings: Settings, db: Database
) -> None:
    assert settings.log_level_poll_seconds <= 5
    await store_log_level(db, "warning", "another-worker")
    await eventually(lambda: current_log_level() == "warning", "the stored level is applied")


async def test_the_level_is_kept_across_a_restart(settings: Settings, tokens: TestTokens) -> None:
    # A restart as in production: the first process has stopped before the next one starts.
    async with running_app(settings, tokens) as first:
        assert (await first.put(URL, json={"level": "error"})).status_code == 200
    set_log_level("info")  # a new process starts at LOG_LEVEL
    async with running_app(settings, tokens) as restarted:
        # Applied during start-up, before the first request (no poll interval waited).
        assert current_log_level() == "error"
        shown = (await restarted.get(URL)).json()
    assert shown["level"] == shown["stored"] == "error"


@asynccontextmanager
async def running_app(settings: Settings, tokens: TestTokens) -> AsyncIterator[httpx.AsyncClient]:
    """A contacts app of its own, started and stopped around the block, and its client."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=tokens.bearer()
        ) as client:
            yield client
