"""
================================================================
FILE: contacts_resync.py
PATH: /services/lkms102-orders/app/services/contacts_resync.py
DESCRIPTION: Rebuild the contacts read model from contacts (ListContacts), under the version guard
VERSION: v1.0.0
UPDATED: 2026-12-02 06:20:00
================================================================

The read model normally follows contact events. When the broker has no history for orders'
consumer group (the local stack's memory-only broker is new on every `lkern up`, a new
cluster, retention passed) the events it missed are gone; the read model is then rebuilt from
its source:

1. every contact, a page at a time (ListContacts, keyset by id), as ``ContactState.from_grpc``
   applied with :func:`apply_contact_snapshot`: the same upsert and version guard as a contact
   event (the consumer applies ``ContactState.from_snapshot`` through it), so a
   resync running while events arrive never puts an older version over a newer one;
2. contacts the read model has but contacts no longer lists were deleted there (contacts
   deletes the row; ids are never reused). Each is asked once more (GetContactsByIds) before
   it is marked deleted: a contact committed after its page was read exists by then.

It runs by itself when orders starts and finds its consumer group without committed offsets
(app.main), and on demand (``POST /api/v1/read-models/contacts/resync``, `lkern resync orders`).
One resync runs at a time; a second request waits for it and runs after.
"""

# === IMPORTS ===
import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from app.models.contact import ContactReadModel
from app.services.contacts_read_model import ContactState, apply_contact_snapshot
from lkern_common.database import Database
from lkern_common.grpc_clients.contacts import ContactsClientError
from lkern_common.grpc_contracts.contacts import contacts_pb2
from lkern_common.kafka.offsets import has_committed_offsets
from lkern_common.settings import ServiceSettings

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
PAGE_SIZE = 500
# GetContactsByIds takes at most 1,000 ids a call.
CONFIRM_BATCH = 1000
# While contacts cannot be asked, a background resync tries again after this long.
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 30.0


# === SOURCE ===
class ContactsSource(Protocol):
    """What a resync needs of ``AsyncContactsClient``."""

    async def list_contacts(
        self, after_id: int = 0, page_size: int = 0
    ) -> tuple[list[contacts_pb2.Contact], int]: ...

    async def get_contacts_by_ids(self, ids: Iterable[int]) -> list[contacts_pb2.Contact]: ...


# === WHEN ===
async def history_missing(
    settings: ServiceSettings, group_id: str, topics: Sequence[str], timeout_s: float
) -> bool:
    """
    True when ``group_id`` has no committed offset on ``topics``: the broker holds no history
    of what this service read (a new broker, or a new service). Also True when the broker
    cannot be asked within ``timeout_s``: a resync is harmless (the version guard keeps newer
    rows), a stale read model is not.
    """
    try:
        committed = await asyncio.wait_for(
            has_committed_offsets(settings, group_id, topics), timeout_s
        )
    except Exception as error:  # KafkaError, OSError, TimeoutError: unknown, so resync
        logger.warning("Cannot read consumer group %s's offsets (%s): resyncing", group_id, error)
        return True
    return not committed


# === RESULT ===
@dataclass(frozen=True)
class ResyncResult:
    """What one resync did: contacts listed, rows changed, rows marked deleted, its length."""

    contacts: int
    changed: int
    deleted: int
    seconds: float


# === RESYNC ===
async def _apply_pages(
    db: Database, source: ContactsSource, page_size: int
) -> tuple[set[int], int]:
    """Apply every page of contacts; returns the ids listed and how many rows changed."""
    listed: set[int] = set()
    changed = 0
    after_id = 0
    while True:
        page, after_id = await source.list_contacts(after_id, page_size)
        async with db.transaction() as session:
            for contact in page:
                changed += await apply_contact_snapshot(session, ContactState.from_grpc(contact))
        listed.update(contact.id for contact in page)
        if after_id == 0:
            return listed, changed


async def _mark_deleted(db: Database, source: ContactsSource, listed: set[int]) -> int:
    """Mark deleted the live rows contacts did not list and still does not know."""
    async with db.read_session() as session:
        rows = (
            await session.execute(
                select(ContactReadModel.id, ContactReadModel.version).where(
                    ContactReadModel.deleted.is_(False)
                )
            )
        ).all()
    unlisted = {row.id: row.version for row in rows if row.id not in listed}
    ids = sorted(unlisted)
    gone: list[int] = []
    for start in range(0, len(ids), CONFIRM_BATCH):
        batch = ids[start : start + CONFIRM_BATCH]
        known = {contact.id for contact in await source.get_contacts_by_ids(batch)}
        gone += [contact_id for contact_id in batch if contact_id not in known]
    if gone:
        async with db.transaction() as session:
            for contact_id in gone:
                # A deletion applies whatever its version; name and email stay as they were.
                deletion = ContactState(contact_id, "", "", False, unlisted[contact_id], True)
                await apply_contact_snapshot(session, deletion)
    return len(gone)


async def resync_contacts(
    db: Database, source: ContactsSource, page_size: int = PAGE_SIZE
) -> ResyncResult:
    """Rebuild the read model from ``source`` (see the module docstring); raises on failure."""
    began = time.monotonic()
    listed, changed = await _apply_pages(db, source, page_size)
    deleted = await _mark_deleted(db, source, listed)
    result = ResyncResult(len(listed), changed, deleted, round(time.monotonic() - began, 3))
    logger.info(
        "Contacts read model resynced from contacts: %d contacts, %d rows changed, "
        "%d marked deleted, in %.2f s",
        result.contacts,
        result.changed,
        result.deleted,
        result.seconds,
    )
    return result


# === RUNNER ===
class ContactsResync:
    """
    Runs resyncs one at a time: on demand (:meth:`run`) or in the background until one
    succeeds (:meth:`start`, while contacts is not reachable yet it tries again with backoff).
    """

    def __init__(self, db: Database, source: ContactsSource, page_size: int = PAGE_SIZE) -> None:
        self._db = db
        self._source = source
        self._page_size = page_size
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last: ResyncResult | None = None

    async def run(self) -> ResyncResult:
        """One resync now (after the one running, if any)."""
        async with self._lock:
            self.last = await resync_contacts(self._db, self._source, self._page_size)
            return self.last

    def start(self, reason: str) -> None:
        """Resync in the background until it succeeds (once; a running one is kept)."""
        if self._task is not None and not self._task.done():
            return
        logger.info("Contacts read model: resync from contacts started (%s)", reason)
        self._task = asyncio.create_task(self._run_until_done(), name="contacts-resync")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run_until_done(self) -> None:
        delay = RETRY_INITIAL_S
        while True:
            try:
                await self.run()
                return
            except ContactsClientError as error:
                logger.warning(
                    "Contacts read model resync: contacts cannot be asked (%s); "
                    "trying again in %.0f s",
                    error,
                    delay,
                )
            except Exception:
                logger.exception("Contacts read model resync failed; trying again in %.0f s", delay)
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)

    async def stop(self) -> None:
        """Cancel a background resync (what it applied stays: each page is its own commit)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
