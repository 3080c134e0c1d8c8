"""A local HTTP listener that records every request it gets: the inside of a deployment, as a
server-side request forgery would reach it. Tests that must not reach it assert it saw nothing."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class Listener:
    """Answers every request with `status`, `body` and, when given, a redirect to `location`."""

    def __init__(
        self, host: str = "127.0.0.1", *, status: int = 200, body: bytes = b"ok", location: str | None = None
    ) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers (lowercase)
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                listener.requests.append((self.command, self.path, headers))
                self.send_response(status)
                if location:
                    self.send_header("location", location)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *_args: object) -> None:
                pass

        server_class = _Server6 if ":" in host else _Server
        self.http = server_class((host, 0), Handler)
        self.host = host
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, host: str | None = None, path: str = "/image.png") -> str:
        """This listener's URL, with its host spelled as the test likes."""
        host = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False
