"""
================================================================
FILE: json_schemas.py
PATH: /libs/lkern-common/src/lkern_common/contracts/json_schemas.py
DESCRIPTION: The committed JSON Schema of every event contract: render, write, compare
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

One file per event and version, ``schemas/<topic>.v<version>.json``, rendered from the models
(``event_json_schema``). ``make event-schemas`` rewrites them; the library's test
(tests/test_event_contracts.py) fails while a committed file differs from its model, so a
contract change shows up as a diff of these files in review.
"""

# === IMPORTS ===
import json
from pathlib import Path
from typing import Any

from lkern_common.contracts import ALL_EVENTS
from lkern_common.contracts.event import EventContract, event_json_schema

# === CONSTANTS ===
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"


# === RENDER ===
def schema_file_name(contract: type[EventContract]) -> str:
    """``lkern.contacts.created.v1.json``: topic and version (a new version is a new file)."""
    return f"{contract.TOPIC}.v{contract.EVENT_VERSION}.json"


def committed_schema(contract: type[EventContract], folder: Path = SCHEMAS_DIR) -> dict[str, Any]:
    """The committed JSON Schema of ``contract`` (what other teams validate against)."""
    schema: dict[str, Any] = json.loads(
        (folder / schema_file_name(contract)).read_text(encoding="utf-8")
    )
    return schema


def render_schemas() -> dict[str, str]:
    """Every contract's schema as the committed file's text, by file name."""
    return {
        schema_file_name(contract): json.dumps(event_json_schema(contract), indent=2) + "\n"
        for contract in ALL_EVENTS
    }


# === FILES ===
def stale_schema_files(folder: Path = SCHEMAS_DIR) -> list[str]:
    """The files that differ from the models, are missing, or belong to no contract."""
    wanted = render_schemas()
    present = {path.name for path in folder.glob("*.json")}
    stale = [
        name
        for name, text in wanted.items()
        if name not in present or (folder / name).read_text(encoding="utf-8") != text
    ]
    return sorted(stale + sorted(present - set(wanted)))


def write_schemas(folder: Path = SCHEMAS_DIR) -> list[str]:
    """Rewrite the committed schemas from the models (removing orphans); the changed names."""
    changed = stale_schema_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = render_schemas()
    for name in changed:
        path = folder / name
        if name in wanted:
            path.write_text(wanted[name], encoding="utf-8")
        else:
            path.unlink()
    return changed
