"""The request handler the fake HTTP services share: quiet, and answering in JSON or text."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse


class JsonHandler(BaseHTTPRequestHandler):
    """A fake service's handler; ``request_url`` parses the request, ``_send`` answers it."""

    def log_message(self, *args) -> None:
        pass

    def request_url(self) -> tuple[str, dict[str, str]]:
        """The request's path and its query, one value per name."""
        url = urlparse(self.path)
        return url.path, {key: values[0] for key, values in parse_qs(url.query).items()}

    def _send(
        self,
        status: int,
        body: object,
        headers: dict | None = None,
        *,
        kind: str = "application/json",
    ) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
