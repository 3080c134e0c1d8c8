"""Wake-ups between processes: Unix datagram sockets on SQLite, LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import time

from openveo.store.wakeups import Wakeups


def test_a_ring_wakes_every_listener_of_the_role_and_only_them(database, tmp_path):
    wakeups = Wakeups(database, tmp_path)
    workers = [wakeups.listen("worker"), wakeups.listen("worker")]
    api = wakeups.listen("api")
    try:
        time.sleep(0.5)  # PostgreSQL listeners connect in their own threads
        for bell in (*workers, api):
            bell.drain()  # a PostgreSQL listener rings once when it (re)connects
        started = time.monotonic()
        wakeups.ring("worker")
        assert all(bell.wait(5) for bell in workers)
        assert time.monotonic() - started < 2
        assert not api.wait(0.3)
        assert not workers[0].wait(0.1)  # drained: one ring, one wake-up
    finally:
        for bell in (*workers, api):
            bell.close()


def test_ringing_nobody_is_harmless(database, tmp_path):
    Wakeups(database, tmp_path).ring("api")
