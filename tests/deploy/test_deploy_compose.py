"""
================================================================
FILE: test_deploy_compose.py
PATH: /tests/deploy/test_deploy_compose.py
DESCRIPTION: deploy/docker-compose.yml: services, ports, order, health checks, wiring, settings
VERSION: v1.3.0
UPDATED: 2026-12-02 07:00:00
================================================================
"""

# === IMPORTS ===
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import gen_env_example
import pytest
import yaml
from conftest import ENTRIES, SERVICES
from deploy_support import COMPOSE_FILE, REPO_ROOT, service_environment, settings_from_env

# === CONSTANTS ===
DEBIAN_INSTALL = "apt-get update && apt-get install -y docker-compose"


# === EXPECTED ===
def required_environment(service: str) -> dict[str, str]:
    """What the compose file must set for a service (the standard's host names, production)."""
    entry = ENTRIES[service]
    required = {
        "ENVIRONMENT": "production",
        "HTTP_PORT": str(entry.http_port),
        "GRPC_PORT": str(entry.grpc_port),
        "DATABASE_URL": f"postgresql://postgres:postgres@lkms501-postgres:5432/{entry.database}",
        "KAFKA_BOOTSTRAP_SERVERS": "lkms503-kafka:9093",
        "KAFKA_ENABLE_IDEMPOTENCE": "true",
        "CORS_ORIGINS": "http://localhost:4201",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": service,
        "GRPC_TLS_CA": "/run/lkern/pki/ca.crt",
        "GRPC_TLS_CERT": f"/run/lkern/pki/{service}.crt",
        "GRPC_TLS_KEY": f"/run/lkern/pki/{service}.key",
        "EVENT_SIGNING_KEY_FILE": f"/run/lkern/pki/events/{service}.jwk.json",
    }
    for called in entry.calls:
        target = ENTRIES[called]
        required[target.grpc_target_variable] = f"{called}:{target.grpc_port}"
    return required


def test_the_registry_still_gives_the_known_services_their_contracts() -> None:
    """The two first services' values, written out: the registry must not move them."""
    assert required_environment("lkms101-contacts")["DATABASE_URL"].endswith("/lkms101_contacts")
    assert required_environment("lkms102-orders")["CONTACTS_GRPC_TARGET"] == (
        "lkms101-contacts:5101"
    )
    assert (SERVICES["lkms102-orders"]["http"], SERVICES["lkms102-orders"]["grpc"]) == (
        4102,
        5102,
    )


