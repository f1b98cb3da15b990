"""
================================================================
FILE: images_support.py
PATH: /tests/images/images_support.py
DESCRIPTION: Podman helpers of the image tests: stand-in base image, builds, hardened containers
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================

The service images are built from their real Dockerfiles and run with podman (docs/deploy.md,
"Build and run the images with podman"):

- Docker Hub cannot be reached from our machines, so `python:3.11-slim` is a stand-in made
  from Debian (debootstrap, Debian's python3.11), imported under the official name so that the
  Dockerfiles' FROM lines resolve without a pull. It is made once and kept in podman's storage;
  an image of that name already there (the stand-in of an earlier run, or the real one) is used
  as it is.
- Every podman call reads a containers.conf of the tests (CONTAINERS_CONF) with explicit
  ulimits: podman's defaults are above the hard limits of some machines, and then no
  container, not even a build step, starts.
- Builds trust the host's CA bundle (HTTPS may go through a proxy with its own CA): it is
  mounted over the base image's bundle (same path) for the RUN steps only, so nothing of the
  machine ends up in an image (the tests check it). pip reads that bundle: Debian's pip in the
  stand-in, and the official image's pip through the system trust store.
- `--format docker`: the OCI format has no HEALTHCHECK, podman would drop the images' own.
"""

# === IMPORTS ===
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# === CONSTANTS ===
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO_ROOT / "services"
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"  # every service's (build arguments)
INSTALL_HINT = "apt-get update && apt-get install -y podman debootstrap runc"
# runc, not crun (podman's default on Debian 12): crun 1.8 refuses to start any container on a
# machine with cgroups in hybrid mode (v1 controllers plus a v2 hierarchy), as some VMs have.
OCI_RUNTIME = "runc"

# The stand-in base: the name the Dockerfiles' FROM resolves to, and how it is made.
BASE_IMAGE = "docker.io/library/python:3.11-slim"
STAND_IN_LABEL = "org.lkern.stand-in"
DEBIAN_SUITE = "bookworm"  # python:3.11-slim is built on the current Debian stable
DEBIAN_MIRROR = os.environ.get("LKERN_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# python-is-python3 gives `python`, which the Dockerfiles call, as the official image does.
BASE_PACKAGES = [
    "python3.11",
    "python3-venv",
    "python3-pip",
    "python-is-python3",
    "ca-certificates",
]
# The official image's settings that the Dockerfiles rely on (PATH="/opt/venv/bin:${PATH}").
BASE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
    f"LABEL {STAND_IN_LABEL}=debian-{DEBIAN_SUITE}",
]
# Left out of the stand-in: package caches, and Debian's "externally managed" marker (the
# official image's Python is not Debian's, so its pip installs system-wide).
BASE_TRIM = [
    "var/cache/apt/archives",
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/lib/apt/lists",
    "usr/lib/python3.11/EXTERNALLY-MANAGED",
]

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Below any sensible hard limit, above what the services need.
ULIMIT_WANTED = {"nofile": 65536, "nproc": 4096}
ULIMIT_RESOURCES = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
BUILD_TIMEOUT_S = 1800.0
COMMAND_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.5


