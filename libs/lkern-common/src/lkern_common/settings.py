"""
================================================================
FILE: settings.py
PATH: /libs/lkern-common/src/lkern_common/settings.py
DESCRIPTION: Settings base shared by every service (environment variables, local defaults)
VERSION: v1.5.0
UPDATED: 2026-12-02 14:05:00
================================================================
"""

# === IMPORTS ===
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# === CONSTANTS ===
# L-KERN's port map: lkms501-postgres runs the local stack's embedded PostgreSQL on 4501,
# lkms503-kafka the local broker on 4503; the web UI (lkms201) runs on 4201.
LOCAL_POSTGRES_PORT = 4501
LOCAL_KAFKA_PORT = 4503
WEB_UI_ORIGIN = "http://localhost:4201"
# The local stack's development PKI (`lkern up` makes it under its data folder, .lkern/pki),
# as seen from a service's folder, where a service runs (`python -m app`). Production sets
# every path explicitly (docs/deploy.md).
LOCAL_PKI_DIR = Path("../../.lkern/pki")
# The development issuer of `lkern up` / `lkern token` (lkern_devstack.dev_keys). A deployment
# sets its identity provider's issuer and JWKS URL; without them no token verifies (the
# development JWKS file does not exist in an image, so the service does not even start).
LOCAL_AUTH_ISSUER = "lkern-local-dev"
LOCAL_AUTH_AUDIENCE = "lkern-api"
LOCAL_AUTH_JWKS_FILE = "../../.lkern/auth/jwks.json"


