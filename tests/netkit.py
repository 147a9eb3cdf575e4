"""Small network helpers shared by the tests that start real servers (browser, worker, reliability)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port that is free right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
