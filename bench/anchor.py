"""
================================================================
FILE: anchor.py
PATH: /bench/anchor.py
DESCRIPTION: The bare anchor of make bench: FastAPI + asyncpg pool + orjson, no middleware/auth
VERSION: v1.1.0
UPDATED: 2026-12-02 13:15:00
================================================================

Issue 18's yardstick: what FastAPI itself reaches on this machine reading the same table, to be
measured in the same run as the services (bench.run starts it with uvicorn, uvloop, httptools
and the services' worker count; ANCHOR_DSN names the contacts database). Deliberately without
middleware, authentication, validation of responses, count or outbox: not a model to copy.

``POST /api/v1/contacts/with-event`` is the create's own work and nothing else: the body
validated by the service's ``ContactCreate`` (the email check included), the contact and its
ContactCreated outbox row in the service's one statement (``CREATE_CONTACT`` with
``create_arguments``), the answer serialised as the service does. The stack's relay publishes
its events and orders applies them, as for the service's creates: the same work on the same
cores, without the service's authentication, idempotency, middleware, logging and metrics.
"""

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request, Response

# The contacts service's own statement, event builder and input schema (its `app` package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "lkms101-contacts"))
from app.data.contacts import CREATE_CONTACT, ContactView, contact_json
from app.schemas.contact import ContactCreate
from app.services.contacts_service import create_arguments

COLUMNS = (
    "id, name, email, phone, is_active, version, created_at, updated_at, created_by, updated_by"
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["ANCHOR_DSN"], min_size=10, max_size=10)
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type="application/json")


@app.get("/api/v1/contacts/{contact_id}")
async def get_contact(contact_id: int, request: Request) -> Response:
    row = await request.app.state.pool.fetchrow(
        f"SELECT {COLUMNS} FROM contacts WHERE id = $1", contact_id
    )
    return _json(dict(row)) if row else _json({"detail": "not found"}, 404)


@app.get("/api/v1/contacts/")
async def list_contacts(request: Request, skip: int = 0, limit: int = 100) -> Response:
    rows = await request.app.state.pool.fetch(
        f"SELECT {COLUMNS} FROM contacts ORDER BY id LIMIT $1 OFFSET $2", limit, skip
    )
    return _json([dict(row) for row in rows])


@app.post("/api/v1/contacts/")
async def create_contact(request: Request) -> Response:
    body = orjson.loads(await request.body())
    row = await request.app.state.pool.fetchrow(
        f"INSERT INTO contacts (name, email, phone) VALUES ($1, $2, $3) RETURNING {COLUMNS}",
        body["name"],
        body["email"],
        body.get("phone"),
    )
    return _json(dict(row), 201)


@app.post("/api/v1/contacts/with-event")
async def create_contact_with_event(request: Request) -> Response:
    contact = ContactCreate.model_validate_json(await request.body())
    row = await request.app.state.pool.fetchrow(CREATE_CONTACT, *create_arguments(contact))
    return Response(contact_json(ContactView.from_row(row)), 201, media_type="application/json")
