"""
================================================================
FILE: test_kafka_security.py
PATH: /libs/lkern-common/tests/test_kafka_security.py
DESCRIPTION: Kafka security settings into client arguments (protocol, SASL SCRAM, TLS files)
VERSION: v1.0.0
UPDATED: 2026-12-02 03:00:00
================================================================

Pure logic: what the producer, consumer and topic admin receive for each protocol. The TLS
files are a real CA made by the dev PKI, so the SSL context really loads them.
"""

# === IMPORTS ===
import ssl

import pytest
from pydantic import ValidationError

from lkern_common.kafka.producer import create_producer
from lkern_common.kafka.security import kafka_security_options
from lkern_common.settings import ServiceSettings
from lkern_devstack.dev_pki import DevPki


# === TESTS ===
def test_plaintext_is_the_local_default() -> None:
    assert kafka_security_options(ServiceSettings()) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_with_scram_and_a_ca_file(dev_pki: DevPki) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="lkms101-contacts",
        kafka_sasl_password="s3cret",
        kafka_ssl_ca_file=dev_pki.ca_file,
    )
    options = kafka_security_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "lkms101-contacts",
        "s3cret",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert "s3cret" not in repr(settings)  # a SecretStr: never in logs


async def test_the_producer_factory_uses_them() -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="lkms102-orders",
        kafka_sasl_password="s3cret",
    )
    producer = create_producer(settings)
    assert producer.client._security_protocol == "SASL_PLAINTEXT"
    assert producer.client._sasl_mechanism == "SCRAM-SHA-512"


def test_ssl_client_certificate(dev_pki: DevPki) -> None:
    files = dev_pki.tls_files("lkms102-orders")
    settings = ServiceSettings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=files.ca,
        kafka_ssl_cert_file=files.cert,
        kafka_ssl_key_file=files.key,
    )
    options = kafka_security_options(settings)
    assert set(options) == {"security_protocol", "ssl_context"}


def test_sasl_needs_credentials() -> None:
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        ServiceSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="x")
