"""
================================================================
FILE: dlq.py
PATH: /tools/lkern-devstack/src/lkern_devstack/dlq.py
DESCRIPTION: `lkern dlq list` and `lkern dlq replay`: see and re-drive dead-lettered events
VERSION: v1.1.0
UPDATED: 2026-12-02 10:55:00
================================================================

Dead letters live on the services' dead-letter topics (``lkern.<service>.dlq``, format in
lkern_common.kafka.dead_letter). These commands read them straight from the broker:

- ``lkern dlq list [--reason R] [--since T] [--json]``: one line per dead letter: when, reason,
  original topic/partition/offset, the form it was kept in (whole / cut / bare), the error;
- ``lkern dlq replay [--reason R] [--since T] [--dry-run]``: re-publishes each selected dead
  letter to its original topic: the original key, value bytes and headers (the publisher's
  ``x-lkern-signature`` among them, which covers the value: a replayed event is verified like
  any other, and an altered one is refused again). A dead letter kept cut or bare is replayed
  from the original message, read back at its topic/partition/offset (while the topic's
  retention keeps it). The replayed message carries ``x-lkern-replay-of`` (the dead letter's
  coordinates); a dead letter that was replayed and refused again is superseded by its new
  entry, so replaying twice does not replay the old one again. Applying is idempotent on the
  consumer's side: its inbox skips an event that was already applied.

Who may: the commands connect like every Kafka client of the project
(lkern_common.kafka.security): KAFKA_BOOTSTRAP_SERVERS (default: the local stack's broker),
KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_* and KAFKA_SSL_* from the environment. In production that
is an operator's SCRAM user whose ACLs allow reading the dead-letter topics and writing the
original topics (the services' own users may not: docs/deploy.md); the local broker is
PLAINTEXT on 127.0.0.1 only. Nothing here can make an unsigned or forged event acceptable.
"""

# === IMPORTS ===
import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console
from rich.table import Table

from lkern_common.kafka.dead_letter import (
    DLQ_HEADER_PREFIX,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    FORM_HEADER,
    ORIGINAL_OFFSET_HEADER,
    ORIGINAL_PARTITION_HEADER,
    ORIGINAL_TOPIC_HEADER,
    REASON_HEADER,
    WHOLE,
)
from lkern_common.kafka.security import client_options
from lkern_common.settings import ServiceSettings
from lkern_devstack.dev_keys import parse_ttl
from lkern_devstack.stack import StackSettings

# === CONSTANTS ===
REPLAY_OF_HEADER = "x-lkern-replay-of"
DLQ_TOPIC_PATTERN = re.compile(r"^lkern\.[a-z0-9_-]+\.dlq$")
READ_TIMEOUT_MS = 500
CLIENT_ID = "lkern-dlq"
console = Console(highlight=False, soft_wrap=True)

dlq_app = typer.Typer(
    help="Dead letters: list them, and replay them to their topic after a fix.",
    no_args_is_help=True,
)


