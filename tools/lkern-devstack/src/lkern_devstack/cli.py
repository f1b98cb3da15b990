"""
================================================================
FILE: cli.py
PATH: /tools/lkern-devstack/src/lkern_devstack/cli.py
DESCRIPTION: The lkern command: up, migrate, status (live metrics), token, resync, dlq,
             new-service for the local stack
VERSION: v1.5.0
UPDATED: 2026-12-02 06:50:00
================================================================
"""

# === IMPORTS ===
import inspect
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from lkern_common.auth import LKERN_ADMIN
from lkern_devstack.demo import load_demo_data
from lkern_devstack.dev_keys import DEFAULT_SUBJECT, STACK_SCOPES, dev_auth, parse_ttl
from lkern_devstack.dev_pki import DevPki
from lkern_devstack.dlq import dlq_app
from lkern_devstack.metrics_view import ROWS, Scrape, figures
from lkern_devstack.new_service import NewServiceError, create_service
from lkern_devstack.process import REPO_ROOT, ServiceProcessError
from lkern_devstack.stack import (
    SERVICES,
    LocalStack,
    PortKind,
    ServiceDefinition,
    StackError,
    StackSettings,
    port_field,
    present_services,
)
from lkern_devstack.supervisor import Supervisor
from lkern_devstack.testpostgres import run_with_test_postgres

# === CONSTANTS ===
console = Console(highlight=False, soft_wrap=True)
PREFIX_STYLES = ["cyan", "magenta", "green", "yellow", "blue"]
# `lkern resync`: the route that rebuilds a service's read models from their sources, and the
# scope it needs (a service without read models has none).
RESYNC_ROUTES = {"lkms102-orders": ("/api/v1/read-models/contacts/resync", LKERN_ADMIN)}
RESYNC_TIMEOUT_S = 600.0
# Wider than any table we print: the width a table is measured in when nothing limits it.
UNBOUNDED_WIDTH = 10_000