# Settings the compose file deliberately leaves at their defaults, and why. A new setting must
# be either set in the compose file or added here: the test below fails until one is done.
LEFT_AT_DEFAULT: dict[str, str] = {
    # identity and logging
    "SERVICE_NAME": "each service's default is its own name",
    "SERVICE_VERSION": "the code's version",
    "LOG_REQUESTS": "one access line per request is wanted in containers too",
    "LOG_REQUESTS_SAMPLE": "0.1 of the fast successful requests; failed and slow ones always",
    "LOG_SLOW_REQUEST_MS": "500 ms: a slower request always gets its access line",
    "LOG_FORMAT": "text, as the standard shows (json for a log collector: docs/observability.md)",
    "LOG_LEVEL_POLL_SECONDS": "a level set with PUT /config/log-level reaches every replica in 2 s",
    # HTTP / gRPC
    "HTTP_HOST": "0.0.0.0: every interface of the container",
    "CORS_ALLOW_CREDENTIALS": "true, with explicit origins (never *)",
    "GRPC_HOST": "0.0.0.0: every interface of the container",
    "GRPC_GRACE_SECONDS": "5 s fits in the 30 s stop_grace_period",
    "HTTP_MAX_BODY_BYTES": "1 MiB: far above any valid request (500 order lines fit)",
    "GRPC_MAX_MESSAGE_BYTES": "4 MiB, gRPC's own default receive limit",
    # authentication
    "AUTH_JWKS_FILE": "unused: AUTH_JWKS_URL is set",
    "AUTH_LEEWAY_SECONDS": "30 s of clock skew",
    "AUTH_JWKS_MIN_REFRESH_SECONDS": "an unknown key id re-reads the JWKS at most every 5 s",
    "AUTH_JWKS_MAX_AGE_SECONDS": "keys re-read every 5 min (a withdrawn key stops working)",
    "AUTH_JWKS_TIMEOUT_SECONDS": "5 s",
    "AUTH_TOKEN_CACHE_SIZE": "10,000 verified tokens per replica",
    # database pool
    "DB_POOL_SIZE": "10 per worker, no overflow; with DB_DRIVER_POOL_SIZE 20 per one-worker "
    "replica: both services fit PostgreSQL's default 100 connections",
    "DB_DRIVER_POOL_SIZE": "see DB_POOL_SIZE",
    "DB_MAX_OVERFLOW": "see DB_POOL_SIZE",
    "DB_POOL_PRE_PING": "off: broken connections are invalidated and recycled",
    "DB_POOL_RECYCLE_SECONDS": "30 min",
    "DB_ECHO": "never in production",
    # Kafka
    "KAFKA_CLIENT_ID": "defaults to the service name",
    "KAFKA_TOPIC_PARTITIONS": "3, the same as the broker's num.partitions",
    "KAFKA_TOPIC_REPLICATION_FACTOR": "1: the compose stack has one broker (a cluster sets 3)",
    "KAFKA_REQUEST_TIMEOUT_MS": "30 s, Kafka's usual",
    "KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "10 s: a dead replica's partitions move quickly",
    "KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS": "a third of the session timeout",
    "KAFKA_CONSUMER_MAX_ATTEMPTS": "5 attempts, then the dead-letter topic",
    "KAFKA_CONSUMER_STALL_SECONDS": "60 s without progress while lagging fails /ready",
    "KAFKA_DEAD_LETTER_MAX_BYTES": "under the broker's 1 MiB default; larger copies are cut",
    "KAFKA_CONSUMER_RETRY_BACKOFF_MS": "0.2 s doubling",
    "KAFKA_CONSUMER_RETRY_BACKOFF_MAX_MS": "up to 5 s",
    "KAFKA_INBOX_RETENTION_DAYS": "30 days of processed event ids",
    "KAFKA_SSL_CA_FILE": "SASL_PLAINTEXT on the compose network (a cluster uses SASL_SSL)",
    "KAFKA_SSL_CERT_FILE": "SASL authenticates the client, not a certificate",
    "KAFKA_SSL_KEY_FILE": "see KAFKA_SSL_CERT_FILE",
    # transactional outbox relay
    "OUTBOX_RELAY_ENABLED": "every replica runs a relay; one leads (advisory lock)",
    "OUTBOX_POLL_INTERVAL_SECONDS": "fallback poll; LISTEN/NOTIFY wakes the relay",
    "OUTBOX_BATCH_SIZE": "500 rows per round trip",
    "OUTBOX_BROKER_CHECK_INTERVAL_SECONDS": "an idle relay verifies the broker every 10 s",
    "OUTBOX_BROKER_STALE_SECONDS": "/ready degraded after 30 s unverified with events waiting",
    "OUTBOX_RETENTION_SECONDS": "sent rows kept 7 days",
    "OUTBOX_CLEANUP_INTERVAL_SECONDS": "every 5 min",
    "OUTBOX_STANDBY_RETRY_SECONDS": "2 s",
    "OUTBOX_RETRY_BACKOFF_SECONDS": "0.5 s doubling",
    "OUTBOX_RETRY_BACKOFF_MAX_SECONDS": "up to 30 s",
    "OUTBOX_BACKLOG_WARN_SECONDS": "warn when an event waits over 1 min",
    "OUTBOX_BACKLOG_LOG_INTERVAL_SECONDS": "repeat the warning every minute",
    "OUTBOX_STOP_GRACE_SECONDS": "5 s fits in the 30 s stop_grace_period",
    # conditional requests and idempotency keys (docs/errors.md)
    "REQUIRE_IF_MATCH": "off: the standard's clients change without If-Match (set true when "
    "every client sends it)",
    "IDEMPOTENCY_KEY_TTL_SECONDS": "24 h of replayable answers",
    "IDEMPOTENCY_CLEANUP_INTERVAL_SECONDS": "expired keys deleted every hour",
    # orders: contacts gRPC client and contact events consumer
    "CONTACTS_GRPC_TIMEOUT_SECONDS": "2 s deadline per call, retries included",
    "CONTACTS_GRPC_MAX_ATTEMPTS": "3 attempts on UNAVAILABLE",
    "CONTACTS_GRPC_BREAKER_FAILURE_THRESHOLD": "5 failed calls in a row open the breaker",
    "CONTACTS_GRPC_BREAKER_OPEN_SECONDS": "open 5 s, then one half-open probe",
    "CONTACTS_GRPC_INITIAL_BACKOFF_SECONDS": "0.1 s",
    "CONTACTS_GRPC_MAX_BACKOFF_SECONDS": "1 s",
    "CONTACTS_GRPC_BACKOFF_MULTIPLIER": "2",
    "KAFKA_CONSUMER_ENABLED": "the read model of contacts is wanted",
    "KAFKA_CONSUMER_GROUP_ID": "the standard's lkms102-orders-group",
    "KAFKA_DLQ_TOPIC": "lkern.orders.dlq",
}
INFRASTRUCTURE = {"lkms501-postgres", "lkms503-kafka", "lkms503-kafka-setup"}
# Optional services, each in its profile (docs/observability.md): not started by a plain `up`.
OPTIONAL = {"lkms504-jaeger": "tracing", "prometheus": "metrics"}
# Variables read by a library, not by the service's settings: OpenTelemetry's own.
LIBRARY_VARIABLE_PREFIXES = ("OTEL_",)
PROMETHEUS_DIR = COMPOSE_FILE.parent / "prometheus"


