"""Instant wake-ups between processes: the API rings the workers when a job is queued or canceled,
workers ring the API when a job moves. Everyone also re-reads the database on a slow timer, so a
missed ring only costs latency, never correctness.

- SQLite (one host): each listener owns a Unix datagram socket in a run directory; ringing sends one
  byte to every socket of a role.
- PostgreSQL (any number of hosts): `NOTIFY openveo_<role>`; each listener LISTENs in a thread of its
  own, reconnecting after the database restarts.

Either way a listener is a `Bell`: a file descriptor that becomes readable when rung, which both
`select` (workers) and asyncio's `add_reader` (the API) can wait on.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import socket
import tempfile
import threading
from pathlib import Path

from sqlalchemy.engine import make_url

from openveo.store.db import first_line

log = logging.getLogger(__name__)

_MAX_SOCKET_PATH = 100  # sockaddr_un holds 108 bytes


def run_dir(data_dir: Path) -> Path:
    """Where the sockets live: DATA_DIR/run, or a short path in /tmp when that would be too long."""
    preferred = data_dir / "run"
    if len(str(preferred)) + 40 <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"openveo-{digest}"


class Bell:
    """Something that can be rung: readable when it was, `wait()` blocks until it is."""

    sock: socket.socket

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> bool:
        """Consume pending rings; True if there were any."""
        rung = False
        while True:
            try:
                self.sock.recv(64)
                rung = True
            except (BlockingIOError, InterruptedError):
                return rung

    def wait(self, timeout: float) -> bool:
        """Block until rung or `timeout` seconds pass."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return self.drain() if ready else False

    def close(self) -> None:
        self.sock.close()


class Doorbell(Bell):
    """A Unix datagram socket for `role` in the run directory (one host, SQLite)."""

    def __init__(self, directory: Path, role: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{role}-{os.getpid()}-{os.urandom(3).hex()}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    def close(self) -> None:
        super().close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class PostgresBell(Bell):
    """LISTEN openveo_<role> in a thread; each notification (and each reconnect, since notifications
    sent while disconnected are lost) becomes a byte on a socket pair."""

    RECONNECT_S = (0.5, 1, 2, 5)

    def __init__(self, url: str, role: str) -> None:
        self.sock, self._ringer = socket.socketpair()
        self.sock.setblocking(False)
        self._ringer.setblocking(False)
        self._url = url
        self._channel = channel(role)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name=f"listen-{self._channel}", daemon=True)
        self._thread.start()

    def _ring(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._ringer.send(b"!")

    def _listen(self) -> None:
        import psycopg

        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {self._channel}")
                    if failures:
                        log.info("listening on %s again", self._channel)
                    failures = 0
                    self._ring()  # whatever was sent while we were away
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._ring()
            except psycopg.Error as exc:
                delay = self.RECONNECT_S[min(failures, len(self.RECONNECT_S) - 1)]
                if failures == 0:
                    log.warning(
                        "lost the database connection for %s (%s); reconnecting",
                        self._channel,
                        first_line(exc),
                    )
                failures += 1
                self._stop.wait(delay)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        super().close()
        self._ringer.close()


def channel(role: str) -> str:
    return f"openveo_{role}"


class Wakeups:
    """Ringing and listening for one deployment: Unix sockets for SQLite, LISTEN/NOTIFY for PostgreSQL."""

    def __init__(self, db, data_dir: Path) -> None:
        self.db = db
        self.run_dir = run_dir(data_dir)
        parsed = make_url(db.url)
        self._listen_url = (
            None
            if db.is_sqlite
            else parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        )

    def listen(self, role: str) -> Bell:
        if self._listen_url is None:
            return Doorbell(self.run_dir, role)
        return PostgresBell(self._listen_url, role)

    def ring(self, role: str) -> None:
        if self._listen_url is None:
            ring(self.run_dir, role)
            return
        try:
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("SELECT pg_notify(%(channel)s, '')", {"channel": channel(role)})
                conn.commit()
        except Exception as exc:  # a wake-up is best effort: the pollers will see the change anyway
            log.warning("could not notify %s: %s", channel(role), exc)


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
