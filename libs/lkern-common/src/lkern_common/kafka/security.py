"""
================================================================
FILE: security.py
PATH: /libs/lkern-common/src/lkern_common/kafka/security.py
DESCRIPTION: How every Kafka client of a service authenticates: protocol, SASL (SCRAM), TLS
VERSION: v1.1.0
UPDATED: 2026-12-02 10:55:00
================================================================

One place that turns the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_* settings into
aiokafka arguments (``client_options`` adds the brokers, client id and timeout every client
shares); the producer, the consumer, the topic admin and `lkern dlq` all use it. The local broker
speaks PLAINTEXT on 127.0.0.1; production uses SASL_SSL with SCRAM-SHA-512 and a user per
service, whose ACLs let it write only its own topics (docs/deploy.md).
"""

# === IMPORTS ===
from typing import Any

from aiokafka.helpers import create_ssl_context

from lkern_common.settings import ServiceSettings


# === OPTIONS ===
def bootstrap_servers(settings: ServiceSettings) -> list[str]:
    """``KAFKA_BOOTSTRAP_SERVERS`` (``host:port[,host:port…]``) as a list."""
    return [server.strip() for server in settings.kafka_bootstrap_servers.split(",") if server]


def client_options(settings: ServiceSettings, client_id: str | None = None) -> dict[str, Any]:
    """
    The arguments every aiokafka client of a service shares: the brokers, its client id
    (default ``KAFKA_CLIENT_ID``), the request timeout and the security options below.
    """
    return {
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": client_id or settings.kafka_client_id,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        **kafka_security_options(settings),
    }


def kafka_security_options(settings: ServiceSettings) -> dict[str, Any]:
    """aiokafka client arguments for the configured protocol, SASL credentials and TLS files."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_ca_file,
            certfile=settings.kafka_ssl_cert_file,
            keyfile=settings.kafka_ssl_key_file,
        )
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options
