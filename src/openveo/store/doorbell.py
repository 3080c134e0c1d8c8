"""Instant wake-ups between processes on one host: the API rings workers when a job is queued or
canceled, workers ring the API when a job moves. Each listener owns a Unix datagram socket in a run
directory; ringing sends one byte to every socket of a role. Everyone also polls the database on a
slow timer, so a missed ring only costs latency, never correctness (PostgreSQL deployments will use
LISTEN/NOTIFY for the same role across hosts).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import socket
import tempfile
from pathlib import Path

_MAX_SOCKET_PATH = 100  # sockaddr_un holds 108 bytes


def run_dir(data_dir: Path) -> Path:
    """Where the sockets live: DATA_DIR/run, or a short path in /tmp when that would be too long."""
    preferred = data_dir / "run"
    if len(str(preferred)) + 40 <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"openveo-{digest}"


class Doorbell:
    """A listening socket for `role`, plus `ring(other_role)`."""

    def __init__(self, directory: Path, role: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{role}-{os.getpid()}-{os.urandom(3).hex()}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> bool:
        """Consume pending rings; True if there were any."""
        rung = False
        while True:
            try:
                self.sock.recv(64)
                rung = True
            except BlockingIOError:
                return rung

    def wait(self, timeout: float) -> bool:
        """Block until rung or `timeout` seconds pass."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return self.drain() if ready else False

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def ring(directory: Path, role: str) -> None:
    """Wake every listener of `role`; sockets whose owner died are removed on the way."""
    if not directory.is_dir():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for path in directory.glob(f"{role}-*.sock"):
            try:
                sender.sendto(b"!", str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            except (BlockingIOError, OSError):
                pass  # its queue is full: it has rings waiting already
