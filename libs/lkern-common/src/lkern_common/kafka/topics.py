"""
================================================================
FILE: topics.py
PATH: /libs/lkern-common/src/lkern_common/kafka/topics.py
DESCRIPTION: Create a service's Kafka topics when they are missing (partitions from settings)
VERSION: v1.1.0
UPDATED: 2026-12-02 10:55:00
================================================================
"""

# === IMPORTS ===
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from lkern_common.kafka.security import client_options
from lkern_common.settings import ServiceSettings

# === LOGGING ===
logger = logging.getLogger(__name__)


# === TOPICS ===
async def ensure_topics(
    settings: ServiceSettings,
    topics: Sequence[str],
    *,
    partitions: int | None = None,
    replication_factor: int | None = None,
) -> list[str]:
    """
    Create those of ``topics`` that do not exist yet, with ``partitions`` partitions (default
    ``KAFKA_TOPIC_PARTITIONS``) and ``replication_factor`` replicas (default
    ``KAFKA_TOPIC_REPLICATION_FACTOR``). Existing topics are left as they are. Returns the
    names it created. Raises a ``KafkaError`` when the broker cannot be reached; a topic the
    broker refuses to create (no permission, bad name) is logged, not raised, so that a
    cluster whose topics are managed elsewhere still works.
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return []
    admin = AIOKafkaAdminClient(**client_options(settings, f"{settings.kafka_client_id}-admin"))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(
                    name=topic,
                    num_partitions=partitions or settings.kafka_topic_partitions,
                    replication_factor=(
                        replication_factor or settings.kafka_topic_replication_factor
                    ),
                )
                for topic in missing
            ]
        )
        created: list[str] = []
        for entry in response.topic_errors:
            name, error_code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 else None
            if error_code == 0:
                created.append(name)
            elif error_code != TopicAlreadyExistsError.errno:  # created meanwhile: fine
                logger.warning(
                    "Kafka refused to create topic %s (error %s: %s)", name, error_code, message
                )
        if created:
            logger.info(
                "Created Kafka topics %s (%s partitions)",
                ", ".join(created),
                partitions or settings.kafka_topic_partitions,
            )
        return created
    finally:
        await admin.close()
