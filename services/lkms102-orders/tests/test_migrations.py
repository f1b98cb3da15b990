"""
================================================================
FILE: test_migrations.py
PATH: /services/lkms102-orders/tests/test_migrations.py
DESCRIPTION: Migration tests: upgrade, downgrade, upgrade again; models and migrations agree
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from collections.abc import Iterator

import pytest
from alembic import command

from lkern_common.migrations import alembic_config
from lkern_devstack.testing import TestDatabase
from tests.conftest import SERVICE_DIR

# === CONSTANTS ===
TABLES = {"orders", "order_lines", "contacts_read_model", "inbox_events", "outbox_events"}


# === FIXTURES ===
@pytest.fixture
def empty_database() -> Iterator[TestDatabase]:
    database = TestDatabase(SERVICE_DIR, "orders_mig")
    database.create(migrate=False)
    yield database
    database.drop()


# === TESTS ===
def test_upgrade_downgrade_upgrade(empty_database: TestDatabase) -> None:
    config = alembic_config(SERVICE_DIR, empty_database.url)
    command.upgrade(config, "head")
    tables, sequences = empty_database.public_schema()
    assert tables >= TABLES
    assert "order_number_seq" in sequences
    command.downgrade(config, "base")
    assert empty_database.public_schema() == ({"alembic_version"}, set())
    command.upgrade(config, "head")
    tables, sequences = empty_database.public_schema()
    assert tables >= TABLES
    assert "order_number_seq" in sequences
    # The models and the migrations agree (raises when autogenerate finds a difference).
    command.check(config)
