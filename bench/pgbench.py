"""
================================================================
FILE: pgbench.py
PATH: /bench/pgbench.py
DESCRIPTION: The limits: PostgreSQL's own rate (pgbench) for the work behind each REST figure
VERSION: v1.0.0
UPDATED: 2026-11-26 18:00:00
================================================================

Each script runs the statement the contacts service sends for the request (same columns, same
shape), against the same database on the same machine, with the same number of clients as the
REST run it is compared with. pgbench is PostgreSQL's own client: its rate is what the database
can do when nothing sits in front of it, so "REST rate / pgbench rate" says how much of the
database's capacity a request path keeps.
"""

# === IMPORTS ===
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lkern_devstack.postgres import PostgresError, find_postgres_bindir

# === CONSTANTS ===
CONTACT_COLUMNS = (
    "contacts.id, contacts.name, contacts.email, contacts.phone, contacts.is_active, "
    "contacts.version, contacts.created_at, contacts.updated_at"
)
# Emails of the rows the insert script adds (deleted again after the run).
INSERT_EMAIL_PREFIX = "pgbench-"
SCRIPTS = {
    # GET /api/v1/contacts/{id}
    "pk": (
        "\\set id random(1, :max_id)\n"
        f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE contacts.id = :id;\n"
    ),
    # GET /api/v1/contacts/?skip=…&limit=100: the page (the count is extra work of the API)
    "page": (
        "\\set skip random(0, :max_skip)\n"
        f"SELECT {CONTACT_COLUMNS} FROM contacts ORDER BY contacts.id LIMIT 100 OFFSET :skip;\n"
    ),
    # POST /api/v1/contacts/: one row, one commit (the API also writes the outbox row)
    "insert": (
        "INSERT INTO contacts (name, email, phone) VALUES ('Pgbench Contact', "
        f"'{INSERT_EMAIL_PREFIX}' || gen_random_uuid() || '@example.com', '+421 900 000 000') "
        "RETURNING contacts.id, contacts.is_active, contacts.version, contacts.created_at;\n"
    ),
}
TPS_LINE = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
LATENCY_LINE = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
FAILED_LINE = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


# === RESULT ===
@dataclass
class PgbenchResult:
    """One pgbench run."""

    script: str
    clients: int
    tps: float
    latency_ms: float
    failed: int


# === RUN ===
def pgbench_binary() -> str:
    """pgbench beside the PostgreSQL server binaries the stack uses, else on PATH."""
    try:
        candidate = find_postgres_bindir() / "pgbench"
        if candidate.is_file():
            return str(candidate)
    except PostgresError:
        pass
    found = shutil.which("pgbench")
    if found is None:
        raise RuntimeError(
            "pgbench was not found: install PostgreSQL's client programs "
            "(Debian: apt-get install postgresql-client)"
        )
    return found


def run_pgbench(
    script: str,
    *,
    host: str,
    port: int,
    database: str,
    clients: int,
    seconds: float,
    variables: dict[str, int],
) -> PgbenchResult:
    """Run one of ``SCRIPTS`` for ``seconds`` with ``clients`` connections (prepared statements)."""
    threads = max(1, min(clients, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="lkern-pgbench-") as folder:
        path = Path(folder) / f"{script}.sql"
        path.write_text(SCRIPTS[script])
        args = [
            pgbench_binary(),
            "-h",
            host,
            "-p",
            str(port),
            "-U",
            "postgres",
            "-n",  # no vacuum of pgbench's own tables (we have none)
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(threads),
            "-T",
            str(max(1, round(seconds))),
            "-f",
            str(path),
        ]
        for name, value in variables.items():
            args += ["-D", f"{name}={value}"]
        args.append(database)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        result = subprocess.run(
            args, capture_output=True, text=True, env=environment, check=False, timeout=seconds + 60
        )
    output = result.stdout + result.stderr
    tps = TPS_LINE.search(output)
    if result.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench {script} failed (exit {result.returncode}):\n{output[-2000:]}")
    latency = LATENCY_LINE.search(output)
    failed = FAILED_LINE.search(output)
    return PgbenchResult(
        script=script,
        clients=clients,
        tps=float(tps.group(1)),
        latency_ms=float(latency.group(1)) if latency else 0.0,
        failed=int(failed.group(1)) if failed else 0,
    )
