"""A moderation service for tests: a real HTTP server in a thread, standing in for the operator's own
moderation service (which cannot exist here). It flags prompts by marker words and records requests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAG = "flagme"  # answered in OpenAI's moderation shape, flagged for violence
REFUSE = "refuseme"  # answered {"allowed": false, "reason": ...}
BREAK = "breakme"  # answered with HTTP 500


class ModerationServer:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                owner.requests.append({"body": body, "authorization": self.headers.get("authorization")})
                prompt = body.get("input", "")
                if BREAK in prompt:
                    self._answer(500, {"error": "moderation model crashed"})
                elif FLAG in prompt:
                    result = {"flagged": True, "categories": {"violence": True, "hate": False}}
                    self._answer(200, {"results": [result]})
                elif REFUSE in prompt:
                    self._answer(200, {"allowed": False, "reason": "not on this service"})
                else:
                    self._answer(200, {"allowed": True})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/moderate"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
