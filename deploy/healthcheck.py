"""
================================================================
FILE: healthcheck.py
PATH: /deploy/healthcheck.py
DESCRIPTION: Container health check of a service: exit 0 when its /ready answers 200 (stdlib only)
VERSION: v1.0.0
UPDATED: 2026-11-26 12:00:00
================================================================

Copied into every service image as /opt/lkern/healthcheck.py and run by the image's
HEALTHCHECK (and the compose file's): `python /opt/lkern/healthcheck.py [PATH]`.

It calls http://127.0.0.1:$HTTP_PORT/ready (PATH, default /ready) and exits 0 on HTTP 200, 1
otherwise: /ready answers 503 while a dependency (the database) is not usable, so a container
is healthy only when it can serve. `/health` (liveness: the process answers) can be passed as
PATH where an orchestrator needs a liveness probe instead. Proxy variables are ignored: the
call never leaves the container. The reason of a failure goes to stderr, which Docker keeps in
`docker inspect --format '{{json .State.Health}}' <container>`.
"""

# === IMPORTS ===
import os
import sys
import urllib.error
import urllib.request

# === CONSTANTS ===
DEFAULT_PATH = "/ready"
TIMEOUT_SECONDS = 4.0  # below the HEALTHCHECK --timeout (5 s)
MAX_BODY_CHARS = 2000


# === CHECK ===
def check(port: str, path: str) -> int:
    """0 when GET http://127.0.0.1:<port><path> answers 200, else 1 (reason on stderr)."""
    url = f"http://127.0.0.1:{port}{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
            body = response.read(MAX_BODY_CHARS).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # 503 from /ready: the body says which check failed
        body = exc.read(MAX_BODY_CHARS).decode("utf-8", "replace")
        sys.stderr.write(f"unhealthy: {url} answered {exc.code}: {body}\n")
        return 1
    except (OSError, ValueError) as exc:  # refused, timed out, bad port
        sys.stderr.write(f"unhealthy: {url}: {exc}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"unhealthy: {url} answered {status}: {body}\n")
        return 1
    return 0


# === MAIN ===
def main(argv: list[str]) -> int:
    """Check the service of this container (HTTP_PORT from its environment)."""
    port = os.environ.get("HTTP_PORT", "").strip()
    if not port:
        sys.stderr.write("unhealthy: HTTP_PORT is not set\n")
        return 1
    path = argv[1] if len(argv) > 1 else DEFAULT_PATH
    return check(port, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
