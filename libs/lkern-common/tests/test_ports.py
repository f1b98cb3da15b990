"""
================================================================
FILE: test_ports.py
PATH: /libs/lkern-common/tests/test_ports.py
DESCRIPTION: lkern_common.ports.port_is_free: the one port check of servers and the local stack
VERSION: v1.0.0
UPDATED: 2026-12-02 05:55:00
================================================================
"""

# === IMPORTS ===
import socket

import pytest

from lkern_common.ports import port_is_free


# === TESTS ===
def test_a_listening_port_is_taken_and_a_closed_one_free() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
    assert port_is_free("127.0.0.1", port)


def test_an_address_of_another_machine_is_an_error_not_a_taken_port() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    with pytest.raises(OSError):
        port_is_free("192.0.2.1", 4101)
