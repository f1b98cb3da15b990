"""
================================================================
FILE: deploy_support.py
PATH: /tests/deploy/deploy_support.py
DESCRIPTION: Deployment test helpers: compose, Dockerfile and build context readers
VERSION: v1.2.0
UPDATED: 2026-12-02 06:00:00
================================================================

What the deployment tests read without a container engine: the compose file (PyYAML), the
Dockerfiles (the `dockerfile` package: BuildKit's own parser) and the build context (docker-py's
.dockerignore implementation). The images themselves are built and run with podman by
tests/images (`make test-images`), which reuses the compose and Dockerfile readers of this file.
"""

# === IMPORTS ===
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import yaml
from docker.utils.build import exclude_paths

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_ROOT / "scripts"
SERVICES_DIR = REPO_ROOT / "services"
COMPOSE_FILE = REPO_ROOT / "deploy" / "docker-compose.yml"
# The one Dockerfile of every service (the service and its ports are build arguments).
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
WORKSPACE_MARKER = "# workspace: "
# ${NAME} and ${NAME:-default}: the only interpolation forms the compose file uses.
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


# === COMPOSE ===
def load_compose() -> dict[str, Any]:
    """The compose file as YAML (anchors and merge keys resolved by PyYAML)."""
    with COMPOSE_FILE.open(encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    return data


def interpolate(value: object, variables: dict[str, str] | None = None) -> str:
    """A compose value as a string, ${NAME:-default} resolved as compose does (no variables)."""
    variables = variables or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name in variables:
            return variables[name]
        default = match.group("default")
        if default is None:
            raise AssertionError(f"${{{name}}} has no default in the compose file")
        return default

    if isinstance(value, bool):
        raise AssertionError(f"boolean {value!r} in the compose file: quote it ('true')")
    return INTERPOLATION.sub(replace, str(value))


def service_environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    """A compose service's environment, interpolated with the defaults."""
    environment = compose["services"][name].get("environment", {})
    if isinstance(environment, list):  # KEY=VALUE form
        environment = dict(item.split("=", 1) for item in environment)
    return {key: interpolate(value) for key, value in environment.items()}


# === DOCKERFILE ===
@dataclass(frozen=True)
class Stage:
    """One FROM … AS name stage of a Dockerfile and its instructions."""

    image: str
    name: str
    commands: tuple[dockerfile.Command, ...]

    def all(self, cmd: str) -> list[dockerfile.Command]:
        """The stage's instructions of one kind (FROM, COPY, ENV …) in order."""
        return [command for command in self.commands if command.cmd == cmd]

    def env(self) -> dict[str, str]:
        """The stage's ENV pairs (quotes removed)."""
        pairs: dict[str, str] = {}
        for command in self.all("ENV"):
            values = list(command.value)
            for key, value in zip(values[::2], values[1::2], strict=True):
                pairs[key] = value.strip('"')
        return pairs

    def workdir_at(self, command: dockerfile.Command) -> str:
        """The WORKDIR in force at ``command``."""
        workdir = "/"
        for item in self.commands:
            if item is command:
                return workdir
            if item.cmd == "WORKDIR":
                workdir = str(Path(workdir) / item.value[0])
        raise ValueError("command not in this stage")


def _with_build_args(command: dockerfile.Command, args: dict[str, str]) -> dockerfile.Command:
    """``command`` with ``${NAME}`` of each build argument replaced, as the builder does."""

    def substitute(text: str) -> str:
        for name, value in args.items():
            text = text.replace(f"${{{name}}}", value)
        return text

    return command._replace(
        value=tuple(substitute(value) for value in command.value),
        flags=tuple(substitute(flag) for flag in command.flags),
        original=substitute(command.original),
    )


def parse_dockerfile(path: Path, build_args: dict[str, str] | None = None) -> list[Stage]:
    """
    The stages of a Dockerfile, parsed by BuildKit's parser, with ``build_args`` substituted
    (the one Dockerfile of the services is parameterised: SERVICE, HTTP_PORT, GRPC_PORT).
    """
    stages: list[tuple[str, str, list[dockerfile.Command]]] = []
    for parsed in dockerfile.parse_file(str(path)):
        command = _with_build_args(parsed, build_args or {})
        if command.cmd == "FROM":
            words = list(command.value)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append((words[0], name, [command]))
        elif stages:
            stages[-1][2].append(command)
    return [Stage(image, name, tuple(commands)) for image, name, commands in stages]


# === BUILD CONTEXT ===
def build_context_files() -> set[str]:
    """Files of the repository root that .dockerignore sends to the build (relative paths)."""
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    included = exclude_paths(str(REPO_ROOT), patterns)
    return {path for path in included if (REPO_ROOT / path).is_file() and path != ".dockerignore"}


def context_entries(source: str, context: set[str]) -> list[str]:
    """The context files a COPY source names (the file itself or everything under a folder)."""
    source = source.rstrip("/")
    return sorted(path for path in context if path == source or path.startswith(source + "/"))


def workspace_libraries(requirements: Path) -> list[str]:
    """The workspace libraries a requirements.txt names on its `# workspace:` lines."""
    return [
        line.removeprefix(WORKSPACE_MARKER).strip()
        for line in requirements.read_text(encoding="utf-8").splitlines()
        if line.startswith(WORKSPACE_MARKER)
    ]


# === SETTINGS ===
def image_build_args(compose: dict[str, Any], service: str) -> dict[str, str]:
    """The build arguments the compose file gives the service's image (SERVICE and its ports)."""
    args = compose["services"][service]["build"].get("args", {})
    return {key: str(value) for key, value in args.items()}


def settings_from_env(service: str, env: dict[str, str]) -> dict[str, Any]:
    """The service's Settings built from ``env`` alone (child process in the service folder)."""
    code = (
        "import sys; sys.path.insert(0, '.');"
        "from app.config import Settings; print(Settings(_env_file=None).model_dump_json())"
    )
    clean = {"PATH": os.environ.get("PATH", ""), **env}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=SERVICES_DIR / service,
        env=clean,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"{service}: Settings() refused the environment:\n{result.stderr}")
    data: dict[str, Any] = json.loads(result.stdout)
    return data