# === DEAD LETTERS ===
@dataclass(frozen=True)
class DeadLetterEntry:
    """One message of a dead-letter topic, as the commands show it."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    reason: str
    error: str
    original_topic: str
    original_partition: int
    original_offset: int
    failed_at: str
    form: str
    value_bytes: int
    replay_of: str | None

    @property
    def coordinates(self) -> str:
        return f"{self.dlq_topic}[{self.dlq_partition}]@{self.dlq_offset}"

    def failed_at_time(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.failed_at)
        except ValueError:
            return None


@dataclass
class _Read:
    """An entry with the record it was read from (for a whole replay)."""

    entry: DeadLetterEntry
    record: Any


def _headers(record: Any) -> dict[str, str]:
    return {
        name.lower(): (value or b"").decode("utf-8", errors="replace")
        for name, value in record.headers or ()
    }


def _int(text: str | None) -> int:
    try:
        return int(text or "-1")
    except ValueError:
        return -1


def entry_of(record: Any) -> DeadLetterEntry:
    """The dead letter a record of a dead-letter topic describes."""
    headers = _headers(record)
    return DeadLetterEntry(
        dlq_topic=record.topic,
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        reason=headers.get(REASON_HEADER, "?"),
        error=headers.get(ERROR_HEADER, ""),
        original_topic=headers.get(ORIGINAL_TOPIC_HEADER, "?"),
        original_partition=_int(headers.get(ORIGINAL_PARTITION_HEADER)),
        original_offset=_int(headers.get(ORIGINAL_OFFSET_HEADER)),
        failed_at=headers.get(FAILED_AT_HEADER, ""),
        form=headers.get(FORM_HEADER, WHOLE),  # dead letters older than the forms were whole
        value_bytes=len(record.value or b""),
        replay_of=headers.get(REPLAY_OF_HEADER),
    )


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO 8601 time (UTC when no zone) or an age (``90s``, ``15m``, ``2h``)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return (now or datetime.now(UTC)) - timedelta(seconds=parse_ttl(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def selected(
    entries: Sequence[DeadLetterEntry], reason: str | None, since: datetime | None
) -> list[DeadLetterEntry]:
    """The entries of ``reason`` (any when None) that failed at or after ``since``."""
    chosen = []
    for entry in entries:
        if reason and entry.reason != reason:
            continue
        failed_at = entry.failed_at_time()
        if since and (failed_at is None or failed_at < since):
            continue
        chosen.append(entry)
    return chosen


def superseded(entries: Sequence[DeadLetterEntry]) -> set[str]:
    """Coordinates of dead letters that were replayed and refused again (a newer entry)."""
    return {entry.replay_of for entry in entries if entry.replay_of}


# === BROKER ===
def kafka_settings(bootstrap: str | None) -> ServiceSettings:
    """The Kafka connection: KAFKA_* from the environment, else the local stack's broker."""
    stack = StackSettings()
    servers = bootstrap or stack.kafka_bootstrap_servers or f"{stack.host}:{stack.kafka_port}"
    return ServiceSettings(
        service_name=CLIENT_ID, kafka_bootstrap_servers=servers, kafka_client_id=CLIENT_ID
    )


async def dead_letter_topics(settings: ServiceSettings, topic: str | None) -> list[str]:
    """``topic``, or every ``lkern.<service>.dlq`` topic on the broker."""
    if topic:
        return [topic]
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        return sorted(name for name in await admin.list_topics() if DLQ_TOPIC_PATTERN.match(name))
    finally:
        await admin.close()


async def _read_all(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> list[Any]:
    """Every message of ``partitions`` from the start to their end now."""
    if not partitions:
        return []
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(partitions)
    records: list[Any] = []
    remaining = {tp for tp in partitions if ends[tp] > 0}
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=READ_TIMEOUT_MS)
        for tp, messages in batch.items():
            records.extend(message for message in messages if message.offset < ends[tp])
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    return records


async def read_dead_letters(settings: ServiceSettings, topic: str | None) -> list[_Read]:
    """Every dead letter of the dead-letter topics, oldest first per partition."""
    topics = await dead_letter_topics(settings, topic)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        await consumer.topics()  # metadata of every topic, so their partitions are known
        partitions = [
            TopicPartition(name, partition)
            for name in topics
            for partition in sorted(consumer.partitions_for_topic(name) or ())
        ]
        records = await _read_all(consumer, partitions)
    finally:
        await consumer.stop()
    return [_Read(entry_of(record), record) for record in records]


async def _original_record(consumer: AIOKafkaConsumer, entry: DeadLetterEntry) -> Any | None:
    """The original message of a cut or bare dead letter, when the topic still has it."""
    tp = TopicPartition(entry.original_topic, entry.original_partition)
    consumer.assign([tp])
    consumer.seek(tp, entry.original_offset)
    batch = await consumer.getmany(tp, timeout_ms=READ_TIMEOUT_MS * 4, max_records=1)
    for record in batch.get(tp, []):
        if record.offset == entry.original_offset:
            return record
    return None


def replay_message(record: Any, entry: DeadLetterEntry) -> tuple[Any, bytes | None, list[Any]]:
    """Key, value and headers to re-publish: the original's, plus ``x-lkern-replay-of``."""
    headers = [
        (name, value)
        for name, value in record.headers or ()
        if not name.lower().startswith(DLQ_HEADER_PREFIX) and name.lower() != REPLAY_OF_HEADER
    ]
    headers.append((REPLAY_OF_HEADER, entry.coordinates.encode()))
    return record.key, record.value, headers


@dataclass
class ReplaySummary:
    """What a replay did."""

    replayed: list[str]
    skipped_superseded: list[str]
    missing_original: list[str]


