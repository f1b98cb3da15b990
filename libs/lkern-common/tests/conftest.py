"""
================================================================
FILE: conftest.py
PATH: /libs/lkern-common/tests/conftest.py
DESCRIPTION: Fixtures shared by the library's tests: one local Kafka-protocol broker per session
VERSION: v1.0.0
UPDATED: 2026-11-26 14:00:00
================================================================
"""

# === IMPORTS ===
from collections.abc import Iterator

import pytest

from lkern_devstack.broker import LocalBroker, free_port


# === BROKER ===
@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """
    A Tansu broker on a free port for the whole test session (memory storage: tests use
    unique topic and group names, never a restart). Its log is in the session's temp folder.
    """
    log_file = tmp_path_factory.mktemp("kafka") / "tansu.log"
    with LocalBroker(port=free_port(), log_file=log_file) as broker:
        yield broker
