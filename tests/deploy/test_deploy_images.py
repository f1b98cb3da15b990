"""
================================================================
FILE: test_deploy_images.py
PATH: /tests/deploy/test_deploy_images.py
DESCRIPTION: The images' contents run the stack: migrate jobs, both services, health checks, SIGTERM
VERSION: v1.0.0
UPDATED: 2026-11-26 12:00:00
================================================================

Docker cannot run here, so each image is emulated (deploy_support.emulate_image): only the
packages of its requirements.txt (hash-checked) plus the lkern-common wheel, only the files its
runtime stage COPYs out of the .dockerignore'd build context, only the image's ENV and the
compose file's environment, nothing from the host's environment or the development venv.
The compose stack is then played in its order: migrate job, service, health check, next service.

What differs from the compose stack, and only that (HOST_OVERRIDES): the real PostgreSQL of the
machine instead of lkms501-postgres, the local broker (Tansu) instead of Apache Kafka (so no
idempotent producer and a short fetch wait), free ports instead of 4101/5101/4102/5102, and a
JWKS served by the test (JwksServer) as the identity provider's AUTH_JWKS_URL.
"""

# === IMPORTS ===
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from conftest import SERVICES
from deploy_support import SERVICES_DIR, EmulatedImage, emulate_image, service_environment

from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.testing import JwksServer, TestDatabase, TestTokens, make_dev_pki

# === CONSTANTS ===
START_ORDER = ["lkms101-contacts", "lkms102-orders"]  # as the compose file's depends_on
HEALTHY_WITHIN_S = 90.0  # compose: start_period 30 s + 5 retries x 10 s
STOP_GRACE_S = 30.0  # compose: stop_grace_period
# The only variables whose compose values cannot work on this machine (see the docstring).
HOST_OVERRIDES = {
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_ENABLE_IDEMPOTENCE",
    "KAFKA_FETCH_MAX_WAIT_MS",
    # the local broker speaks PLAINTEXT only (no SASL users, no ACLs)
    "KAFKA_SECURITY_PROTOCOL",
    "HTTP_PORT",
    "AUTH_JWKS_URL",
    "GRPC_PORT",
    "CONTACTS_GRPC_TARGET",
    # the files compose mounts at /run/lkern/pki, made in the test's folder instead
    "GRPC_TLS_CA",
    "GRPC_TLS_CERT",
    "GRPC_TLS_KEY",
    "EVENT_SIGNING_KEY_FILE",
    "EVENT_TRUSTED_JWKS",
}


