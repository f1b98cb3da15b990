"""
================================================================
FILE: deploy_support.py
PATH: /tests/deploy/deploy_support.py
DESCRIPTION: Deployment test helpers: compose, Dockerfile and context readers, image emulation
VERSION: v1.0.0
UPDATED: 2026-11-26 12:00:00
================================================================

Docker cannot run on the development and CI machines. What the tests can do instead:

- read the compose file (PyYAML), the Dockerfiles (the `dockerfile` package: BuildKit's own
  parser) and the build context (docker-py's .dockerignore implementation);
- emulate an image: install the service's requirements.txt into a fresh virtualenv exactly as
  the builder stage does (hash-checked, wheels only, no dependencies resolved), build the
  shared library's wheel with the locked build backend, lay out the files that the runtime
  stage COPYs (taken from the Dockerfile and only from the build context that .dockerignore
  lets through), and run the image's CMD and HEALTHCHECK with the image's ENV and the compose
  file's environment, in a clean environment. What the emulation does not cover (the base
  image, the user, the OS packages) is checked statically.
"""

# === IMPORTS ===
import json
import os
import re
import shutil
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
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
BUILD_REQUIREMENTS = REPO_ROOT / "deploy" / "requirements-build.txt"
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


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, parsed by BuildKit's parser."""
    stages: list[tuple[str, str, list[dockerfile.Command]]] = []
    for command in dockerfile.parse_file(str(path)):
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


# === IMAGE EMULATION ===
@dataclass
class EmulatedImage:
    """A service image laid out on disk: run its commands with ``command()`` and ``env()``."""

    service: str
    root: Path  # stands for the image's /
    venv: Path  # stands for /opt/venv
    workdir: Path
    image_env: dict[str, str]
    cmd: list[str]
    healthcheck: list[str]

    def command(self, argv: list[str]) -> list[str]:
        """An image command with its executable taken from the venv and absolute paths mapped."""
        program, *args = argv
        mapped = [str(self.venv / "bin" / program)]
        for arg in args:
            mapped.append(str(self.root / arg.lstrip("/")) if arg.startswith("/") else arg)
        return mapped

    def env(self, overrides: dict[str, str]) -> dict[str, str]:
        """A container's environment: nothing from the host but PATH, then ENV, then compose's."""
        env = {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "HOME": str(self.root)}
        env.update({key: value for key, value in self.image_env.items() if key != "PATH"})
        env.update(overrides)
        return env


def _run(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


def uv_binary() -> str:
    """The project's pinned uv."""
    return str(Path(sys.executable).parent / "uv")


def _copy_from_context(source: str, destination: Path, context: set[str]) -> None:
    """COPY source dest: a file to dest, a folder's content into dest (only context files)."""
    entries = context_entries(source, context)
    if not entries:
        raise AssertionError(f"COPY {source}: not in the build context (.dockerignore?)")
    for entry in entries:
        relative = Path(entry).relative_to(source) if entry != source else None
        target = destination / relative if relative is not None else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / entry, target)


def emulate_image(service: str, work: Path, context: set[str]) -> EmulatedImage:
    """Build ``service``'s image as files under ``work`` (see the module docstring)."""
    stages = parse_dockerfile(SERVICES_DIR / service / "Dockerfile")
    runtime = stages[-1]
    requirements = SERVICES_DIR / service / "requirements.txt"
    uv = uv_binary()

    # Builder: third-party packages exactly as pinned, then the workspace libraries' wheels.
    venv = work / "opt" / "venv"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = str(venv / "bin" / "python")
    _run([uv, "pip", "install", "--quiet", "--python", python, "--require-hashes",
          "--only-binary", ":all:", "--no-deps", "-r", str(requirements)])  # fmt: skip
    build_env = work / "build-backend"
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(build_env)])
    _run([uv, "pip", "install", "--quiet", "--python", str(build_env / "bin" / "python"),
          "--require-hashes", "--only-binary", ":all:", "-r", str(BUILD_REQUIREMENTS)])  # fmt: skip
    wheels = work / "wheels"
    wheels.mkdir()
    for library in workspace_libraries(requirements):
        source = work / "build" / library
        for copy in stages[0].all("COPY"):
            src, _dest = copy.value
            if src.startswith(library):
                _copy_from_context(src, work / "build" / src, context)
        _run(
            [str(build_env / "bin" / "python"), "-c",
             f"import hatchling.build as b; b.build_wheel({str(wheels)!r})"],
            cwd=source,
        )  # fmt: skip
    _run([uv, "pip", "install", "--quiet", "--python", python, "--no-deps", "--no-index",
          *[str(wheel) for wheel in wheels.glob("*.whl")]])  # fmt: skip
    _run([uv, "pip", "check", "--quiet", "--python", python])

    # Runtime: the files COPY'd from the build context, where the Dockerfile puts them.
    root = work / "image"
    for copy in runtime.all("COPY"):
        if any(flag.startswith("--from") for flag in copy.flags):
            continue
        src, dest = copy.value
        absolute = dest if dest.startswith("/") else f"{runtime.workdir_at(copy)}/{dest}"
        _copy_from_context(src, root / absolute.lstrip("/"), context)
    workdirs = runtime.all("WORKDIR")
    workdir = root / workdirs[-1].value[0].lstrip("/")
    healthcheck = list(runtime.all("HEALTHCHECK")[-1].value)
    return EmulatedImage(
        service=service,
        root=root,
        venv=venv,
        workdir=workdir,
        image_env=runtime.env(),
        cmd=list(runtime.all("CMD")[-1].value),
        healthcheck=healthcheck[1:] if healthcheck[0] == "CMD" else healthcheck,
    )


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