app = typer.Typer(
    help="L-KERN v4 local stack: run every service with its database and broker on this machine.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(dlq_app, name="dlq")


# === OUTPUT ===
ANSI_COLOURS = {"cyan": 36, "magenta": 35, "green": 32, "yellow": 33, "blue": 34}
_OUTPUT_LOCK = threading.Lock()


class _Output:
    """
    While the start-up spinners run, children's lines go through rich, which keeps the spinner
    below them. Once the stack runs they are written straight to the terminal: rich takes
    ~50 µs a line, which at thousands of access lines a second is a good part of a CPU core
    taken from the services (docs/performance.md).
    """

    direct = False


def log_line(name: str, line: str) -> None:
    """Print a child's log line, prefixed (and coloured) by its service."""
    service = name.split(":", 1)[0]
    index = next((i for i, s in enumerate(SERVICES) if s.name == service), len(SERVICES))
    style = PREFIX_STYLES[index % len(PREFIX_STYLES)]
    if not _Output.direct:
        console.print(Text.assemble((f"{name:<24}| ", style), line), soft_wrap=True)
        return
    prefix = f"{name:<24}| "
    if console.is_terminal and not console.no_color:
        prefix = f"\x1b[{ANSI_COLOURS[style]}m{prefix}\x1b[0m"
    with _OUTPUT_LOCK:
        console.file.write(f"{prefix}{line}\n")
        console.file.flush()


def stack_table(stack: LocalStack) -> Table:
    """One short table of what runs where."""
    settings = stack.settings
    table = Table(title="L-KERN v4 local stack", title_justify="left")
    for column in ("part", "where", "docs / notes"):
        table.add_column(column, overflow="fold")  # a narrow terminal wraps, never cuts
    for process in stack.processes:
        service = next(s for s in SERVICES if s.name == process.name)
        grpc = f"{settings.host}:{service.grpc_port(settings)}"
        table.add_row(
            service.name, f"REST {process.base_url}  gRPC {grpc}", f"{process.base_url}/docs"
        )
    postgres = (
        f"postgresql://postgres@{settings.host}:{settings.postgres_port}"
        if stack.postgres
        else "DATABASE_URL"
    )
    table.add_row("PostgreSQL", postgres, ", ".join(s.database for s in present_services()))
    broker_note = "local broker (Tansu), memory only" if stack.broker else "KAFKA_BOOTSTRAP_SERVERS"
    table.add_row("Kafka", stack.bootstrap_servers, broker_note)
    return table


def print_table(table: Table) -> None:
    """
    In a terminal, fitted to its width; in a log file or a pipe (no width to fit, rich assumes
    80 columns), at the table's full width, so that no address or port is cut or split.
    """
    if console.is_terminal:
        console.print(table)
        return
    fitted = console.width
    unbounded = console.options.update_width(UNBOUNDED_WIDTH)
    console.width = max(fitted, console.measure(table, options=unbounded).maximum)
    try:
        console.print(table)
    finally:
        console.width = fitted


# === STOP SIGNALS ===
class StopSignal:
    """Set by Ctrl-C (SIGINT) or SIGTERM; the main loop then stops everything in order."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: str | None = None
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        self.event.set()


# === COMMANDS ===
def stack_option(field: str, help_text: str) -> Any:
    """
    An option of ``lkern up`` for a :class:`StackSettings` field: ``--help`` shows its
    environment variable and its default, both taken from the settings class (one source).
    """
    return typer.Option(
        help=help_text,
        envvar=f"{StackSettings.model_config.get('env_prefix', '')}{field}".upper(),
        show_envvar=True,
        show_default=str(StackSettings.model_fields[field].default),
    )


def service_port_option(service: ServiceDefinition, kind: PortKind) -> inspect.Parameter:
    """``--contacts-http-port``: an option of ``lkern up`` per port of each service."""
    field = port_field(service.entry, kind)
    default = getattr(service.entry, f"{kind}_port")
    option = typer.Option(
        help=f"{service.name} {'REST' if kind == 'http' else 'gRPC'} port",
        envvar=f"LKERN_{field.upper()}",
        show_envvar=True,
        show_default=str(default),
    )
    return inspect.Parameter(
        field,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[int | None, option],
    )


def with_service_port_options(command: Callable[..., None]) -> Callable[..., None]:
    """
    ``command`` with one port option per service port of the registry in place of its
    ``**service_ports``: a new service gets its ``lkern up`` options without an edit here.
    """
    signature = inspect.signature(command)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    ports = [
        service_port_option(service, kind) for service in SERVICES for kind in ("http", "grpc")
    ]
    command.__signature__ = signature.replace(parameters=[*fixed, *ports])  # type: ignore[attr-defined]
    return command


@app.command()
@with_service_port_options
def up(
    demo: Annotated[
        bool,
        typer.Option("--demo", help="Load demo contacts and orders (once)", show_default="off"),
    ] = False,
    data_dir: Annotated[
        Path | None, stack_option("data_dir", "Data folder (PostgreSQL's data, logs)")
    ] = None,
    postgres_port: Annotated[
        int | None, stack_option("postgres_port", "embedded PostgreSQL port")
    ] = None,
    kafka_port: Annotated[
        int | None, stack_option("kafka_port", "local Kafka broker (Tansu) port")
    ] = None,
    exit_on_failure: Annotated[
        bool,
        typer.Option(
            "--exit-on-failure",
            help="Stop the whole stack (exit 1) when a service exits, instead of restarting it",
            show_default="off: restart it with backoff",
        ),
    ] = False,
    **service_ports: int | None,
) -> None:
    """
    Start the whole stack: PostgreSQL and the broker (unless DATABASE_URL /
    KAFKA_BOOTSTRAP_SERVERS are set), every service's database, migrations, every service; wait
    until every /ready answers; run until Ctrl-C or SIGTERM (a service that exits meanwhile is
    restarted with backoff), then stop the services, the broker and PostgreSQL in that order.
    Each service has a REST and a gRPC port option (--<name>-http-port …).
    """
    overrides = {
        key: value
        for key, value in {
            "data_dir": data_dir,
            "postgres_port": postgres_port,
            "kafka_port": kafka_port,
            **service_ports,
        }.items()
        if value is not None
    }
    settings = StackSettings.model_validate(overrides)
    stop = StopSignal()
    stack = LocalStack(settings, sink=log_line)
    exit_code = 0
    try:
        start_stack(stack, stop)
        if demo and not stop.event.is_set():
            load_demo(stack)
        if not stop.event.is_set():
            print_table(stack_table(stack))
            print_token_help(stack, with_token=demo)
            console.print("Press Ctrl-C to stop everything.")
            _Output.direct = True
            exit_code = run_until_stopped(stack, stop, exit_on_failure=exit_on_failure)
    except (StackError, ServiceProcessError, OSError) as error:
        console.print(f"[bold red]Cannot start the stack:[/] {error}")
        exit_code = 1
    finally:
        stopped = stack.stop()
        if stopped:
            console.print(f"Stopped: {', '.join(stopped)}.")
    raise typer.Exit(exit_code)


def start_stack(stack: LocalStack, stop: StopSignal) -> None:
    """Every start step, with progress shown; returns early when a stop signal arrives."""
    services = present_services()
    stack.check_ports(services)
    steps = [
        ("Development certificates and signing keys", stack.ensure_pki),
        ("Starting PostgreSQL", stack.start_postgres),
        ("Creating databases", lambda: stack.create_databases(services)),
        ("Starting the Kafka broker", stack.start_broker),
        ("Running migrations", lambda: stack.migrate(services)),
    ]
    for message, step in steps:
        if stop.event.is_set():
            return
        with console.status(message + "…"):
            step()
        console.print(f"[green]✓[/] {message}")
    # The services start together: orders needs contacts only to answer requests, not to start.
    started = []
    for service in services:
        if stop.event.is_set():
            return
        started.append(stack.start_service(service))
    for process in started:
        with console.status(f"Starting {process.name}…"):
            process.wait_ready()
        console.print(f"[green]✓[/] {process.name} ready")


def print_token_help(stack: LocalStack, *, with_token: bool) -> None:
    """How to call the API: every route but /health, /ready, / and the docs needs a token."""
    contacts = next((p.base_url for p in stack.processes), "http://127.0.0.1:4101")
    command = ".venv/bin/lkern token"
    if stack.settings.data_dir != StackSettings().data_dir:
        command += f" --data-dir {stack.settings.data_dir}"
    console.print(
        f"The API needs a bearer token (every scope, 12 h): {command}  "
        "(--scope contacts:read … to narrow it). In /docs: Authorize, paste it.",
        markup=False,
    )
    console.print(
        f'  curl -H "Authorization: Bearer $({command})" {contacts}/api/v1/contacts/',
        soft_wrap=True,
        markup=False,
    )
    if with_token:
        console.print("A token ready to paste (every scope, 12 h):")
        console.file.write(stack.auth.mint() + "\n")


def load_demo(stack: LocalStack) -> None:
    urls = {p.name: p.base_url for p in stack.processes}
    loaded = load_demo_data(
        stack.settings.data_dir,
        urls["lkms101-contacts"],
        urls.get("lkms102-orders"),
        stack.auth.mint(subject="demo", ttl_seconds=600),
    )
    if loaded is None:
        console.print("Demo data was loaded before: not loading it again.")
    else:
        console.print(f"[green]✓[/] Demo data: {loaded[0]} contacts, {loaded[1]} orders")


def announce(line: str) -> None:
    """A line of `lkern` itself, among the services' lines."""
    log_line("lkern", line)


def run_until_stopped(stack: LocalStack, stop: StopSignal, *, exit_on_failure: bool) -> int:
    """
    Wait for Ctrl-C / SIGTERM. A service that exits meanwhile is restarted after a backoff
    while the rest keeps running (the memory-only broker holds events not read yet); with
    ``exit_on_failure`` the stack stops instead and exits 1 (CI).
    """
    supervisor = Supervisor(announce=announce)
    for process in stack.processes:
        supervisor.watch(process)
    while not stop.event.wait(0.5):
        if exit_on_failure:
            exited = stack.exited_service()
            if exited is not None:
                console.print(
                    f"[bold red]{exited.name} exited (code {exited.exit_code()}): "
                    "stopping the stack (--exit-on-failure)."
                )
                return 1
            continue
        supervisor.check()
    console.print(f"{stop.received}: stopping the stack…")
    return 0


@app.command()
def migrate(
    service: Annotated[str | None, typer.Argument(help="contacts, orders, or a full name")] = None,
) -> None:
    """Create the databases if missing and run migrations to head (all services, or one)."""
    stack = LocalStack(StackSettings(), sink=log_line)
    try:
        services = present_services(service)
        if not stack.settings.database_url and not stack._own_postgres_running():
            stack.check_ports([])
            stack.start_postgres()
        stack.create_databases(services)
        stack.migrate(services)
        console.print(f"[green]✓[/] Migrated: {', '.join(s.name for s in services)}")
    except (StackError, ServiceProcessError, OSError) as error:
        console.print(f"[bold red]Migration failed:[/] {error}")
        raise typer.Exit(1) from None
    finally:
        stack.stop()


@app.command("new-service")
def new_service(
    name: Annotated[str, typer.Argument(help="lkms1NN-<name>, e.g. lkms103-inventory")],
) -> None:
    """
    Make a complete, working service in services/<name> (REST 41NN, gRPC 51NN, database
    lkms1NN_<name>): an example resource at /api/v1/<name>/, its migration, proto, events and
    tests; then regenerate every generated file. `make up` and `make test` include it.
    """
    try:
        folder = create_service(name, REPO_ROOT)
    except NewServiceError as error:
        console.print(f"[bold red]Cannot make the service:[/] {error}")
        raise typer.Exit(1) from None
    console.print(f"[green]✓[/] {name} in {folder.relative_to(REPO_ROOT)}")
    console.print(
        "Next: `make venv` (the new workspace member), `make up`, and its tests: "
        f"cd {folder.relative_to(REPO_ROOT)} && ../../.venv/bin/pytest -q",
        markup=False,
    )


@app.command()
def pki(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Folder [default: the data folder's pki/]")
    ] = None,
) -> None:
    """
    Create (once) the development CA, a gRPC certificate and an event signing key per service:
    what `lkern up` uses, and what the compose stack mounts (LKERN_PKI_DIR).
    """
    target = directory or StackSettings().data_dir / "pki"
    DevPki(target).ensure(service.name for service in SERVICES)
    console.print(f"[green]✓[/] Development CA, certificates and event keys in {target}")


def _scrape(client: httpx.Client, url: str) -> Scrape | None:
    try:
        response = client.get(f"{url}/metrics")
    except httpx.HTTPError:
        return None
    return Scrape.parse(response.text) if response.status_code == 200 else None


def _ready_state(client: httpx.Client, url: str) -> str:
    try:
        response = client.get(f"{url}/ready")
    except httpx.HTTPError:
        return "not running"
    return "ready" if response.status_code == 200 else f"not ready ({response.status_code})"


def status_table(settings: StackSettings, interval: float) -> tuple[Table, bool]:
    """
    Each service: where it answers, whether it is ready, and its live figures over
    ``interval`` seconds (two scrapes of /metrics: lkern_devstack.metrics_view).
    """
    services = present_services()
    urls = [f"http://{settings.host}:{service.http_port(settings)}" for service in services]
    table = Table(title="L-KERN v4 local stack status", title_justify="left")
    table.add_column("")
    for service in services:
        table.add_column(service.name)
    with httpx.Client(timeout=2.0) as client:
        first = [_scrape(client, url) for url in urls]
        time.sleep(interval)
        second = [_scrape(client, url) for url in urls]
        states = [_ready_state(client, url) for url in urls]
    table.add_row("REST", *urls)
    table.add_row("ready", *states)
    columns = [
        dict(figures(before, after, interval)) if before and after else {}
        for before, after in zip(first, second, strict=True)
    ]
    for name in ROWS:
        if any(name in column for column in columns):
            table.add_row(name, *(column.get(name, "–") for column in columns))
    return table, all(state == "ready" for state in states)


@app.command()
def status(
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between the two scrapes the rates span")
    ] = 2.0,
    watch: Annotated[bool, typer.Option(help="Refresh every interval until Ctrl-C")] = False,
) -> None:
    """Show which services answer, and their live figures: rates, p99s, backlog, lag."""
    settings = StackSettings()
    while True:
        table, all_ready = status_table(settings, interval)
        if watch:
            console.clear()
        console.print(table)
        if not watch:
            raise typer.Exit(0 if all_ready else 1)


