"""
================================================================
FILE: test_migrations.py
PATH: /services/lkms101-contacts/tests/test_migrations.py
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


# === FIXTURES ===
@pytest.fixture
def empty_database() -> Iterator[TestDatabase]:
    database = TestDatabase(SERVICE_DIR, "contacts_mig")
    database.create(migrate=False)
    yield database
    database.drop()


# === TESTS ===
def test_upgrade_downgrade_upgrade(empty_database: TestDatabase) -> None:
    config = alembic_config(SERVICE_DIR, empty_database.url)
    command.upgrade(config, "head")
    assert "contacts" in empty_database.public_schema()[0]
    command.downgrade(config, "base")
    assert empty_database.public_schema()[0] == {"alembic_version"}
    command.upgrade(config, "head")
    assert "contacts" in empty_database.public_schema()[0]
    # The models and the migrations agree (raises when autogenerate finds a difference).
    command.check(config)
