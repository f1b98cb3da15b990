"""
================================================================
FILE: producer.py
PATH: /libs/lkern-common/src/lkern_common/kafka/producer.py
DESCRIPTION: Kafka producer factory: every service's producer is configured the same way
VERSION: v1.2.0
UPDATED: 2026-12-02 10:55:00
================================================================

Services do not publish to Kafka directly: they write events to the transactional outbox
(:mod:`lkern_common.outbox`) and its relay publishes them with a producer made here.
"""

# === IMPORTS ===
from typing import Any

from aiokafka import AIOKafkaProducer

from lkern_common.kafka.security import client_options
from lkern_common.settings import ServiceSettings


# === FACTORY ===
def create_producer(
    settings: ServiceSettings, *, client_id: str | None = None, **options: Any
) -> AIOKafkaProducer:
    """
    A producer (not started) that waits for every in-sync replica (``acks="all"``), with
    idempotence from ``KAFKA_ENABLE_IDEMPOTENCE`` (on for Apache Kafka; the local broker does
    not support it), the client id from ``KAFKA_CLIENT_ID`` (default: the service name) and the
    request timeout from ``KAFKA_REQUEST_TIMEOUT_MS``, security from ``KAFKA_SECURITY_PROTOCOL``,
    ``KAFKA_SASL_*`` and ``KAFKA_SSL_*`` (:mod:`lkern_common.kafka.security`). aiokafka keeps
    one request in flight per partition, so messages of one key are written in the order they
    were sent, also on retries.
    ``options`` are passed to :class:`aiokafka.AIOKafkaProducer` as they are.
    """
    config: dict[str, Any] = {
        **client_options(settings, client_id),
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
    }
    config.update(options)
    return AIOKafkaProducer(**config)
