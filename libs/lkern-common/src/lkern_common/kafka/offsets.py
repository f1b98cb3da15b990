"""
================================================================
FILE: offsets.py
PATH: /libs/lkern-common/src/lkern_common/kafka/offsets.py
DESCRIPTION: Has a consumer group committed offsets on its topics (is its history on this broker)
VERSION: v1.1.0
UPDATED: 2026-12-02 10:55:00
================================================================

A consumer group without a committed offset on any partition of its topics has never read on
this broker: the broker is new (the local stack's memory-only broker on every `lkern up`, a new
cluster) or the group is. The events it missed are not on this broker any more, so a service
rebuilds its read models from their sources (e.g. orders' contacts read model from contacts'
ListContacts) instead of trusting the topics to hold the history.
"""

# === IMPORTS ===
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from lkern_common.kafka.security import client_options
from lkern_common.settings import ServiceSettings

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
# What a broker answers for a partition the group has committed nothing on.
NO_OFFSET = -1


# === OFFSETS ===
async def _partitions(settings: ServiceSettings, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of those of ``topics`` the broker has (a missing topic has none)."""
    reader = AIOKafkaConsumer(**client_options(settings, f"{settings.kafka_client_id}-offsets"))
    try:
        await reader.start()
        existing = await reader.topics()
        return [
            TopicPartition(topic, partition)
            for topic in topics
            if topic in existing
            for partition in sorted(reader.partitions_for_topic(topic) or ())
        ]
    finally:
        await reader.stop()


async def has_committed_offsets(
    settings: ServiceSettings, group_id: str, topics: Sequence[str]
) -> bool:
    """
    True when ``group_id`` has a committed offset on at least one partition of ``topics``.
    Raises a ``KafkaError`` when the broker cannot be asked (the caller decides what then).
    """
    partitions = await _partitions(settings, topics)
    if not partitions:
        return False
    admin = AIOKafkaAdminClient(**client_options(settings, f"{settings.kafka_client_id}-admin"))
    try:
        await admin.start()
        # Partitions named: the broker then needs no "every topic" request (Tansu refuses it).
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    finally:
        await admin.close()
    return any(meta.offset > NO_OFFSET for meta in committed.values())