@app.command()
def resync(
    service: Annotated[str, typer.Argument(help="orders, or a full name")],
    data_dir: Annotated[Path | None, typer.Option(help="Data folder [env LKERN_DATA_DIR]")] = None,
) -> None:
    """
    Rebuild a running service's read models from their sources (orders: its contacts read model
    from contacts), under the same version guard as events. Authenticated: a token of the
    stack's development issuer with only the scope the route needs.
    """
    settings = StackSettings.model_validate({"data_dir": data_dir} if data_dir else {})
    try:
        (definition,) = present_services(service)
    except StackError as error:
        console.print(f"[bold red]{error}[/]")
        raise typer.Exit(2) from None
    if definition.name not in RESYNC_ROUTES:
        console.print(f"[bold red]{definition.name} keeps no read model to resync.[/]")
        raise typer.Exit(2)
    path, scope = RESYNC_ROUTES[definition.name]
    url = f"http://{settings.host}:{definition.http_port(settings)}{path}"
    bearer = dev_auth(settings.data_dir).mint(scopes=[scope], subject="lkern-resync")
    try:
        response = httpx.post(
            url, headers={"Authorization": f"Bearer {bearer}"}, timeout=RESYNC_TIMEOUT_S
        )
    except httpx.HTTPError as error:
        console.print(f"[bold red]{definition.name} did not answer at {url}:[/] {error}")
        raise typer.Exit(1) from None
    if response.status_code != 200:
        console.print(f"[bold red]Resync failed ({response.status_code}):[/] {response.text}")
        raise typer.Exit(1)
    done = response.json()
    console.print(
        f"[green]✓[/] {definition.name} resynced: {done['contacts']} contacts read, "
        f"{done['changed']} rows changed, {done['deleted']} marked deleted, in {done['seconds']} s"
    )


