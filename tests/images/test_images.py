"""
================================================================
FILE: test_images.py
PATH: /tests/images/test_images.py
DESCRIPTION: Both images built with podman, run hardened: migrate, /ready, REST, gRPC, health, stop
VERSION: v1.2.0
UPDATED: 2026-12-02 06:00:00
================================================================

The images are built from the real Dockerfiles (images_support), then the compose stack is
played in its order with podman: migrate job, service, health check, next service; each
container with the compose file's hardening (read-only root, tmpfs /tmp, no capabilities,
no-new-privileges) and the image's own user.

What differs from the compose stack, and only that (HOST_OVERRIDES): the containers use the
host's network, the tests' PostgreSQL instead of lkms501-postgres, the local broker (Tansu)
instead of Apache Kafka (so no idempotent producer, a short fetch wait and PLAINTEXT instead of
SASL), free ports instead of 4101/5101/4102/5102, a JWKS served by the test (JwksServer) as the
identity provider's AUTH_JWKS_URL (tokens of the compose file's AUTH_ISSUER), and the
certificates and keys compose mounts at /run/lkern/pki: a development PKI made for the test
(lkern_devstack.testing.make_dev_pki).
"""

# === IMPORTS ===
import json
from pathlib import Path
from typing import Any

import httpx
from conftest import SERVICES
from deploy_support import image_build_args, parse_dockerfile, service_environment
from images_support import (
    BASE_IMAGE,
    DOCKERFILE,
    Container,
    ContainerSpec,
    Podman,
    hardening_flags,
    run_once,
    start_container,
)

from lkern_devstack.broker import LocalBroker, free_port
from lkern_devstack.testing import JwksServer, TestTokens, make_dev_pki

# === CONSTANTS ===
HEALTHY_WITHIN_S = 90.0  # compose: start_period 30 s + 5 retries x 10 s
STOP_WITHIN_S = 10  # `podman stop` sends SIGKILL after this: exit code 137 instead of 0
IMAGE_USER = "10001:10001"
# The only variables whose compose values cannot work here (see the docstring).
HOST_OVERRIDES = {
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_ENABLE_IDEMPOTENCE",
    "KAFKA_FETCH_MAX_WAIT_MS",
    "KAFKA_SECURITY_PROTOCOL",  # the local broker has no SASL users
    "HTTP_PORT",
    "GRPC_PORT",
    "CONTACTS_GRPC_TARGET",
    "AUTH_JWKS_URL",
}
# Run inside a container: what the image holds and how its service process (PID 1) runs.
LOOK_INSIDE = """
import json, os, pathlib
status = dict(line.split(":", 1) for line in open("/proc/1/status").read().splitlines())
print(json.dumps({
    "app": sorted(os.listdir("/app")),
    "tests": [str(p) for p in pathlib.Path("/app").rglob("tests")],
    "code_owner": os.stat("/app/app").st_uid,
    "healthcheck": os.path.isfile("/opt/lkern/healthcheck.py"),
    "uid": status["Uid"].split(), "gid": status["Gid"].split(),
    "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
    "root_writable": os.access("/", os.W_OK), "tmp_writable": os.access("/tmp", os.W_OK),
}))
"""
# Run inside a container: a mounted file's content, and whether it can be written.
READ_FILE = """
import json, sys
path = sys.argv[1]
try:
    open(path, "a").close()
    writable = True
except OSError:
    writable = False
print(json.dumps({"content": open(path).read(), "writable": writable}))
"""
CA_BUNDLE_HASH = (
    "import hashlib;"
    "print(hashlib.sha256(open('/etc/ssl/certs/ca-certificates.crt', 'rb').read()).hexdigest())"
)


# === HELPERS ===
def look_inside(podman: Podman, spec: ContainerSpec) -> dict[str, Any]:
    result = run_once(podman, spec, ["python", "-c", LOOK_INSIDE])
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def assert_hardened(inside: dict[str, Any], service: str) -> None:
    """The process runs as the image's user, without capabilities or privilege gain, read-only."""
    assert inside["uid"] == ["10001"] * 4 and inside["gid"] == ["10001"] * 4, (service, inside)
    assert inside["cap_eff"] == "0000000000000000", (service, inside)
    assert inside["no_new_privs"] == "1", (service, inside)
    assert not inside["root_writable"] and inside["tmp_writable"], (service, inside)