# === PODMAN ===
class Podman:
    """The podman command with the tests' containers.conf."""

    def __init__(self, binary: str, config_dir: Path) -> None:
        self.binary = binary
        self.work = config_dir  # containers.conf, files staged for containers
        self.conf = config_dir / "containers.conf"
        self.conf.write_text(containers_conf(), encoding="utf-8")
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = COMMAND_TIMEOUT_S,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``podman ARGS``; ``env`` adds variables to podman's own environment (``-e NAME``)."""
        result = subprocess.run(
            [self.binary, *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def inspect(self, kind: str, name: str) -> dict[str, Any]:
        """``podman <kind> inspect NAME`` (kind: image or container), parsed."""
        data: list[dict[str, Any]] = json.loads(self.run(kind, "inspect", name).stdout)
        return data[0]

    def image_exists(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0


def find_podman() -> str:
    """The podman binary, or an error that says how to install it."""
    binary = shutil.which("podman")
    if binary is None:
        raise RuntimeError(f"podman is not installed: the image tests need it ({INSTALL_HINT})")
    return binary


def containers_conf() -> str:
    """containers.conf with ulimits under this machine's hard limits (both soft and hard)."""
    limits = []
    for name, wanted in ULIMIT_WANTED.items():
        hard = resource.getrlimit(ULIMIT_RESOURCES[name])[1]
        value = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        limits.append(f'"{name}={value}:{value}"')
    runtime = shutil.which(OCI_RUNTIME)
    if runtime is None:
        raise RuntimeError(
            f"{OCI_RUNTIME} is not installed: the image tests use it ({INSTALL_HINT})"
        )
    return (
        f"[containers]\ndefault_ulimits = [{', '.join(limits)}]\n\n"
        f'[engine]\nruntime = "{OCI_RUNTIME}"\n'
    )


# === STAND-IN BASE IMAGE ===
def ensure_base_image(podman: Podman, work: Path) -> str:
    """
    Make ``python:3.11-slim`` unless podman has it: Debian's minimal base (debootstrap) with
    Debian's Python 3.11, venv and pip. Returns what the base is, for the test report.
    """
    if not podman.image_exists(BASE_IMAGE):
        root = work / "stand-in-root"
        debootstrap(root)
        trim(root)
        import_root(podman, root)
        shutil.rmtree(root)
    labels = podman.inspect("image", BASE_IMAGE)["Config"].get("Labels") or {}
    if STAND_IN_LABEL in labels:
        return f"{BASE_IMAGE}: stand-in made from Debian ({labels[STAND_IN_LABEL]})"
    return f"{BASE_IMAGE}: an image of that name found in podman's storage (not the stand-in)"


def debootstrap(root: Path) -> None:
    binary = shutil.which("debootstrap")
    if binary is None:
        raise RuntimeError(
            f"debootstrap is not installed: the stand-in base needs it ({INSTALL_HINT})"
        )
    command = [
        binary, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
        DEBIAN_SUITE, str(root), DEBIAN_MIRROR,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if result.returncode != 0:
        raise AssertionError(f"debootstrap failed ({result.returncode}):\n{result.stdout[-4000:]}"
                             f"\n{result.stderr[-4000:]}")  # fmt: skip


def trim(root: Path) -> None:
    for relative in BASE_TRIM:
        path = root / relative
        if path.is_dir():
            for child in path.iterdir():
                if child.is_file():
                    child.unlink()
        elif path.exists():
            path.unlink()


def import_root(podman: Podman, root: Path) -> None:
    """The folder as a one-layer image named ``BASE_IMAGE`` (tar made by the host's tar)."""
    with tempfile.NamedTemporaryFile(suffix=".tar", dir=root.parent) as archive:
        subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", archive.name, "."],
            check=True,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        changes = [arg for change in BASE_CHANGES for arg in ("--change", change)]
        podman.run("import", *changes, archive.name, BASE_IMAGE, timeout=BUILD_TIMEOUT_S)


# === BUILD ===
def image_tag(service: str) -> str:
    """The tag `make images` gives the service's image (podman adds localhost/)."""
    return f"localhost/lkern/{service}:local"


def build_image(podman: Podman, service: str, build_args: Mapping[str, str]) -> str:
    """
    Build the service's image from deploy/Dockerfile with its build arguments (the compose
    file's: SERVICE, HTTP_PORT, GRPC_PORT), context the repository root.
    """
    tag = image_tag(service)
    arg_flags = [
        flag for name, value in build_args.items() for flag in ("--build-arg", f"{name}={value}")
    ]
    podman.run(
        "build", "--format", "docker", "--pull=never",
        "--file", str(DOCKERFILE), *arg_flags, "--tag", tag,
        "--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro",
        str(REPO_ROOT),
        timeout=BUILD_TIMEOUT_S,
    )  # fmt: skip
    return tag


# === CONTAINERS ===
def hardening_flags(compose_service: Mapping[str, Any]) -> list[str]:
    """The podman flags of a compose service's read_only, tmpfs, cap_drop and security_opt."""
    flags = ["--read-only"] if compose_service.get("read_only") else []
    flags += [f"--tmpfs={path}" for path in compose_service.get("tmpfs", [])]
    flags += [f"--cap-drop={cap}" for cap in compose_service.get("cap_drop", [])]
    flags += [f"--security-opt={option}" for option in compose_service.get("security_opt", [])]
    return flags


@dataclass(frozen=True)
class ContainerSpec:
    """
    What a container gets besides its image: environment variables (passed by name, so values
    never appear on a command line) and files or folders mounted read-only (container path ->
    host path; a copy owned by the image's user, so that a private key's 0600 is no obstacle).
    """

    image: str
    flags: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    files: Mapping[str, Path] | None = None


def run_args(podman: Podman, spec: ContainerSpec) -> list[str]:
    """The ``podman run`` arguments of ``spec``, up to and including the image."""
    args = ["--network=host", *spec.flags]
    args += [arg for name in (spec.env or {}) for arg in ("--env", name)]
    if spec.files:
        staging = Path(tempfile.mkdtemp(prefix="files-", dir=podman.work))
        owner = image_user(podman, spec.image)
        for index, (target, source) in enumerate(spec.files.items()):
            copy = stage_for(source, staging / f"{index}-{source.name}", owner)
            args += ["--volume", f"{copy}:{target}:ro"]
    return [*args, spec.image]


def stage_for(source: Path, copy: Path, owner: tuple[int, int]) -> Path:
    """A copy of a file or folder that only ``owner`` can read (files 0400, folders 0500)."""
    if source.is_dir():
        shutil.copytree(source, copy)
        paths = [copy, *copy.rglob("*")]
    else:
        shutil.copyfile(source, copy)
        paths = [copy]
    for path in paths:
        os.chown(path, *owner)
        path.chmod(0o500 if path.is_dir() else 0o400)
    return copy


def image_user(podman: Podman, image: str) -> tuple[int, int]:
    """The numeric uid and gid of the image's USER (the Dockerfiles set them as numbers)."""
    uid, _, gid = podman.inspect("image", image)["Config"]["User"].partition(":")
    return int(uid), int(gid or uid)


@dataclass
class Container:
    """A detached container (``podman run -d``) of the tests; removed by ``remove()``."""

    podman: Podman
    name: str

    def logs(self, lines: int = 60) -> str:
        result = self.podman.run("logs", "--tail", str(lines), self.name, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.podman.inspect("container", self.name)["State"]
        return state

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's own HEALTHCHECK, run by podman now (exit 0: healthy)."""
        return self.podman.run("healthcheck", "run", self.name, check=False)

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                raise AssertionError(f"{self.name} exited:\n{self.logs()}")
            if self.healthcheck().returncode == 0:
                return
            time.sleep(POLL_INTERVAL_S)
        raise AssertionError(f"{self.name} not healthy within {timeout} s:\n{self.logs()}")

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return self.podman.run("exec", self.name, *command, check=False)

    def stop(self, grace: int) -> int:
        """`podman stop`: SIGTERM, SIGKILL after ``grace`` s. The container's exit code."""
        self.podman.run("stop", "--time", str(grace), self.name, timeout=grace + COMMAND_TIMEOUT_S)
        code: int = self.state()["ExitCode"]
        return code

    def remove(self) -> None:
        self.podman.run("rm", "--force", "--ignore", self.name, check=False)


def start_container(podman: Podman, name: str, spec: ContainerSpec) -> Container:
    """``podman run -d`` on the host's network (the services listen on free ports)."""
    unique = f"lkern-test-{name}-{uuid.uuid4().hex[:8]}"
    podman.run("run", "--detach", "--name", unique, *run_args(podman, spec), env=spec.env)
    return Container(podman=podman, name=unique)


def run_once(
    podman: Podman, spec: ContainerSpec, command: Sequence[str], timeout: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """``podman run --rm`` of a command in the image (a migrate job, a look inside)."""
    return podman.run(
        "run", "--rm", *run_args(podman, spec), *command, env=spec.env, timeout=timeout, check=False
    )
