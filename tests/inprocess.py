"""The service inside the test process: the ASGI app served by uvicorn on a loopback port (a thread)
and one worker (a thread) running the tiny model, on a real database. Clients and SDKs reach it over
real HTTP, as they reach `openveo serve`, without the seconds a server process takes to start; the
subprocess server (tests/e2e/server.py) is left for what only processes show (signals, crashes,
restarts, a process that must never load torch).

It answers to the same names as the subprocess `Server` (url, data_dir, new_key, job_row), so a
test can run against either."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn

from openveo.api.app import create_app
from openveo.config import Settings
from openveo.engine.engine import Engine
from openveo.service.keys import create_key
from openveo.service.provenance import open_stamp
from openveo.service.runtime import Runtime, open_runtime
from openveo.service.workers import WorkerRegistry
from openveo.worker.delivery import Delivery
from openveo.worker.main import Worker, lora_files
from tests.e2e.server import Deployment, free_port


class LocalServer(Deployment):
    def __init__(
        self,
        data_dir: Path,
        models_root: Path,
        *,
        database_url: str | None = None,
        worker: bool = True,
        **settings: Any,
    ) -> None:
        """`worker=False`: nothing runs the jobs, so what a test queued stays queued (and charged)."""
        self.data_dir = data_dir
        self.with_worker = worker
        self.models_root = models_root
        self.settings = Settings(
            data_dir=data_dir,
            models_dir=models_root,
            device="cpu",
            model="tiny",
            database_url=database_url,
            **settings,
        )
        self.database_url = self.settings.db_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.runtime: Runtime | None = None
        self._http: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []
        self._worker: Worker | None = None

    def start(self) -> LocalServer:
        runtime = self.runtime = open_runtime(self.settings)
        config = uvicorn.Config(
            create_app(self.settings, runtime), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self._http = uvicorn.Server(config)
        targets = [("api", self._http.run)]
        if self.with_worker:
            targets.append(("worker", self._start_worker(runtime)))
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"local-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        while not self._http.started:
            if not self._threads[0].is_alive():
                raise RuntimeError("the in-process API server did not start")
            threading.Event().wait(0.01)
        return self

    def _start_worker(self, runtime: Runtime) -> Callable[[], None]:
        """A worker with the model loaded; what the thread runs."""
        worker = self._worker = Worker(
            self.settings,
            runtime.jobs,
            runtime.blobs,
            Engine(self.settings, runtime.catalog, lora_files=lora_files(self.settings, runtime.blobs)),
            runtime.catalog.routed(),  # every model the protocols send jobs to
            runtime.wakeups.listen("worker"),
            WorkerRegistry(runtime.db),
            Delivery(self.settings.video_crf, open_stamp(self.settings, runtime.db, runtime.secret)),
        )
        worker.announce()
        worker.load()
        return worker.serve_forever

    def stop(self) -> None:
        """Give any running job back (as Ctrl-C does), then stop both threads."""
        if self._worker is not None:
            self._worker.interrupted.set()
        if self._http is not None:
            self._http.should_exit = True
        for thread in self._threads:
            thread.join(60)
        if self._worker is not None:
            self._worker.retire()
            if self._worker.doorbell is not None:
                self._worker.doorbell.close()
        if self.runtime is not None:
            self.runtime.close()

    def new_key(self, credits: float = 10.0, name: str = "test") -> str:
        assert self.runtime is not None
        return create_key(self.runtime.db, name, credits)[1]

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