def migrate(
    podman: Podman, image: str, compose: dict[str, Any], service: str, database_url: str
) -> None:
    """The compose file's migrate job: its command, environment and hardening, same image."""
    job = compose["services"][f"{service}-migrate"]
    env = {**service_environment(compose, f"{service}-migrate"), "DATABASE_URL": database_url}
    spec = ContainerSpec(image=image, flags=hardening_flags(job), env=env)
    result = run_once(podman, spec, job["command"])
    assert result.returncode == 0, f"{service}-migrate failed:\n{result.stderr}"
    assert "Running upgrade" in result.stderr


def service_spec(
    image: str,
    compose: dict[str, Any],
    service: str,
    overrides: dict[str, str],
    files: dict[str, Path],
) -> ContainerSpec:
    assert set(overrides) <= HOST_OVERRIDES
    env = {**service_environment(compose, service), **overrides}
    flags = hardening_flags(compose["services"][service])
    return ContainerSpec(image=image, flags=flags, env=env, files=files)


# === TESTS ===
def test_images_keep_the_dockerfile_settings(
    podman: Podman, images: dict[str, str], compose: dict[str, Any]
) -> None:
    """User, command and HEALTHCHECK survive the build (--format docker keeps HEALTHCHECK)."""
    for service, image in images.items():
        runtime = parse_dockerfile(DOCKERFILE, image_build_args(compose, service))[-1]
        inspected = podman.inspect("image", image)
        assert inspected["Config"]["User"] == IMAGE_USER == runtime.all("USER")[-1].value[0]
        assert inspected["Config"]["Cmd"] == list(runtime.all("CMD")[-1].value)
        assert inspected["Config"]["WorkingDir"] == "/app"
        healthcheck = inspected.get("Healthcheck") or {}
        assert healthcheck.get("Test") == list(runtime.all("HEALTHCHECK")[-1].value), service


def test_images_contain_only_what_the_dockerfile_copies(
    podman: Podman, images: dict[str, str], compose: dict[str, Any]
) -> None:
    """The service folder without tests, code owned by root, nothing of the build machine."""
    base_bundle = run_once(
        podman, ContainerSpec(image=BASE_IMAGE), ["python", "-c", CA_BUNDLE_HASH]
    )
    for service, image in images.items():
        flags = hardening_flags(compose["services"][service])
        inside = look_inside(podman, ContainerSpec(image=image, flags=flags))
        assert inside["app"] == ["alembic", "alembic.ini", "app", "proto", "pyproject.toml"], (
            service
        )
        assert inside["tests"] == [], service
        assert inside["code_owner"] == 0 and inside["healthcheck"], service
        # The host's CA bundle was mounted for the build's downloads only.
        bundle = run_once(podman, ContainerSpec(image=image), ["python", "-c", CA_BUNDLE_HASH])
        assert bundle.stdout == base_bundle.stdout != "", service
        assert_hardened(inside, service)


def test_files_reach_the_container_read_only(
    podman: Podman, images: dict[str, str], compose: dict[str, Any], tmp_path: Path
) -> None:
    """Files and folders for settings (keys, certificates): the image's user reads them even
    when they are 0600 on the host, and cannot change them."""
    key = tmp_path / "service.key"
    key.write_text("not really a key\n", encoding="utf-8")
    pki = tmp_path / "pki"
    (pki / "events").mkdir(parents=True)
    (pki / "events" / "service.jwk.json").write_text("{}", encoding="utf-8")
    for path in (key, pki / "events" / "service.jwk.json"):
        path.chmod(0o600)
    service = "lkms101-contacts"
    spec = ContainerSpec(
        image=images[service],
        flags=hardening_flags(compose["services"][service]),
        files={"/run/lkern/service.key": key, "/run/lkern/pki": pki},
    )
    for path, content in [
        ("/run/lkern/service.key", "not really a key\n"),
        ("/run/lkern/pki/events/service.jwk.json", "{}"),
    ]:
        result = run_once(podman, spec, ["python", "-c", READ_FILE, path])
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"content": content, "writable": False}


