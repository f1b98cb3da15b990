"""
================================================================
FILE: test_deploy_dockerfiles.py
PATH: /tests/deploy/test_deploy_dockerfiles.py
DESCRIPTION: The services' Dockerfile (parsed by BuildKit's parser) and the build context it sees
VERSION: v1.1.0
UPDATED: 2026-12-02 06:00:00
================================================================
"""

# === IMPORTS ===
from typing import Any

import pytest
from conftest import SERVICES
from deploy_support import (
    DOCKERFILE,
    SERVICES_DIR,
    Stage,
    context_entries,
    parse_dockerfile,
    workspace_libraries,
)

# === CONSTANTS ===
BASE_IMAGE = "python:3.11-slim"
# What the runtime stage must hold: the service's folder as it runs in development.
SERVICE_PATHS = ("app", "alembic", "alembic.ini", "proto", "pyproject.toml")


# === HELPERS ===
def run_lines(stage: Stage) -> str:
    return "\n".join(" ".join(command.value) for command in stage.all("RUN"))


def copy_sources(stage: Stage) -> list[str]:
    return [
        command.value[0]
        for command in stage.all("COPY")
        if not any(flag.startswith("--from") for flag in command.flags)
    ]


# === TESTS ===
@pytest.mark.parametrize("service", sorted(SERVICES))
def test_multi_stage_on_python_311_slim(service: str, dockerfiles: dict[str, list[Stage]]) -> None:
    stages = dockerfiles[service]
    assert len(stages) >= 2
    assert {stage.image for stage in stages} == {BASE_IMAGE}
    builder, runtime = stages[0], stages[-1]
    assert builder.name and runtime.name
    copied_from = [
        flag for command in runtime.all("COPY") for flag in command.flags if "--from" in flag
    ]
    assert copied_from == [f"--from={builder.name}"], "the runtime stage takes the venv only"
    assert not runtime.all("ADD")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_dependencies_come_from_requirements_txt_with_hashes(
    service: str, dockerfiles: dict[str, list[Stage]]
) -> None:
    builder = dockerfiles[service][0]
    assert f"services/{service}/requirements.txt" in copy_sources(builder)
    runs = run_lines(builder)
    assert "--require-hashes --only-binary=:all: --no-deps -r requirements.txt" in runs
    assert "--require-hashes --only-binary=:all: -r requirements-build.txt" in runs
    assert "pip check" in runs


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_workspace_libraries_are_built_from_the_context(
    service: str, dockerfiles: dict[str, list[Stage]]
) -> None:
    builder = dockerfiles[service][0]
    libraries = workspace_libraries(SERVICES_DIR / service / "requirements.txt")
    assert libraries == ["libs/lkern-common"]
    for library in libraries:
        sources = copy_sources(builder)
        assert f"{library}/pyproject.toml" in sources and f"{library}/src" in sources
        assert f"pip wheel --no-deps --no-build-isolation --wheel-dir ./wheels ./{library}" in (
            run_lines(builder)
        )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_runtime_stage_runs_the_service_as_in_development(
    service: str, dockerfiles: dict[str, list[Stage]]
) -> None:
    runtime = dockerfiles[service][-1]
    sources = copy_sources(runtime)
    for path in SERVICE_PATHS:
        assert f"services/{service}/{path}" in sources
    assert runtime.all("WORKDIR")[-1].value == ("/app",)
    cmd = runtime.all("CMD")[-1]
    assert cmd.json and list(cmd.value) == ["python", "-m", "app"]
    env = runtime.env()
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_runs_as_a_non_root_user(service: str, dockerfiles: dict[str, list[Stage]]) -> None:
    runtime = dockerfiles[service][-1]
    users = runtime.all("USER")
    assert users, "no USER: the container would run as root"
    user = users[-1].value[0].split(":")[0]
    assert user not in {"root", "0"}
    commands = list(runtime.commands)
    assert commands.index(users[-1]) < commands.index(runtime.all("CMD")[-1])
    # Nothing runs after the switch that would need root (installing, chown…).
    assert not [c for c in commands[commands.index(users[-1]) :] if c.cmd == "RUN"]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_exposes_both_ports_and_checks_health(
    service: str,
    dockerfiles: dict[str, list[Stage]],
    service_configs: dict[str, Any],
) -> None:
    runtime = dockerfiles[service][-1]
    ports = SERVICES[service]
    exposed = {value for command in runtime.all("EXPOSE") for value in command.value}
    assert exposed == {str(ports["http"]), str(ports["grpc"])}
    # The image's defaults agree with the service's own (Settings) and with EXPOSE.
    defaults = {setting.env: setting.value for setting in service_configs[service].settings}
    env = runtime.env()
    assert env["HTTP_PORT"] == defaults["HTTP_PORT"] == str(ports["http"])
    assert env["GRPC_PORT"] == defaults["GRPC_PORT"] == str(ports["grpc"])
    healthcheck = runtime.all("HEALTHCHECK")
    assert len(healthcheck) == 1
    assert list(healthcheck[0].value) == ["CMD", "python", "/opt/lkern/healthcheck.py"]
    assert any(flag.startswith("--start-period=") for flag in healthcheck[0].flags)
    copies = {command.value[1]: command.value[0] for command in runtime.all("COPY")}
    assert copies["/opt/lkern/healthcheck.py"] == "deploy/healthcheck.py"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_copied_path_is_in_the_build_context(
    service: str, dockerfiles: dict[str, list[Stage]], build_context: set[str]
) -> None:
    for stage in dockerfiles[service]:
        for source in copy_sources(stage):
            entries = context_entries(source, build_context)
            assert entries, f"COPY {source}: .dockerignore leaves it out of the build context"
    app_files = context_entries(f"services/{service}/app", build_context)
    assert f"services/{service}/app/__main__.py" in app_files
    assert f"services/{service}/app/config.py" in app_files


