"""
================================================================
FILE: gen_requirements.py
PATH: /scripts/gen_requirements.py
DESCRIPTION: Generate (or --check) each service's requirements.txt for its image from uv.lock
VERSION: v1.0.0
UPDATED: 2026-11-26 12:00:00
================================================================

Usage (from the repository root):
    .venv/bin/python scripts/gen_requirements.py            # (re)write the files
    .venv/bin/python scripts/gen_requirements.py --check    # exit 1 if one is out of date

Run it after `uv lock` whenever a dependency changes. It writes, with `uv export --frozen`:

    services/<service>/requirements.txt   the service's third-party packages, exactly the
                                          versions of uv.lock, with every hash (for
                                          `pip install --require-hashes`), no dev packages
    deploy/requirements-build.txt         the build backend of the workspace libraries
                                          (group `docker-build` of the root pyproject.toml)

Workspace libraries (libs/lkern-common) are not in requirements.txt: pip cannot check hashes of
a local folder. Each service's file names them on a `# workspace:` line; its Dockerfile copies
them from the build context (the repository root) and builds their wheels with the locked
build backend, installed from deploy/requirements-build.txt.
"""

# === IMPORTS ===
import argparse
import logging
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

# === LOGGING ===
logger = logging.getLogger("gen_requirements")

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = REPO_ROOT / "services"
BUILD_REQUIREMENTS = REPO_ROOT / "deploy" / "requirements-build.txt"
BUILD_GROUP = "docker-build"
WORKSPACE_MARKER = "# workspace: "
REGENERATE = ".venv/bin/python scripts/gen_requirements.py"


# === TYPES ===
@dataclass(frozen=True)
class ServicePackage:
    """A service of the workspace: its uv package name and folder."""

    name: str
    folder: Path


class ExportError(Exception):
    """uv could not export the lock file, or its output is not fit for an image."""


# === UV ===
def uv_binary() -> str:
    """The uv of the project's environment (pinned in the dev group), else the one on PATH."""
    local = Path(sys.executable).parent / "uv"
    if local.exists():
        return str(local)
    found = shutil.which("uv")
    if found is None:
        raise ExportError("uv not found: run `make venv` (or .venv/bin/uv sync --all-packages)")
    return found


def uv_export(*args: str) -> str:
    """`uv export --frozen --no-header ARGS` from the repository root; its stdout."""
    command = [uv_binary(), "export", "--frozen", "--no-header", "--color", "never", *args]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ExportError(f"{' '.join(command[1:])} failed:\n{result.stderr.strip()}")
    return result.stdout


def _check_hashes(text: str, source: str) -> None:
    """Every requirement pinned with == and hashed: pip's --require-hashes refuses less."""
    for line in text.splitlines():
        if not line or line[0] in " #":
            continue
        if line.startswith("-e ") or "==" not in line or not line.rstrip().endswith("\\"):
            raise ExportError(f"{source}: requirement without a pinned version and hashes: {line}")


# === SERVICES ===
def service_packages() -> list[ServicePackage]:
    """Every service of the workspace (services/*/pyproject.toml), by folder name."""
    services = []
    for pyproject in sorted(SERVICES_DIR.glob("*/pyproject.toml")):
        with pyproject.open("rb") as handle:
            name = tomllib.load(handle)["project"]["name"]
        services.append(ServicePackage(name=name, folder=pyproject.parent))
    return services


def workspace_libraries(service: ServicePackage) -> list[str]:
    """The workspace folders (relative to the root) that the service needs at run time."""
    full = uv_export("--package", service.name, "--no-dev", "--no-emit-project", "--no-hashes")
    return [
        line.split(maxsplit=1)[1].removeprefix("./")
        for line in full.splitlines()
        if line.startswith("-e ./")
    ]


def render_service(service: ServicePackage) -> str:
    """The text of the service's requirements.txt."""
    body = uv_export(
        "--package", service.name, "--no-dev", "--no-emit-project", "--no-emit-workspace"
    )
    _check_hashes(body, f"{service.name}/requirements.txt")
    libraries = workspace_libraries(service)
    header = [
        f"# Third-party packages of {service.name} for its image, pinned with hashes.",
        "# Generated from uv.lock by scripts/gen_requirements.py: do not edit by hand;",
        f"# regenerate with: {REGENERATE}",
        "# Install: pip install --require-hashes --only-binary=:all: --no-deps -r requirements.txt",
        "# The workspace libraries below are built from the build context by the Dockerfile.",
    ]
    header += [f"{WORKSPACE_MARKER}{library}" for library in libraries]
    return "\n".join(header) + "\n" + body


def render_build_requirements() -> str:
    """The text of deploy/requirements-build.txt."""
    body = uv_export("--only-group", BUILD_GROUP, "--no-emit-project", "--no-emit-workspace")
    _check_hashes(body, BUILD_REQUIREMENTS.name)
    header = [
        "# Build backend of the workspace libraries (hatchling), for the images' builder stage.",
        f"# Generated from uv.lock (group {BUILD_GROUP} of pyproject.toml) by",
        f"# scripts/gen_requirements.py: do not edit by hand; regenerate with: {REGENERATE}",
    ]
    return "\n".join(header) + "\n" + body


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {
        service.folder / "requirements.txt": render_service(service)
        for service in service_packages()
    }
    files[BUILD_REQUIREMENTS] = render_build_requirements()
    return files


# === MAIN ===
def main(argv: list[str] | None = None) -> int:
    """Write the files, or with --check report those that are out of date (exit 1)."""
    parser = argparse.ArgumentParser(description="Generate requirements.txt files from uv.lock")
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    try:
        files = outputs()
    except ExportError as exc:
        logger.error("%s", exc)
        return 2
    stale = []
    for path, content in files.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == content:
            continue
        relative = path.relative_to(REPO_ROOT)
        if args.check:
            stale.append(str(relative))
        else:
            path.write_text(content, encoding="utf-8")
            logger.info("wrote %s", relative)
    if stale:
        logger.error("out of date: %s; regenerate with: %s", ", ".join(stale), REGENERATE)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
