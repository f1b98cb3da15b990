"""
================================================================
FILE: demo.py
PATH: /tools/lkern-devstack/src/lkern_devstack/demo.py
DESCRIPTION: Demo data for the local stack: a few contacts and orders, loaded once
VERSION: v1.0.0
UPDATED: 2026-11-26 10:30:00
================================================================
"""

# === IMPORTS ===
from pathlib import Path

import httpx

# === CONSTANTS ===
DEMO_CONTACTS = [
    {"name": "Jana Nováková", "email": "jana.novakova@example.com", "phone": "+421 900 111 222"},
    {"name": "Peter Horváth", "email": "peter.horvath@example.com", "phone": "+421 900 333 444"},
    {"name": "BOSSystems s.r.o.", "email": "office@bossystems.example", "phone": None},
    {"name": "Eva Kováčová", "email": "eva.kovacova@example.com", "phone": None},
    {"name": "Acme Trading Ltd", "email": "orders@acme.example", "phone": "+44 20 7946 0000"},
]
DEMO_ORDER_LINES = [
    [{"description": "Consulting (hours)", "quantity": "8", "unit_price": "65.00"}],
    [
        {"description": "Office chair", "quantity": "2", "unit_price": "149.90"},
        {"description": "Desk lamp", "quantity": "3", "unit_price": "24.99"},
    ],
    [{"description": "Annual licence", "quantity": "1", "unit_price": "1200.00"}],
]
MARKER = "demo-loaded"


# === LOADER ===
def load_demo_data(
    data_dir: Path, contacts_url: str, orders_url: str | None, token: str
) -> tuple[int, int] | None:
    """
    Create the demo contacts and orders through the public REST APIs, once: a marker file in
    the data folder remembers it (None when it was loaded before). Returns what was created.
    ``token``: an access token with contacts:write and orders:write (subject "demo").
    """
    marker = data_dir / MARKER
    if marker.exists():
        return None
    contact_ids: list[int] = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=10.0, headers=headers) as client:
        for contact in DEMO_CONTACTS:
            response = client.post(f"{contacts_url}/api/v1/contacts/", json=contact)
            if response.status_code == 201:
                contact_ids.append(response.json()["id"])
        orders = 0
        if orders_url and contact_ids:
            for index, lines in enumerate(DEMO_ORDER_LINES):
                body = {
                    "contact_id": contact_ids[index % len(contact_ids)],
                    "currency": "EUR",
                    "lines": lines,
                    "notes": "Demo order",
                }
                response = client.post(f"{orders_url}/api/v1/orders/", json=body)
                orders += response.status_code == 201
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("The demo data was loaded into this stack's databases.\n")
    return len(contact_ids), orders
