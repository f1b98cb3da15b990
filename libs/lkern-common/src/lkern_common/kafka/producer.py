"""
================================================================
FILE: producer.py
PATH: /libs/lkern-common/src/lkern_common/kafka/producer.py
DESCRIPTION: Kafka producer factory: every service's producer is configured the same way
VERSION: v1.1.0
UPDATED: 2026-12-02 02:55:00
================================================================

Services do not publish to Kafka directly: they write events to the transactional outbox
(:mod:`lkern_common.outbox`) and its relay publishes them with a producer made here.
"""

# === IMPORTS ===
from typing import Any

from aiokafka import AIOKafkaProducer

from lkern_common.kafka.security import kafka_security_options
from lkern_common.settings import ServiceSettings


# === HELPERS ===
def bootstrap_servers(settings: ServiceSettings) -> list[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` (``host:port[,host:port…]``) as a list."""
    return [server.strip() for server in settings.kafka_bootstrap_servers.split(",") if server]


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
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": client_id or settings.kafka_client_id,
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        **kafka_security_options(settings),
    }
    config.update(options)
    return AIOKafkaProducer(**config)
