"""
================================================================
FILE: test_dev_keys.py
PATH: /tools/lkern-devstack/tests/test_dev_keys.py
DESCRIPTION: The development signing key (made once, kept private) and `lkern token`
VERSION: v1.0.0
UPDATED: 2026-12-02 03:05:00
================================================================
"""

# === IMPORTS ===
import asyncio
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lkern_common.auth import JwksKeys, TokenVerifier
from lkern_common.settings import LOCAL_AUTH_AUDIENCE, LOCAL_AUTH_ISSUER
from lkern_devstack.cli import app
from lkern_devstack.dev_keys import dev_auth, parse_ttl


# === HELPERS ===
def local_verifier(data_dir: Path) -> TokenVerifier:
    """A verifier configured as `lkern up` configures the services."""
    keys = JwksKeys.from_file(data_dir / "auth" / "jwks.json")
    return TokenVerifier(keys, issuer=LOCAL_AUTH_ISSUER, audience=LOCAL_AUTH_AUDIENCE)


# === TESTS ===
def test_the_key_is_made_once_readable_only_by_its_owner_and_kept(tmp_path: Path) -> None:
    first = dev_auth(tmp_path)
    key_file = tmp_path / "auth" / "signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = dev_auth(tmp_path)
    assert again.key.kid == first.key.kid
    assert again.key.private_pem() == first.key.private_pem()
    env = first.service_env()
    assert env["AUTH_JWKS_FILE"] == str((tmp_path / "auth" / "jwks.json").resolve())
    assert (env["AUTH_ISSUER"], env["AUTH_AUDIENCE"]) == (LOCAL_AUTH_ISSUER, LOCAL_AUTH_AUDIENCE)


def test_lkern_token_prints_a_token_the_services_accept(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "token",
            "--data-dir",
            str(tmp_path),
            "--scope",
            "orders:read",
            "--scope",
            "contacts:read",
            "--subject",
            "alice",
            "--ttl",
            "15m",
        ],
    )
    assert result.exit_code == 0, result.output
    principal = asyncio.run(local_verifier(tmp_path).verify(result.output.strip()))
    assert principal.subject == "alice"
    assert principal.scopes == {"orders:read", "contacts:read"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--scope", "contacts:admin"], "Unknown scope contacts:admin"), (["--ttl", "soon"], "soon")],
)
def test_lkern_token_refuses_unknown_scopes_and_durations(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["token", "--data-dir", str(tmp_path), *arguments])
    assert result.exit_code == 2
    assert message in result.output


def test_durations() -> None:
    assert [parse_ttl(text) for text in ("90", "90s", "15m", "12h", "7d")] == [
        90,
        90,
        900,
        43200,
        604800,
    ]
    for bad in ("", "0", "-5m", "12x", "h"):
        with pytest.raises(ValueError):
            parse_ttl(bad)
