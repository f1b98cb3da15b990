"""
================================================================
FILE: new_service.py
PATH: /tools/lkern-devstack/src/lkern_devstack/new_service.py
DESCRIPTION: `lkern new-service lkms1NN-<name>`: a complete, working service from templates
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Renders the Jinja2 templates of ``templates/service/`` into ``services/lkms1NN-<name>/``: the
declaration (pyproject.toml [tool.lkern]), settings, an example resource ("items") at
``/api/v1/<name>/`` with CRUD, its Alembic migration (up and down), a proto with a ``GetItem``
RPC and its servicer, the items' events through the outbox, and the tests (test_api, test_grpc,
test_services, test_migrations, conftest). A template's path is rendered too
(``proto/{{ short }}.proto.j2`` → ``proto/inventory.proto``); ``.j2`` is dropped.

Then it runs the generators every service's files come from (each reads the registry):
gRPC code (scripts/gen_grpc.py), ``uv lock`` (the new workspace member), requirements.txt
(scripts/gen_requirements.py), .env.example and docs/configuration.md
(scripts/gen_env_example.py), and the compose file, init-databases.sql, setup-acls.sh and
.dockerignore (scripts/gen_deploy.py). Nothing else needs an edit: ``make up`` starts it,
``make test`` runs its tests, the compose file runs it.
"""

# === IMPORTS ===
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from lkern_common.registry import (
    GRPC_PORT_BASE,
    HTTP_PORT_BASE,
    SERVICE_NAME_PATTERN,
    discover_services,
)

# === CONSTANTS ===
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "service"
TEMPLATE_SUFFIX = ".j2"
# Business services are lkms1NN (2NN: user interfaces, 5NN: infrastructure, L-KERN's map).
FIRST_NUMBER, LAST_NUMBER = 100, 199


# === ERRORS ===
class NewServiceError(ValueError):
    """The service cannot be made; the message says why."""


# === NAME ===
@dataclass(frozen=True)
class NewService:
    """The names and numbers a new service's files are made from."""

    name: str  # lkms103-inventory
    number: int
    short: str  # inventory

    @property
    def context(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "name": self.name,
            "number": self.number,
            "short": self.short,
            "Short": self.short.capitalize(),
            "title": self.short.capitalize(),
            "http_port": HTTP_PORT_BASE + self.number,
            "grpc_port": GRPC_PORT_BASE + self.number,
            "database": self.name.replace("-", "_"),
            "updated": now.strftime("%Y-%m-%d %H:%M:%S"),
            "migration_date": now.strftime("%Y_%m_%d"),
        }


def parse_name(name: str, repo_root: Path) -> NewService:
    """``lkms1NN-<name>`` checked against the pattern and against the existing services."""
    match = SERVICE_NAME_PATTERN.match(name)
    if match is None:
        raise NewServiceError(
            f"{name!r} is not lkms1NN-<name> (<name>: lower-case letters and digits, e.g. "
            "lkms103-inventory)"
        )
    service = NewService(name, int(match["number"]), match["short"])
    if not FIRST_NUMBER <= service.number <= LAST_NUMBER:
        raise NewServiceError(f"{name}: business services are lkms100..lkms199")
    for existing in discover_services(repo_root):
        if existing.number == service.number or existing.short_name == service.short:
            raise NewServiceError(f"{name}: {existing.name} has that number or name already")
    if (repo_root / "services" / name).exists():
        raise NewServiceError(f"services/{name} exists already")
    return service


# === RENDERING ===
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Python, TOML, proto and INI, not HTML
    )


def render_service(service: NewService, target: Path) -> list[Path]:
    """Write every template into ``target``; returns the files written."""
    environment = _environment()
    context = service.context
    written = []
    for template_path in sorted(TEMPLATES_DIR.rglob(f"*{TEMPLATE_SUFFIX}")):
        relative = template_path.relative_to(TEMPLATES_DIR).as_posix()
        output = environment.from_string(relative.removesuffix(TEMPLATE_SUFFIX)).render(context)
        text = environment.get_template(relative).render(context)
        path = target / output
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# === GENERATORS ===
def _tool(name: str) -> str:
    """A tool of this environment (uv, ruff: `make venv` installs them next to python)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise NewServiceError(f"{name} is not installed: run `make venv` first")
    return found


def run_generators(repo_root: Path, service_dir: Path) -> None:
    """
    Format the new service's code (ruff: line lengths depend on its name), then regenerate
    every generated file from the registry (the new service included).
    """
    environment = {**os.environ, "PYTHONPATH": _pythonpath(repo_root)}
    steps = [
        [_tool("ruff"), "format", "--quiet", str(service_dir)],
        [sys.executable, "scripts/gen_grpc.py"],
        [_tool("uv"), "lock"],  # the new workspace member (services/*)
        [sys.executable, "scripts/gen_requirements.py"],
        [sys.executable, "scripts/gen_env_example.py"],
        [sys.executable, "scripts/gen_deploy.py"],
    ]
    for command in steps:
        result = subprocess.run(
            command, cwd=repo_root, env=environment, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise NewServiceError(
                f"{' '.join(Path(part).name for part in command)} failed:\n{result.stderr}"
            )


def _pythonpath(repo_root: Path) -> str:
    """This checkout's library and tools first (a copy of the repository runs its own code)."""
    sources = [repo_root / "libs" / "lkern-common" / "src", repo_root / "tools/lkern-devstack/src"]
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*(str(path) for path in sources), *([existing] if existing else [])])


# === COMMAND ===
def create_service(name: str, repo_root: Path) -> Path:
    """Make ``services/<name>`` and regenerate the generated files; returns its folder."""
    service = parse_name(name, repo_root)
    target = repo_root / "services" / service.name
    render_service(service, target)
    try:
        run_generators(repo_root, target)
    except NewServiceError:
        shutil.rmtree(target, ignore_errors=True)  # no half-made service is left behind
        raise
    return target
