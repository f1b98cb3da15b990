"""
================================================================
FILE: security.py
PATH: /libs/lkern-common/src/lkern_common/kafka/security.py
DESCRIPTION: How every Kafka client of a service authenticates: protocol, SASL (SCRAM), TLS
VERSION: v1.0.0
UPDATED: 2026-12-02 02:50:00
================================================================

One place that turns the KAFKA_SECURITY_PROTOCOL / KAFKA_SASL_* / KAFKA_SSL_* settings into
aiokafka arguments; the producer, the consumer and the topic admin all use it. The local broker
speaks PLAINTEXT on 127.0.0.1; production uses SASL_SSL with SCRAM-SHA-512 and a user per
service, whose ACLs let it write only its own topics (docs/deploy.md).
"""

# === IMPORTS ===
from typing import Any

from aiokafka.helpers import create_ssl_context

from lkern_common.settings import ServiceSettings


# === OPTIONS ===
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
