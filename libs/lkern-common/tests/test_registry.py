"""
================================================================
FILE: test_registry.py
PATH: /libs/lkern-common/tests/test_registry.py
DESCRIPTION: The service registry: [tool.lkern] tables read, defaults, checks and start order
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
from pathlib import Path

import pytest

from lkern_common.registry import (
    RegistryError,
    discover_services,
    in_start_order,
    load_service_entry,
)

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parents[3]


# === HELPERS ===
def declare(root: Path, name: str, table: str) -> Path:
    """A service folder with a pyproject.toml of ``name`` and the ``[tool.lkern]`` lines."""
    folder = root / "services" / name
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\n\n[tool.lkern]\n{table}\n', encoding="utf-8"
    )
    return folder


# === TESTS ===
def test_the_number_gives_ports_database_topics_and_group(tmp_path: Path) -> None:
    entry = load_service_entry(declare(tmp_path, "lkms107-stock", "number = 107"))
    assert (entry.http_port, entry.grpc_port, entry.database) == (4107, 5107, "lkms107_stock")
    assert (entry.short_name, entry.env_prefix) == ("stock", "LKMS107")
    assert entry.topic_prefix == "lkern.stock."
    assert entry.consumer_group == "lkms107-stock-group"
    assert entry.grpc_target_variable == "STOCK_GRPC_TARGET"
    assert entry.local_database_url(4501).endswith("@127.0.0.1:4501/lkms107_stock")


@pytest.mark.parametrize(
    ("name", "table", "problem"),
    [
        ("stock", "number = 107", "is not lkmsNNN-<name>"),
        ("lkms107-stock", "number = 108", "number must be 107"),
        ("lkms107-stock", 'number = 107\nscopes = "stock:read"', "scopes must be a list"),
        ("lkms107-stock", "number = 107\ngrpc_clients = 3", "grpc_clients must be a table"),
        ("lkms107-stock", "number = [", "pyproject.toml"),
    ],
)
def test_a_wrong_declaration_is_refused_naming_the_field(
    tmp_path: Path, name: str, table: str, problem: str
) -> None:
    with pytest.raises(RegistryError, match=problem):
        load_service_entry(declare(tmp_path, name, table))


def test_a_folder_without_the_table_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "services" / "lkms107-stock"
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "lkms107-stock"\n')
    with pytest.raises(RegistryError, match=r"no \[tool.lkern\] table"):
        discover_services(tmp_path)


def test_numbers_ports_and_references_must_be_unique_and_real(tmp_path: Path) -> None:
    declare(tmp_path, "lkms107-stock", "number = 107\nhttp_port = 4108")
    declare(tmp_path, "lkms108-sales", "number = 108")
    with pytest.raises(RegistryError, match="same http_port 4108"):
        discover_services(tmp_path)

    other = tmp_path / "other"
    declare(other, "lkms107-stock", 'number = 107\ncalls = ["lkms199-ghost"]')
    with pytest.raises(RegistryError, match="'lkms199-ghost', which is not a service"):
        discover_services(other)


def test_start_order_puts_the_called_services_first(tmp_path: Path) -> None:
    declare(tmp_path, "lkms103-billing", 'number = 103\ncalls = ["lkms105-ledger"]')
    declare(tmp_path, "lkms104-audit", "number = 104")
    declare(tmp_path, "lkms105-ledger", 'number = 105\ncalls = ["lkms104-audit"]')
    names = [entry.name for entry in in_start_order(discover_services(tmp_path))]
    assert names == ["lkms104-audit", "lkms105-ledger", "lkms103-billing"]

    cycle = tmp_path / "cycle"
    declare(cycle, "lkms103-a", 'number = 103\ncalls = ["lkms104-b"]')
    declare(cycle, "lkms104-b", 'number = 104\ncalls = ["lkms103-a"]')
    with pytest.raises(RegistryError, match="in a circle"):
        in_start_order(discover_services(cycle))


def test_the_repository_registry_keeps_the_two_services_contracts() -> None:
    """Contacts and orders keep their ports, databases, topics and wiring."""
    entries = {entry.name: entry for entry in discover_services(REPO_ROOT)}
    contacts, orders = entries["lkms101-contacts"], entries["lkms102-orders"]
    assert (contacts.http_port, contacts.grpc_port, contacts.database) == (
        4101,
        5101,
        "lkms101_contacts",
    )
    assert (orders.http_port, orders.grpc_port, orders.database) == (4102, 5102, "lkms102_orders")
    assert contacts.topic_prefix == "lkern.contacts." and orders.topic_prefix == "lkern.orders."
    assert contacts.grpc_client_scopes == {"lkms102-orders": ["contacts:read"]}
    assert orders.consumes_events_of == orders.calls == ("lkms101-contacts",)
    assert orders.consumer_group == "lkms102-orders-group"
