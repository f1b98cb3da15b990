"""
================================================================
FILE: wrk.py
PATH: /bench/wrk.py
DESCRIPTION: REST load with wrk (Debian's package) and the Lua scripts in bench/lua
VERSION: v1.1.0
UPDATED: 2026-12-02 06:10:00
================================================================

wrk runs in its own process (two threads) and keeps ``connections`` connections busy: each sends
its next request as soon as the previous answer arrived (closed loop). Its Lua scripts pick
random ids, count every answer that is not 2xx (``response()``) and print one JSON line
(``done()``) with requests, latency percentiles and socket errors.
"""

# === IMPORTS ===
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# === CONSTANTS ===
LUA_DIR = Path(__file__).resolve().parent / "lua"
RESULT_PREFIX = "WRK_RESULT "
TIMEOUT_S = 5  # a request without an answer after this long counts as an error


# === RESULT ===
@dataclass
class WrkResult:
    """One wrk run."""

    scenario: str
    connections: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int  # connect + read + write errors and timeouts
    # CPU the server's processes spent per request (bench.run measures it around the run): on a
    # shared machine the figure that moves least with the load of others.
    cpu_ms_per_request: float = 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


# === TOOL ===
def ensure_wrk() -> str:
    """The wrk binary; installed from Debian's packages when missing and we may (root)."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing it (apt-get install wrk)", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=True,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu)")
    return found


# === RUN ===
def run_wrk(
    scenario: str,
    script: str,
    base_url: str,
    *,
    connections: int,
    seconds: float,
    args: list[str],
    threads: int = 2,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """
    Run ``bench/lua/<script>.lua`` against ``base_url``; ``args`` go to the script's init(),
    ``headers`` on every request (wrk's -H: wrk.format adds them, e.g. the bearer token).
    """
    command = [
        ensure_wrk(),
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        f"{TIMEOUT_S}s",
        *[
            option
            for name, value in (headers or {}).items()
            for option in ("-H", f"{name}: {value}")
        ],
        "-s",
        f"{script}.lua",
        base_url,
        "--",
        *args,
    ]
    result = subprocess.run(
        command, cwd=LUA_DIR, capture_output=True, text=True, check=False, timeout=seconds + 60
    )
    line = next(
        (line for line in result.stdout.splitlines() if line.startswith(RESULT_PREFIX)), None
    )
    if result.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk {scenario} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    data = json.loads(line[len(RESULT_PREFIX) :])
    elapsed = data["duration_us"] / 1e6
    return WrkResult(
        scenario=scenario,
        connections=connections,
        requests=data["requests"],
        seconds=elapsed,
        rps=data["requests"] / elapsed if elapsed else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non2xx=data["non2xx"],
        socket_errors=(
            data["connect_errors"] + data["read_errors"] + data["write_errors"] + data["timeouts"]
        ),
    )