def test_one_dockerfile_serves_every_service() -> None:
    """No service keeps its own copy: deploy/Dockerfile with the service as a build argument."""
    assert not sorted(SERVICES_DIR.glob("*/Dockerfile"))
    stages = parse_dockerfile(DOCKERFILE)
    for stage in stages:
        declared = {command.value[0] for command in stage.all("ARG")}
        assert declared == {"SERVICE", "HTTP_PORT", "GRPC_PORT"}, stage.name


def test_build_context_leaves_out_local_and_bulky_files(build_context: set[str]) -> None:
    for path in build_context:
        parts = path.split("/")
        assert parts[0] in {"deploy", "libs", "services"}, path
        assert "__pycache__" not in parts and not path.endswith(".pyc"), path
        assert "tests" not in parts, path
        assert not parts[-1].startswith(".env"), path
        assert ".mypy_cache" not in parts and ".pytest_cache" not in parts, path


def test_parser_reads_the_stages_in_order() -> None:
    """The helper that the other tests rely on: stages and their instructions, in order."""
    stages = parse_dockerfile(DOCKERFILE, {"SERVICE": "lkms101-contacts"})
    assert [stage.name for stage in stages] == ["builder", "runtime"]
    assert stages[0].commands[0].cmd == "FROM" and stages[1].commands[0].cmd == "FROM"
    assert stages[1].all("CMD") and not stages[0].all("CMD")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_hadolint_style_rules(service: str, dockerfiles: dict[str, list[Stage]]) -> None:
    """A few of hadolint's rules (hadolint itself is neither on PyPI nor in Debian)."""
    for stage in dockerfiles[service]:
        image, _, tag = stage.image.partition(":")
        assert tag and tag != "latest", f"DL3006/DL3007: pin {image} to a version"
        for command in stage.commands:
            if command.cmd == "WORKDIR":
                assert command.value[0].startswith("/"), "DL3000: absolute WORKDIR"
            if command.cmd in {"CMD", "ENTRYPOINT"}:
                assert command.json, "DL3025: JSON form, so that signals reach the process"
            if command.cmd == "RUN":
                text = " ".join(command.value)
                assert "sudo " not in text, "DL3004: no sudo"
                assert not text.startswith("cd ") and "&& cd " not in text, "DL3003: WORKDIR"
                if "pip install" in text:
                    assert stage.env().get("PIP_NO_CACHE_DIR") == "1", "DL3042: no pip cache"
        assert not stage.all("ADD"), "DL3020: COPY, not ADD"
        assert not stage.all("MAINTAINER"), "DL4000: deprecated"
    assert len(dockerfiles[service][-1].all("CMD")) == 1, "DL4003: one CMD"
