"""
================================================================
FILE: ports.py
PATH: /libs/lkern-common/src/lkern_common/ports.py
DESCRIPTION: Is a TCP port free? One check for servers, the local stack and its tools
VERSION: v1.0.0
UPDATED: 2026-12-02 06:10:00
================================================================
"""

# === IMPORTS ===
import errno
import socket


# === PORTS ===
def port_is_free(host: str, port: int) -> bool:
    """
    True when nothing listens on ``host:port``, checked by binding it as a server would
    (``SO_REUSEADDR``: a port whose last connection lingers in TIME_WAIT counts as free).
    "Address in use" answers False; any other failure (``host`` is not this machine's, no
    permission) raises the OSError, since nothing could listen there either: the caller says so.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True