def test_the_stack_runs_from_the_images(
    podman: Podman,
    images: dict[str, str],
    compose: dict[str, Any],
    broker: LocalBroker,
    databases: dict[str, str],
    tmp_path: Path,
) -> None:
    containers: dict[str, Container] = {}
    ports: dict[str, dict[str, int]] = {}
    # The identity provider: tokens of the compose file's issuer, its JWKS served over HTTP.
    issuer = service_environment(compose, "lkms101-contacts")["AUTH_ISSUER"]
    tokens = TestTokens(tmp_path, issuer=issuer)
    jwks = JwksServer(tokens.keys).__enter__()
    # What compose mounts from LKERN_PKI_DIR: gRPC certificates and event signing keys.
    pki = {"/run/lkern/pki": make_dev_pki(tmp_path / "pki").directory}
    try:
        for service in SERVICES:
            ports[service] = {"http": free_port(), "grpc": free_port()}
            overrides = {
                "DATABASE_URL": databases[service],
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": "false",
                "KAFKA_FETCH_MAX_WAIT_MS": "100",
                "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
                "HTTP_PORT": str(ports[service]["http"]),
                "GRPC_PORT": str(ports[service]["grpc"]),
                "AUTH_JWKS_URL": jwks.url,
            }
            if service == "lkms102-orders":
                grpc = ports["lkms101-contacts"]["grpc"]
                overrides["CONTACTS_GRPC_TARGET"] = f"127.0.0.1:{grpc}"

            # 1. The migrate job; 2. the service, healthy (its image's own HEALTHCHECK, run by
            # podman) before the next one starts, as compose's depends_on conditions.
            migrate(podman, images[service], compose, service, databases[service])
            spec = service_spec(images[service], compose, service, overrides, pki)
            containers[service] = start_container(podman, service, spec)
            containers[service].wait_healthy(HEALTHY_WITHIN_S)

        http = {service: f"http://127.0.0.1:{ports[service]['http']}" for service in SERVICES}
        with httpx.Client(timeout=10, headers=tokens.bearer()) as client:
            for service in SERVICES:
                ready = client.get(f"{http[service]}/ready")
                assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
            assert httpx.get(f"{http['lkms101-contacts']}/api/v1/contacts/").status_code == 401
            created = client.post(
                f"{http['lkms101-contacts']}/api/v1/contacts/",
                json={"name": "Image Test", "email": "image.test@example.com"},
            )
            assert created.status_code == 201, created.text
            contact_id = created.json()["id"]
            # Orders asks contacts over gRPC (CONTACTS_GRPC_TARGET) whether the contact exists.
            order = client.post(
                f"{http['lkms102-orders']}/api/v1/orders/",
                json={
                    "contact_id": contact_id,
                    "lines": [{"description": "Widget", "quantity": "2", "unit_price": "9.99"}],
                },
            )
            assert order.status_code == 201, order.text
            unknown = client.post(
                f"{http['lkms102-orders']}/api/v1/orders/",
                json={
                    "contact_id": contact_id + 1000,
                    "lines": [{"description": "Widget", "quantity": "1", "unit_price": "1"}],
                },
            )
            assert unknown.status_code == 400, unknown.text

        for service, container in containers.items():
            health = container.healthcheck()
            assert health.returncode == 0, f"{service}: {health.stdout}{health.stderr}"
            inside = container.exec("python", "-c", LOOK_INSIDE)
            assert inside.returncode == 0, inside.stderr
            assert_hardened(json.loads(inside.stdout), service)

        # 3. `podman stop` in reverse order: SIGTERM, a clean exit (0) before the SIGKILL.
        for service in reversed(SERVICES):
            code = containers[service].stop(STOP_WITHIN_S)
            logs = containers[service].logs()
            assert code == 0 and "Application shutdown complete" in logs, (
                f"{service} did not stop cleanly on SIGTERM within {STOP_WITHIN_S} s "
                f"(exit code {code}):\n{logs}"
            )
    finally:
        for container in containers.values():
            container.remove()
        jwks.__exit__()


def test_healthcheck_fails_while_nothing_answers(podman: Podman, images: dict[str, str]) -> None:
    """The image's HEALTHCHECK command reports unhealthy (exit 1, reason on stderr)."""
    image = images["lkms101-contacts"]
    command = podman.inspect("image", image)["Healthcheck"]["Test"][1:]  # after "CMD"
    port = str(free_port())
    result = run_once(podman, ContainerSpec(image=image, env={"HTTP_PORT": port}), command)
    assert result.returncode == 1
    assert f"unhealthy: http://127.0.0.1:{port}/ready" in result.stderr
