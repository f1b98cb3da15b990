"""
================================================================
FILE: __init__.py
PATH: /libs/lkern-common/src/lkern_common/metrics/__init__.py
DESCRIPTION: Every Prometheus metric of the services, defined once (docs/observability.md)
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

The one place where the services' metrics are defined (prometheus-client). Code that records
a figure imports the metric from here; docs/observability.md says what each one tells.

Multiprocess mode: ``lkern_common.web.serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
per-service folder before any worker starts, so every worker writes its figures to its own
memory-mapped files there and one scrape of ``/metrics`` (served by whichever worker) sums
them all (``lkern_common.metrics.exposition``). Without the variable (an app built inside a
test) the figures live in the process, as prometheus-client does by default.

Gauges say how the workers' values combine (``multiprocess_mode``): ``livesum`` adds the live
workers' values (connections in use), ``livemax`` takes the highest (a partition's lag: only
its owner reports more than 0), ``mostrecent`` the last one written (the outbox backlog, read
from the database at scrape time by the worker that serves the scrape).

Figures recorded on every request (HTTP, the pool's gate, gRPC calls) go through the tallies at
the end of this module (lkern_common.metrics.buffer): the hot path adds to a dictionary, the
metric is written once a second.

Labels never carry ids: HTTP routes are the route templates (``/api/v1/contacts/{contact_id}``),
gRPC methods their full names, consumers their group and topic.
"""

# === IMPORTS ===
from prometheus_client import Counter, Gauge, Histogram

from lkern_common.metrics.buffer import BufferedCounter, BufferedHistogram

# === CONSTANTS ===
# Request latencies: 1 ms … 10 s (a GET contact takes ~1–5 ms here, a create ~3–20 ms).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Waits for a pooled connection: mostly 0, milliseconds under a burst, seconds when starved.
WAIT_BUCKETS = (0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# An event from the change to its application in another service: ~20–100 ms normally (the
# local broker answers a waiting fetch late), minutes when the broker or a consumer was down.
EVENT_LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)

# === HTTP (lkern_common.metrics.http) ===
HTTP_REQUESTS = Counter(
    "lkern_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "lkern_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# === gRPC (lkern_common.metrics.grpc) ===
GRPC_SERVER_HANDLED = Counter(
    "lkern_grpc_server_handled",
    "RPCs this service answered, by full method name and status code",
    ["method", "code"],
)
GRPC_SERVER_SECONDS = Histogram(
    "lkern_grpc_server_handling_seconds",
    "Time to answer an RPC (this service as the server), by full method name",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
GRPC_CLIENT_HANDLED = Counter(
    "lkern_grpc_client_handled",
    "RPCs this service made to another one, by full method name and status code",
    ["method", "code"],
)
GRPC_CLIENT_SECONDS = Histogram(
    "lkern_grpc_client_handling_seconds",
    "Time until another service answered an RPC of this one, by full method name",
    ["method"],
    buckets=LATENCY_BUCKETS,
)

# === DATABASE POOL (lkern_common.database) ===
# Two pools per worker (lkern_common.database): "orm" (SQLAlchemy's: sessions, transactions)
# and "driver" (asyncpg's own: hot reads and one-statement writes).
DB_POOL_SIZE = Gauge(
    "lkern_db_pool_size",
    "Most pooled database connections (orm: DB_POOL_SIZE + DB_MAX_OVERFLOW, driver: "
    "DB_DRIVER_POOL_SIZE), summed over workers",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_IN_USE = Gauge(
    "lkern_db_pool_connections_in_use",
    "Pooled database connections checked out now, summed over workers",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_WAIT_SECONDS = Histogram(
    "lkern_db_pool_wait_seconds",
    "Time a session or statement waited for a free pooled connection (the FIFO gate)",
    ["pool"],
    buckets=WAIT_BUCKETS,
)

# === OUTBOX (lkern_common.outbox.relay) ===
OUTBOX_PENDING = Gauge(
    "lkern_outbox_pending_events",
    "Unsent events in the outbox (read at scrape time; counted up to 10,000)",
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_AGE = Gauge(
    "lkern_outbox_oldest_pending_age_seconds",
    "Age of the oldest unsent event in the outbox, 0 when none waits (read at scrape time)",
    multiprocess_mode="mostrecent",
)
OUTBOX_PUBLISHED = Counter(
    "lkern_outbox_published_events",
    "Events the outbox relay published and the broker acknowledged",
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "lkern_outbox_publish_failures",
    "Failed relay rounds: broker unreachable or refusing, or the database connection lost",
)
OUTBOX_RELAY_LEADER = Gauge(
    "lkern_outbox_relay_leader",
    "1 in the worker whose relay leads (publishes), summed over workers: 1 when all is well",
    multiprocess_mode="livesum",
)

# === KAFKA CONSUMER (lkern_common.metrics.consumer) ===
CONSUMER_EVENTS = Counter(
    "lkern_consumer_events",
    "Messages a consumer finished with, by group, topic and outcome "
    "(applied, duplicate, dead_lettered)",
    ["group", "topic", "outcome"],
)
CONSUMER_RETRIES = Counter(
    "lkern_consumer_retries",
    "Handler attempts that failed and were retried after a backoff",
    ["group"],
)
CONSUMER_LAG = Gauge(
    "lkern_consumer_lag_messages",
    "Messages of a partition not yet applied: the partition's end minus the group's next offset",
    ["group", "topic", "partition"],
    multiprocess_mode="livemax",
)
CONSUMER_BATCH_SIZE = Histogram(
    "lkern_consumer_batch_size",
    "Messages applied in one database transaction",
    ["group"],
    buckets=BATCH_SIZE_BUCKETS,
)
CONSUMER_APPLY_SECONDS = Histogram(
    "lkern_consumer_apply_seconds",
    "Time to apply one transaction of messages (a batch, or one message with its retries)",
    ["group"],
    buckets=LATENCY_BUCKETS,
)
CONSUMER_LAST_PROGRESS = Gauge(
    "lkern_consumer_last_progress_timestamp_seconds",
    "Unix time a consumer last finished a message (applied, duplicate or dead-lettered); "
    "with lag > 0 its age tells a stalled consumer",
    ["group"],
    multiprocess_mode="livemax",
)
EVENT_END_TO_END_SECONDS = Histogram(
    "lkern_event_end_to_end_seconds",
    "From an event's occurred_at (the change in the publishing service) to its application "
    "here (the consuming transaction committed), by topic",
    ["topic"],
    buckets=EVENT_LATENCY_BUCKETS,
)

# === TALLIES OF THE HOT PATHS (lkern_common.metrics.buffer) ===
HTTP_REQUESTS_TALLY = BufferedCounter(HTTP_REQUESTS)
HTTP_REQUEST_SECONDS_TALLY = BufferedHistogram(HTTP_REQUEST_SECONDS)
GRPC_SERVER_HANDLED_TALLY = BufferedCounter(GRPC_SERVER_HANDLED)
GRPC_SERVER_SECONDS_TALLY = BufferedHistogram(GRPC_SERVER_SECONDS)
GRPC_CLIENT_HANDLED_TALLY = BufferedCounter(GRPC_CLIENT_HANDLED)
GRPC_CLIENT_SECONDS_TALLY = BufferedHistogram(GRPC_CLIENT_SECONDS)
DB_POOL_WAIT_SECONDS_TALLY = BufferedHistogram(DB_POOL_WAIT_SECONDS)
