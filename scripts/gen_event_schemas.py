"""
================================================================
FILE: gen_event_schemas.py
PATH: /scripts/gen_event_schemas.py
DESCRIPTION: Regenerate (or --check) the committed JSON Schema of every event contract
VERSION: v1.0.0
UPDATED: 2026-12-02 06:00:00
================================================================

Usage (from the repository root):
    .venv/bin/python scripts/gen_event_schemas.py            # (re)write the files
    .venv/bin/python scripts/gen_event_schemas.py --check    # exit 1 if one is out of date

Writes libs/lkern-common/src/lkern_common/contracts/schemas/<topic>.v<version>.json from the
models in lkern_common.contracts (docs/events.md, "Changing a contract").
"""

# === IMPORTS ===
import argparse
import logging
import sys

from lkern_common.contracts.json_schemas import SCHEMAS_DIR, stale_schema_files, write_schemas

# === LOGGING ===
logger = logging.getLogger("gen_event_schemas")


# === MAIN ===
def main() -> int:
    """Write the schemas, or with --check report the stale ones (exit 1)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report out-of-date files")
    arguments = parser.parse_args()
    if arguments.check:
        stale = stale_schema_files()
        for name in stale:
            logger.error("out of date: %s (run make event-schemas)", SCHEMAS_DIR / name)
        return 1 if stale else 0
    for name in write_schemas():
        logger.info("wrote %s", SCHEMAS_DIR / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