async def replay(
    settings: ServiceSettings,
    reads: Sequence[_Read],
    chosen: Sequence[DeadLetterEntry],
    *,
    dry_run: bool,
) -> ReplaySummary:
    """Re-publish ``chosen`` dead letters to their original topics (see the module doc)."""
    records = {read.entry.coordinates: read.record for read in reads}
    replaced = superseded([read.entry for read in reads])
    summary = ReplaySummary([], [], [])
    todo = []
    for entry in chosen:
        if entry.coordinates in replaced:
            summary.skipped_superseded.append(entry.coordinates)
        else:
            todo.append(entry)
    if dry_run:
        summary.replayed.extend(entry.coordinates for entry in todo)
        return summary
    producer = AIOKafkaProducer(acks="all", **client_options(settings))
    reader = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await producer.start()
    await reader.start()
    try:
        for entry in todo:
            source = records[entry.coordinates]
            if entry.form != WHOLE:
                source = await _original_record(reader, entry)
                if source is None:
                    summary.missing_original.append(entry.coordinates)
                    continue
            key, value, headers = replay_message(source, entry)
            await producer.send_and_wait(
                entry.original_topic, value=value, key=key, headers=headers
            )
            summary.replayed.append(entry.coordinates)
    finally:
        await producer.stop()
        await reader.stop()
    return summary


# === COMMANDS ===
ReasonOption = Annotated[
    str | None,
    typer.Option(help="Only this reason: bad-signature, invalid-json, invalid-envelope, …"),
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="Only dead letters since: ISO 8601 time, or an age such as 30m, 2h, 1d"),
]
TopicOption = Annotated[
    str | None, typer.Option(help="Dead-letter topic (default: every lkern.<service>.dlq)")
]
BootstrapOption = Annotated[
    str | None,
    typer.Option(
        envvar="KAFKA_BOOTSTRAP_SERVERS", help="Broker(s) (default: the local stack's broker)"
    ),
]


def _since_or_exit(since: str | None) -> datetime | None:
    try:
        return parse_since(since)
    except ValueError as error:
        console.print(f"[bold red]--since: {error}[/]")
        raise typer.Exit(2) from None


@dlq_app.command("list")
def list_command(
    reason: ReasonOption = None,
    since: SinceOption = None,
    topic: TopicOption = None,
    bootstrap_servers: BootstrapOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List dead letters: when, why, and where the original message is."""
    after = _since_or_exit(since)
    settings = kafka_settings(bootstrap_servers)
    reads = asyncio.run(read_dead_letters(settings, topic))
    entries = selected([read.entry for read in reads], reason, after)
    if as_json:
        for entry in entries:
            console.file.write(json.dumps(asdict(entry)) + "\n")
        return
    table = Table(title=f"{len(entries)} dead letters", title_justify="left")
    for column in ("failed at", "reason", "original", "form", "dead letter", "error"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        table.add_row(
            entry.failed_at,
            entry.reason,
            f"{entry.original_topic}[{entry.original_partition}]@{entry.original_offset}",
            entry.form,
            entry.coordinates,
            entry.error[:200],
        )
    console.print(table)


@dlq_app.command("replay")
def replay_command(
    reason: ReasonOption = None,
    since: SinceOption = None,
    topic: TopicOption = None,
    bootstrap_servers: BootstrapOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be replayed")] = False,
) -> None:
    """Re-publish dead letters to their original topic (signed bytes as they were)."""
    after = _since_or_exit(since)
    settings = kafka_settings(bootstrap_servers)
    reads = asyncio.run(read_dead_letters(settings, topic))
    chosen = selected([read.entry for read in reads], reason, after)
    summary = asyncio.run(replay(settings, reads, chosen, dry_run=dry_run))
    verb = "Would replay" if dry_run else "Replayed"
    console.print(f"{verb} {len(summary.replayed)} dead letters to their original topics.")
    if summary.skipped_superseded:
        console.print(
            f"Skipped {len(summary.skipped_superseded)} replayed before and refused again "
            "(their newer dead letter is replayed instead)."
        )
    if summary.missing_original:
        console.print(
            f"[bold red]{len(summary.missing_original)} cut dead letters whose original is no "
            f"longer on its topic:[/] {', '.join(summary.missing_original)}"
        )
        raise typer.Exit(1)