# === HELPERS ===
@dataclass
class Container:
    """A service process started from an emulated image."""

    image: EmulatedImage
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """The image's HEALTHCHECK command, run as Docker would, inside the container."""
        return subprocess.run(
            self.image.command(self.image.healthcheck),
            cwd=self.image.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.image.service} exited ({self.process.returncode}):\n"
                            f"{self.log_tail()}")  # fmt: skip
            result = self.healthcheck()
            if result.returncode == 0:
                return
            last = result.stderr
            time.sleep(0.5)
        pytest.fail(f"{self.image.service} not healthy in {HEALTHY_WITHIN_S} s: {last}\n"
                    f"{self.log_tail()}")  # fmt: skip

    def stop(self) -> int | None:
        """SIGTERM, as `docker stop`; the exit code, or None when it outlived the grace period."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.log.close()
                return None
        self.log.close()
        return self.process.returncode


def start_container(image: EmulatedImage, env: dict[str, str], logs: Path) -> Container:
    log_path = logs / f"{image.service}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        image.command(image.cmd),
        cwd=image.workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Container(image=image, env=env, process=process, log_path=log_path, log=log)


# === FIXTURES ===
@pytest.fixture(scope="module")
def images(
    tmp_path_factory: pytest.TempPathFactory, build_context: set[str]
) -> dict[str, EmulatedImage]:
    """Both images, emulated from their Dockerfiles and requirements.txt."""
    return {
        service: emulate_image(service, tmp_path_factory.mktemp(service), build_context)
        for service in SERVICES
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(port=free_port(), log_file=log) as running:
        yield running


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """An empty database per service (the migrate jobs create the tables)."""
    created = {service: TestDatabase(SERVICES_DIR / service, "deploy") for service in SERVICES}
    urls = {service: database.create(migrate=False) for service, database in created.items()}
    yield urls
    for database in created.values():
        database.drop()


# === TESTS ===
def test_images_contain_only_what_the_dockerfile_copies(images: dict[str, EmulatedImage]) -> None:
    for service, image in images.items():
        assert sorted(path.name for path in image.workdir.iterdir()) == sorted(
            ["alembic", "alembic.ini", "app", "proto"]
        ), service
        assert not list(image.workdir.rglob("tests")), service
        assert (image.root / "opt" / "lkern" / "healthcheck.py").is_file()
        assert image.cmd == ["python", "-m", "app"]


def test_the_stack_runs_from_the_images(
    images: dict[str, EmulatedImage],
    compose: dict[str, Any],
    broker: LocalBroker,
    databases: dict[str, str],
    tmp_path: Path,
) -> None:
    containers: dict[str, Container] = {}
    pki = make_dev_pki(tmp_path / "pki")
    # The identity provider: tokens of the compose file's issuer, its JWKS served over HTTP.
    compose_env = service_environment(compose, "lkms101-contacts")
    tokens = TestTokens(tmp_path, issuer=compose_env["AUTH_ISSUER"])
    jwks = JwksServer(tokens.keys).__enter__()
    try:
        for service in START_ORDER:
            image = images[service]
            trusted = ["lkms101-contacts"] if service == "lkms102-orders" else []
            overrides = {
                **pki.service_env(service, trusted),
                "DATABASE_URL": databases[service],
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
                "KAFKA_FETCH_MAX_WAIT_MS": "100",
                "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                "HTTP_PORT": str(free_port()),
                "GRPC_PORT": str(free_port()),
                "AUTH_JWKS_URL": jwks.url,
            }
            if service == "lkms102-orders":
                contacts = containers["lkms101-contacts"]
                overrides["CONTACTS_GRPC_TARGET"] = f"127.0.0.1:{contacts.env['GRPC_PORT']}"
            assert set(overrides) <= HOST_OVERRIDES

            # 1. The migrate job: the compose command in the same image, its environment.
            migrate = compose["services"][f"{service}-migrate"]
            migrate_env = service_environment(compose, f"{service}-migrate")
            migrate_env["DATABASE_URL"] = databases[service]
            result = subprocess.run(
                image.command(migrate["command"]),
                cwd=image.workdir,
                env=image.env(migrate_env),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, f"{service}-migrate failed:\n{result.stderr}"
            assert "Running upgrade" in result.stderr

            # 2. The service, once its migrate job completed; healthy before the next starts.
            environment = {**service_environment(compose, service), **overrides}
            container = start_container(image, image.env(environment), tmp_path)
            containers[service] = container
            container.wait_healthy()

        contacts, orders = containers["lkms101-contacts"], containers["lkms102-orders"]
        with httpx.Client(timeout=10, headers=tokens.bearer()) as client:
            assert httpx.get(f"{contacts.http}/api/v1/contacts/").status_code == 401
            created = client.post(
                f"{contacts.http}/api/v1/contacts/",
                json={"name": "Image Test", "email": "image.test@example.com"},
            )
            assert created.status_code == 201, created.text
            contact_id = created.json()["id"]
            # Orders validates the contact over gRPC (CONTACTS_GRPC_TARGET) before it creates.
            order = client.post(
                f"{orders.http}/api/v1/orders/",
                json={
                    "contact_id": contact_id,
                    "lines": [{"description": "Widget", "quantity": "2", "unit_price": "9.99"}],
                },
            )
            assert order.status_code == 201, order.text
            unknown = client.post(
                f"{orders.http}/api/v1/orders/",
                json={
                    "contact_id": contact_id + 1000,
                    "lines": [{"description": "Widget", "quantity": "1", "unit_price": "1"}],
                },
            )
            assert unknown.status_code == 400, unknown.text
            for container in containers.values():
                ready = client.get(f"{container.http}/ready")
                assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    finally:
        # 3. docker stop, in reverse order: SIGTERM and a clean exit within the grace period.
        codes = {service: containers[service].stop() for service in reversed(list(containers))}
        jwks.__exit__()
    for service, code in codes.items():
        # uvicorn finishes the lifespan, then re-raises SIGTERM (Docker shows exit code 143).
        log = containers[service].log_path.read_text(encoding="utf-8", errors="replace")
        assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log, (
            f"{service} did not stop cleanly on SIGTERM within {STOP_GRACE_S} s ({code}):\n"
            f"{containers[service].log_tail()}"
        )


def test_healthcheck_fails_while_nothing_answers(images: dict[str, EmulatedImage]) -> None:
    """The HEALTHCHECK command reports unhealthy (exit 1, reason on stderr) without a service."""
    image = images["lkms101-contacts"]
    port = str(free_port())
    result = subprocess.run(
        image.command(image.healthcheck),
        cwd=image.workdir,
        env=image.env({"HTTP_PORT": port}),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 1
    assert f"unhealthy: http://127.0.0.1:{port}/ready" in result.stderr