@app.command()
def token(
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", "-s", help="A scope to grant (repeat it); default: every scope"),
    ] = None,
    subject: Annotated[
        str, typer.Option(help="Who the token speaks for (recorded as created_by / updated_by)")
    ] = DEFAULT_SUBJECT,
    ttl: Annotated[str, typer.Option(help="Lifetime: 900, 15m, 12h, 7d")] = "12h",
    data_dir: Annotated[Path | None, typer.Option(help="Data folder [env LKERN_DATA_DIR]")] = None,
) -> None:
    """
    Print an access token signed with the local stack's development key (made on first use),
    for curl (``Authorization: Bearer …``) and the Swagger UI's Authorize button.
    """
    settings = StackSettings.model_validate({"data_dir": data_dir} if data_dir else {})
    unknown = sorted(set(scope or []) - set(STACK_SCOPES))
    try:
        seconds = parse_ttl(ttl)
    except ValueError as error:
        console.print(f"[bold red]{error}[/]")
        raise typer.Exit(2) from None
    if unknown:
        console.print(
            f"[bold red]Unknown scope {', '.join(unknown)}[/]; "
            f"the scopes: {', '.join(STACK_SCOPES)}"
        )
        raise typer.Exit(2)
    minted = dev_auth(settings.data_dir).mint(
        scopes=scope or STACK_SCOPES, subject=subject, ttl_seconds=seconds
    )
    console.file.write(minted + "\n")


@app.command(
    "with-test-postgres",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def with_test_postgres(
    command: Annotated[list[str], typer.Argument(help="The command to run (after --)")],
) -> None:
    """
    Run a command (e.g. the test suites) with TEST_POSTGRES_URL set: unless it is set already,
    a throw-away PostgreSQL on a free port, stopped and deleted after the command however it
    ends (Ctrl-C and SIGTERM are passed on to the command first). Exits with its exit code.
    """
    raise typer.Exit(run_with_test_postgres(command, announce=console.print))


# === MAIN ===
def main() -> None:
    """Entry point of the `lkern` console script."""
    app()


if __name__ == "__main__":
    main()