# === HELPERS ===
def normalize_database_url(url: str) -> str:
    """Make any PostgreSQL URL use the asyncpg driver (``postgresql://`` → ``postgresql+asyncpg://``)."""
    for prefix in (
        "postgresql+psycopg2://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def available_cores() -> int:
    """
    The CPU cores this process may use: its CPU affinity, capped by the cgroup's CPU quota
    (a container limited to 1.5 CPUs gets 2; ``os.cpu_count()`` would name the host's cores).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return cores
    if quota != "max" and int(period) > 0:
        cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    return cores


def _split_csv(value: Any) -> Any:
    """Accept a comma-separated string for list settings (``A,B``) as well as JSON lists."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


# === SETTINGS ===
class ServiceSettings(BaseSettings):
    """
    Settings every L-KERN service has. A service subclasses this and overrides the defaults
    that are its own (name, ports, database name). Every field is an environment variable of the
    same name in upper case (``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``, ``LOG_LEVEL``…);
    ``.env.example`` in each service lists them all with their defaults.
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- identity ---
    service_name: str = "lkms000-unknown"
    service_version: str = "1.0.0"
    environment: Literal["development", "test", "production"] = "development"

    # --- logging ---
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: the standard's line format; json: one JSON object per line "
        "(timestamp, level, logger, message, service, request and trace ids, exception)",
    )
    log_level_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often each worker reads the log level set with PUT /config/log-level "
        "(stored in the service's database; docs/observability.md)",
    )
    log_requests: bool = Field(
        default=True, description="Log one INFO line per HTTP request (method, path, status, ms)"
    )
    log_requests_sample: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="Share of successful, fast requests that get an access line; failed "
        "(status >= 400) and slow ones always do. 1 logs every request; the line costs about "
        "a tenth of a key lookup's CPU (docs/performance.md), /metrics counts every request",
    )
    log_slow_request_ms: float = Field(
        default=500.0,
        gt=0,
        description="A request that takes at least this long always gets its access line",
    )

    # --- HTTP ---
    http_host: str = "0.0.0.0"
    http_port: int = 4000
    http_workers: int = Field(
        default=0,
        ge=0,
        description="uvicorn worker processes; 0: one per CPU core the process may use (its CPU "
        "affinity, capped by a container's CPU quota). Each has its own DB pool (DB_POOL_SIZE)",
    )
    cors_origins: Annotated[list[str], NoDecode] = [WEB_UI_ORIGIN]
    cors_allow_credentials: bool = True
    http_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body accepted, in bytes; a larger one is refused with 413 "
        "while it arrives (Content-Length or chunked), before it is held in memory",
    )

    # --- conditional requests and idempotency keys (docs/errors.md) ---
    require_if_match: bool = Field(
        default=False,
        description="Refuse PUT, DELETE and status changes without If-Match (428); off: a change "
        "without If-Match is applied, as the standard's API does",
    )
    idempotency_key_ttl_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="How long the answer to a POST with an Idempotency-Key is kept for retries",
    )
    idempotency_cleanup_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the service deletes expired idempotency keys"
    )

    # --- gRPC ---
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 5000
    grpc_grace_seconds: float = Field(default=5.0, ge=0)
    grpc_max_message_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest gRPC message received or sent, in bytes (a larger request is "
        "refused with RESOURCE_EXHAUSTED)",
    )

    # --- gRPC mutual TLS and authorisation (lkern_common.grpc_auth; docs/deploy.md) ---
    grpc_tls_ca: Path = Field(
        default=LOCAL_PKI_DIR / "ca.crt",
        description="PEM file of the CA whose certificates the gRPC server accepts from "
        "clients and the gRPC clients accept from servers (TLS cannot be turned off)",
    )
    grpc_tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate of this service: its gRPC server certificate and its "
        "client certificate (SAN = the service name, its identity)",
    )
    grpc_tls_key: Path | None = Field(default=None, description="PEM private key of GRPC_TLS_CERT")
    grpc_client_scopes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Scopes each calling service (the service name in its client "
        'certificate) has on this gRPC server, JSON: {"lkms102-orders": ["contacts:read"]}',
    )

    # --- event signatures (lkern_common.event_signing; docs/events.md) ---
    event_signing_key_file: Path | None = Field(
        default=None,
        description="Private JWK (JSON, with its kid) this service signs its events with",
    )
    event_trusted_jwks: dict[str, Path] = Field(
        default_factory=dict,
        description="Public keys (JWKS files) of the services whose events this service "
        'consumes, by service name, JSON: {"lkms101-contacts": "/keys/contacts.jwks.json"}',
    )

    # --- authentication (lkern_common.auth; README "Calling the API") ---
    # Every REST route except /health, /ready, / and the API docs needs a bearer token; no
    # setting turns that off. The local defaults are the development key that `lkern up` (or
    # `lkern token`) makes under .lkern/auth/, seen from a service's folder.
    auth_issuer: str = Field(
        default=LOCAL_AUTH_ISSUER,
        description="The `iss` every access token must have (your identity provider's issuer)",
    )
    auth_audience: str = Field(
        default=LOCAL_AUTH_AUDIENCE,
        description="A value the `aud` of every access token must be or contain",
    )
    auth_jwks_url: str = Field(
        default="",
        description="URL of the issuer's JWKS (its public signing keys); when set it is used "
        "instead of AUTH_JWKS_FILE",
    )
    auth_jwks_file: str = Field(
        default=LOCAL_AUTH_JWKS_FILE,
        description="A JWKS file of the public signing keys (when AUTH_JWKS_URL is empty); "
        "relative paths are relative to the service's folder",
    )
    auth_leeway_seconds: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed on exp / nbf"
    )
    auth_jwks_min_refresh_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A token naming an unknown key id reads the JWKS again, at most this often",
    )
    auth_jwks_max_age_seconds: float = Field(
        default=300.0, gt=0, description="The JWKS is read again when older than this"
    )
    auth_jwks_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of one fetch of AUTH_JWKS_URL"
    )
    auth_token_cache_size: int = Field(
        default=10_000,
        ge=0,
        description="Verified tokens kept (by hash, until they expire) so a request does not "
        "pay a signature check each time; 0 verifies every request",
    )

    # --- database ---
    database_url: str = f"postgresql+asyncpg://postgres@127.0.0.1:{LOCAL_POSTGRES_PORT}/postgres"
    # Sessions wait their turn for one of these (Database's FIFO gate). Overflow connections
    # are opened and closed for each use, which under a steady load costs more than it gives
    # (docs/performance.md): none by default.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_driver_pool_size: int = Field(
        default=10,
        ge=1,
        description="Connections of asyncpg's own pool, which runs the hot reads and the create "
        "statements without SQLAlchemy (Database.fetch_row / fetch_rows): a second pool beside "
        "DB_POOL_SIZE's, so each worker may hold both",
    )
    # The standard's sample pings every checkout; that costs one extra round trip per request.
    # We leave it off and let the pool recycle/invalidate broken connections instead.
    db_pool_pre_ping: bool = False
    db_pool_recycle_seconds: int = 1800
    db_echo: bool = False

    # --- Kafka ---
    kafka_bootstrap_servers: str = f"127.0.0.1:{LOCAL_KAFKA_PORT}"
    kafka_client_id: str = ""
    # True for Apache Kafka; the local broker (Tansu) does not support the idempotent producer.
    kafka_enable_idempotence: bool = False
    kafka_topic_partitions: int = Field(default=3, ge=1)
    kafka_topic_replication_factor: int = Field(default=1, ge=1)

    # --- Kafka security (lkern_common.kafka.security; docs/deploy.md) ---
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="How the Kafka clients connect: PLAINTEXT for the local broker, SASL_SSL "
        "in production",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)"
    )
    kafka_sasl_username: str = Field(
        default="", description="SASL user name (with a SASL_* protocol; e.g. the service name)"
    )
    kafka_sasl_password: SecretStr = Field(
        default=SecretStr(""), description="SASL password (with a SASL_* protocol)"
    )
    kafka_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM CA file the Kafka clients trust (SSL / SASL_SSL; empty: the system's)",
    )
    kafka_ssl_cert_file: Path | None = Field(
        default=None, description="PEM client certificate for Kafka (SSL client authentication)"
    )
    kafka_ssl_key_file: Path | None = Field(
        default=None, description="PEM private key of KAFKA_SSL_CERT_FILE"
    )

    # --- Kafka consumer (lkern_common.kafka.consumer; docs in that module) ---
    kafka_consumer_session_timeout_ms: int = Field(default=10000, ge=1000)
    kafka_consumer_heartbeat_interval_ms: int = Field(default=3000, ge=100)
    # Tansu does not wake a waiting fetch when data arrives: keep the wait short.
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=0)
    # Attempts of a failing handler before its message goes to the dead-letter topic.
    kafka_consumer_max_attempts: int = Field(default=5, ge=1)
    kafka_consumer_retry_backoff_ms: int = Field(default=200, ge=0)
    kafka_consumer_retry_backoff_max_ms: int = Field(default=5000, ge=0)
    # Inbox rows older than this are deleted (0 keeps them forever).
    kafka_inbox_retention_days: int = Field(default=30, ge=0)
    kafka_dead_letter_max_bytes: int = Field(
        default=1_000_000,
        ge=16_384,
        description="Largest dead-letter message the consumer sends; a copy that would be "
        "larger is sent cut (lkern_common.kafka.dead_letter)",
    )
    kafka_consumer_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A consumer with lag that commits nothing for this long is stalled: "
        "/ready says so (503) with the reason",
    )

    # --- Kafka clients (lkern_common.kafka.security.client_options) ---
    kafka_request_timeout_ms: int = Field(
        default=30000,
        ge=1000,
        description="How long a Kafka client (producer, consumer, topic admin) waits for the "
        "broker to answer a request; a producer's send then fails (the outbox relay retries it "
        "with backoff)",
    )

    # --- transactional outbox and its relay (lkern_common.outbox; docs/events.md) ---
    outbox_relay_enabled: bool = Field(
        default=True,
        description="Run the outbox relay in this process (off: events wait in the outbox "
        "until a relay of another replica publishes them)",
    )
    outbox_poll_interval_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Fallback poll of the outbox when no LISTEN/NOTIFY wake-up arrives",
    )
    outbox_batch_size: int = Field(
        default=500, ge=1, description="Most outbox rows the relay publishes per round trip"
    )
    outbox_retention_seconds: float = Field(
        default=7 * 24 * 3600.0,
        ge=0,
        description="Sent outbox rows are deleted this long after they were published",
    )
    outbox_cleanup_interval_seconds: float = Field(
        default=300.0, gt=0, description="How often the leading relay deletes expired sent rows"
    )
    outbox_standby_retry_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often a standby relay tries to take the leader's advisory lock",
    )
    outbox_retry_backoff_seconds: float = Field(
        default=0.5, gt=0, description="First wait after a failed publish or connection"
    )
    outbox_retry_backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait between retries (the backoff doubles)"
    )
    outbox_backlog_warn_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Log a warning while the oldest unsent outbox row is older than this",
    )
    outbox_backlog_log_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often the backlog warning is repeated"
    )
    outbox_stop_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        description="At shutdown, how long the relay may finish the batch it is publishing",
    )
    outbox_broker_check_interval_seconds: float = Field(
        default=10.0,
        gt=0,
        description="While the outbox is idle, how often the relay verifies the broker with a "
        "metadata round trip (/ready shows the age of the last verification)",
    )
    outbox_broker_stale_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/ready reports the outbox degraded when events wait and the broker was "
        "last verified (publish or metadata round trip) longer ago than this",
    )

    # === VALIDATORS ===
    @property
    def worker_processes(self) -> int:
        """HTTP_WORKERS, or (0) the cores this process may use (docs/performance.md)."""
        return self.http_workers or available_cores()

    @field_validator("database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator(
        "grpc_tls_cert",
        "grpc_tls_key",
        "event_signing_key_file",
        "kafka_ssl_ca_file",
        "kafka_ssl_cert_file",
        "kafka_ssl_key_file",
        mode="before",
    )
    @classmethod
    def _empty_path_is_unset(cls, value: Any) -> Any:
        """``VAR=`` (empty) means "not set", not the current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_list(cls, value: Any) -> Any:
        return _split_csv(value)

    @model_validator(mode="after")
    def _safe_cors(self) -> "ServiceSettings":
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError(
                "CORS_ORIGINS='*' cannot be combined with CORS_ALLOW_CREDENTIALS=true: "
                "list the allowed origins instead"
            )
        if not self.kafka_client_id:
            self.kafka_client_id = self.service_name
        return self

    @model_validator(mode="after")
    def _kafka_sasl_credentials(self) -> "ServiceSettings":
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        return self
