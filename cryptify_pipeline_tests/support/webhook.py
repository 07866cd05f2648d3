"""A local incoming webhook as Slack's, for the alert tests."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "SEKRET"  # the webhook URL's secret: in its path and its query, as Slack's and others'


class Webhook:
    """A local incoming webhook as Slack's: JSON in, ``200 ok`` out. ``mode`` makes it hang
    (answer only after ``hang_seconds``), answer with a status code, or, stopped, refuse."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.requests = 0
        self.headers: list[dict[str, str]] = []  # each request's, as received
        self.mode: str | int = "ok"
        self.hang_seconds = 3.0
        self.server = self._serve(0)
        self.port = self.server.server_port

    def _serve(self, port: int) -> ThreadingHTTPServer:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.requests += 1
                hook.headers.append(dict(self.headers))
                if hook.mode == "hang":
                    time.sleep(hook.hang_seconds)  # the client has given up by then
                    return
                status = 200 if hook.mode in ("ok", "slow") else int(hook.mode)
                if hook.mode == "slow":
                    time.sleep(0.6)
                if status == 200:
                    hook.bodies.append(body)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no_service")

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0/B0/{TOKEN}?token={TOKEN}"

    def url_with(self, userinfo: str) -> str:
        """``url`` with ``userinfo@`` before its host."""
        return self.url.replace("://", f"://{userinfo}@", 1)

    def stop(self) -> None:
        """Close the port: connections are refused."""
        self.server.shutdown()
        self.server.server_close()

    def start(self, mode: str | int = "ok") -> None:
        self.mode = mode
        self.server = self._serve(self.port)