# === HELPERS ===
def depends_on(compose: dict[str, Any], name: str) -> dict[str, str]:
    """A service's depends_on as {service: condition}."""
    value = compose["services"][name].get("depends_on", {})
    assert isinstance(value, dict), f"{name}: use the long depends_on form with conditions"
    return {key: item["condition"] for key, item in value.items()}


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


# === TESTS: SHAPE ===
def test_compose_has_the_infrastructure_migrations_and_services(compose: dict[str, Any]) -> None:
    expected = INFRASTRUCTURE | set(SERVICES) | {f"{name}-migrate" for name in SERVICES}
    assert set(compose["services"]) == expected | set(OPTIONAL)


def test_optional_services_run_only_in_their_profile(compose: dict[str, Any]) -> None:
    for name, profile in OPTIONAL.items():
        assert compose["services"][name].get("profiles") == [profile], name
    for name in set(compose["services"]) - set(OPTIONAL):
        assert "profiles" not in compose["services"][name], f"{name} must always start"


def test_tracing_is_off_unless_an_otlp_endpoint_is_given(compose: dict[str, Any]) -> None:
    for service in SERVICES:
        environment = service_environment(compose, service)
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
        assert environment["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    jaeger = compose["services"]["lkms504-jaeger"]
    assert {"4317", "4318"} <= {str(port) for port in jaeger["expose"]}
    assert jaeger["ports"] == ["127.0.0.1:16686:16686"]


def test_every_image_has_a_version_tag(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        image, _, tag = str(spec["image"]).rpartition(":")
        assert image and tag and tag != "latest", f"{name}: pin {spec['image']} to a version"


def test_postgres_15_with_a_volume_a_health_check_and_every_database(
    compose: dict[str, Any],
) -> None:
    postgres = compose["services"]["lkms501-postgres"]
    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    # Over TCP: during initdb the temporary server listens on the Unix socket only.
    assert "127.0.0.1" in postgres["healthcheck"]["test"]
    volumes = postgres["volumes"]
    data_volume = next(v.split(":")[0] for v in volumes if ":/var/lib/postgresql/data" in v)
    assert data_volume in compose["volumes"], "the data is on a named volume"
    init = next(v for v in volumes if "/docker-entrypoint-initdb.d/" in v)
    script = (COMPOSE_FILE.parent / init.split(":")[0]).resolve()
    created = set(re.findall(r"^CREATE DATABASE (\w+);", script.read_text(), re.MULTILINE))
    assert created == {spec["database"] for spec in SERVICES.values()}


def test_kafka_kraft_single_node_reachable_at_the_standard_address(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["lkms503-kafka"]
    env = {key: str(value) for key, value in kafka["environment"].items()}
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CLUSTER_ID" in env, "a fixed cluster id keeps the data volume valid"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    advertised: dict[str, str] = {}
    for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        name, address = listener.split("://", 1)
        advertised[address] = name
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    # Containers and the host authenticate (SASL/SCRAM); the PLAINTEXT listeners are loopback.
    assert protocols[advertised["lkms503-kafka:9093"]] == "SASL_PLAINTEXT"
    assert protocols[advertised["localhost:9092"]] == "SASL_PLAINTEXT"
    for listener in env["KAFKA_LISTENERS"].split(","):
        name, address = listener.split("://", 1)
        if protocols[name] == "PLAINTEXT":
            assert address.startswith("127.0.0.1:"), f"{name} must listen on loopback only"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert any(":/var/lib/kafka/data" in volume for volume in kafka["volumes"])
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "127.0.0.1:9095" in " ".join(kafka["healthcheck"]["test"])


def test_kafka_acls_let_each_service_write_only_its_own_topics(compose: dict[str, Any]) -> None:
    setup = compose["services"]["lkms503-kafka-setup"]
    assert setup["network_mode"] == "service:lkms503-kafka"
    script_mount = next(v for v in setup["volumes"] if "setup-acls.sh" in v)
    script = (COMPOSE_FILE.parent / script_mount.split(":")[0]).resolve().read_text()
    writes = re.findall(
        r"--allow-principal User:(\S+) --operation Write .*?--topic (\S+) "
        r"--resource-pattern-type prefixed",
        script.replace("\\\n", " "),
    )
    assert sorted(writes) == sorted((name, entry.topic_prefix) for name, entry in ENTRIES.items())
    assert ("lkms101-contacts", "lkern.contacts.") in writes
    for service in SERVICES:
        assert depends_on(compose, service)["lkms503-kafka-setup"] == (
            "service_completed_successfully"
        )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_ports_health_check_and_start_order(service: str, compose: dict[str, Any]) -> None:
    spec = compose["services"][service]
    ports = SERVICES[service]
    # Published on this host's loopback only, never on every interface.
    assert spec["ports"] == [
        f"127.0.0.1:{ports['http']}:{ports['http']}",
        f"127.0.0.1:{ports['grpc']}:{ports['grpc']}",
    ]
    assert spec["healthcheck"]["test"] == ["CMD", "python", "/opt/lkern/healthcheck.py"]
    assert spec["restart"] == "unless-stopped"
    conditions = depends_on(compose, service)
    assert conditions["lkms501-postgres"] == "service_healthy"
    assert conditions["lkms503-kafka"] == "service_healthy"
    assert conditions[f"{service}-migrate"] == "service_completed_successfully"
    for called in ENTRIES[service].calls:
        assert conditions[called] == "service_healthy"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_migration_step_runs_alembic_with_the_services_image_and_database(
    service: str, compose: dict[str, Any]
) -> None:
    migrate = compose["services"][f"{service}-migrate"]
    spec = compose["services"][service]
    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert migrate["image"] == spec["image"] and migrate["build"] == spec["build"]
    assert migrate["build"]["dockerfile"] == "deploy/Dockerfile"
    assert migrate["build"]["args"]["SERVICE"] == service
    assert (COMPOSE_FILE.parent / migrate["build"]["context"]).resolve() == REPO_ROOT
    assert migrate.get("restart", "no") == "no"
    assert depends_on(compose, f"{service}-migrate") == {"lkms501-postgres": "service_healthy"}
    migrate_env = service_environment(compose, f"{service}-migrate")
    assert migrate_env["DATABASE_URL"] == service_environment(compose, service)["DATABASE_URL"]


# === TESTS: CONFIGURATION ===
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_sets_the_standard_host_names(service: str, compose: dict[str, Any]) -> None:
    environment = service_environment(compose, service)
    for key, value in required_environment(service).items():
        assert environment.get(key) == value, f"{service}: {key}"
    assert database_name(environment["DATABASE_URL"]) == SERVICES[service]["database"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_setting_is_set_in_compose_or_deliberately_left_at_its_default(
    service: str,
    compose: dict[str, Any],
    service_configs: dict[str, gen_env_example.ServiceConfig],
) -> None:
    reads = set(service_configs[service].envs())
    sets = {
        name
        for name in service_environment(compose, service)
        if not name.startswith(LIBRARY_VARIABLE_PREFIXES)
    }
    assert not sets - reads, f"compose sets variables {service} does not read (typo?)"
    undecided = reads - sets - set(LEFT_AT_DEFAULT)
    assert not undecided, (
        f"{service} reads {sorted(undecided)}: set them in deploy/docker-compose.yml or add "
        "them to LEFT_AT_DEFAULT in tests/deploy/test_deploy_compose.py with the reason"
    )
    both = sets & set(LEFT_AT_DEFAULT)
    assert not both, f"{sorted(both)} are set in compose: remove them from LEFT_AT_DEFAULT"


def test_every_setting_left_at_default_is_still_read(
    service_configs: dict[str, gen_env_example.ServiceConfig],
) -> None:
    read = {env for config in service_configs.values() for env in config.envs()}
    assert not set(LEFT_AT_DEFAULT) - read, "LEFT_AT_DEFAULT names settings no service reads"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_compose_environment_is_valid_for_the_service_settings(
    service: str, compose: dict[str, Any]
) -> None:
    settings = settings_from_env(service, service_environment(compose, service))
    assert settings["environment"] == "production"
    assert settings["http_port"] == SERVICES[service]["http"]
    assert settings["grpc_port"] == SERVICES[service]["grpc"]
    assert settings["database_url"].startswith("postgresql+asyncpg://postgres:postgres@")
    assert settings["kafka_enable_idempotence"] is True
    assert settings["cors_origins"] == ["http://localhost:4201"]
    # Tokens of the identity provider's issuer, keys from its JWKS URL (never a local file).
    assert settings["auth_jwks_url"].startswith("https://")
    assert settings["auth_issuer"].startswith("https://")
    assert settings["auth_audience"] == "lkern-api"


def test_the_only_compose_variables_have_local_defaults() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    variables = set(re.findall(r"\$\{([A-Z0-9_]+)(?::-[^}]*)?\}", text))
    # AUTH_ISSUER / AUTH_JWKS_URL: the identity provider; their placeholders verify no token.
    passwords = {f"{entry.env_prefix}_KAFKA_PASSWORD" for entry in ENTRIES.values()}
    assert {"LKMS101_KAFKA_PASSWORD", "LKMS102_KAFKA_PASSWORD"} <= passwords
    assert variables == {
        "POSTGRES_PASSWORD",
        *passwords,
        "LKERN_PKI_DIR",
        "LKERN_IMAGE_TAG",
        "AUTH_ISSUER",
        "AUTH_JWKS_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    }
    for secret in ("POSTGRES_PASSWORD", *passwords):
        assert f"${{{secret}}}" not in text, f"every use of {secret} has its local default"


def test_every_published_port_is_bound_to_loopback(compose: dict[str, Any]) -> None:
    for name, spec in compose["services"].items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


# === TESTS: DOCKER COMPOSE ITSELF ===
def test_docker_compose_accepts_the_file() -> None:
    """`docker-compose config` validates the file against the compose schema (no engine needed)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(f"docker-compose is not installed; install it with: {DEBIAN_INSTALL}")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "--services"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "lkms101-contacts" in services and "lkms503-kafka" in services


# === TESTS: METRICS (profile "metrics") ===
def lkern_metric_names() -> set[str]:
    """Every sample name the services' metrics can have (lkern_common.metrics)."""
    from prometheus_client import Counter, Gauge, Histogram

    import lkern_common.metrics as metrics

    names: set[str] = set()
    for metric in vars(metrics).values():
        if isinstance(metric, Counter):
            names |= {f"{metric._name}_total"}
        elif isinstance(metric, Histogram):
            names |= {f"{metric._name}_{suffix}" for suffix in ("bucket", "sum", "count")}
        elif isinstance(metric, Gauge):
            names.add(metric._name)
    return names


def test_prometheus_scrapes_every_replica_of_both_services(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert prometheus["read_only"] is True and prometheus["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in prometheus["security_opt"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in prometheus["volumes"]}
    config_file = (COMPOSE_FILE.parent / mounts["/etc/prometheus/prometheus.yml"]).resolve()
    assert config_file == PROMETHEUS_DIR / "prometheus.yml"
    assert any(volume.split(":")[0] in compose["volumes"] for volume in prometheus["volumes"])
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(SERVICES)
    for service, ports in SERVICES.items():
        job = jobs[service]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        # DNS discovery: one target per container of the compose service (replicas included).
        assert job["dns_sd_configs"] == [
            {"names": [service], "type": "A", "port": ports["http"], "refresh_interval": "30s"}
        ]
    rule_files = {Path(path).name for path in config["rule_files"]}
    assert rule_files == {"alerts.yml"}
    assert (COMPOSE_FILE.parent / mounts["/etc/prometheus/alerts.yml"]).resolve() == (
        PROMETHEUS_DIR / "alerts.yml"
    )


def test_alert_rules_use_only_metrics_the_services_have() -> None:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expr in expressions for name in re.findall(r"\blkern_\w+", expr)}
    assert used, "the rules use the services' metrics"
    assert not used - lkern_metric_names(), "rules name metrics no service exposes"
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"LkernOutboxBacklog", "LkernConsumerStalled"} <= alerts
