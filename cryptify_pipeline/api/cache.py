"""Recent response bodies, served again only while the rows they were built from are unchanged.

A month of ``/history`` for every model is ~13,000 forecasts: Postgres spends most of the
request formatting them as JSON. The same window is asked for again and again (a dashboard, its
viewers, a bot polling), so each body is kept with a fingerprint of its rows (their count and
the sum of their ``xmin``, the id of the transaction that wrote each row), and every request
first takes that fingerprint again: one cheap query. A partition rewritten, a row added or
removed changes it, so a body is never served for rows that changed since it was built.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class ResponseCache:
    """At most ``max_bytes`` of bodies, the least recently used dropped first."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, fingerprint: Hashable) -> bytes | None:
        """The body kept for ``key`` if it was built from rows with ``fingerprint``."""
        with self._lock:
            kept = self._bodies.get(key)
            if kept is None or kept[0] != fingerprint:
                return None
            self._bodies.move_to_end(key)
            return kept[1]

    def put(self, key: Hashable, fingerprint: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            if key in self._bodies:
                self._bytes -= len(self._bodies.pop(key)[1])
            self._bodies[key] = (fingerprint, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._bodies.popitem(last=False)
                self._bytes -= len(dropped)

    @property
    def size(self) -> tuple[int, int]:
        """(bodies, bytes) kept."""
        with self._lock:
            return len(self._bodies), self._bytes
