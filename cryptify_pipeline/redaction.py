"""What an error or a log may show of a URL that may hold credentials.

No Dagster, no database: settings, storage, alerts and the exchange source all use it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(raw: str) -> str:
    """What an error may show of ``raw``: scheme, host and port, with any user:password, path,
    query and fragment replaced by ``***@``, ``/…`` and ``?…``.

    The path goes too: webhook URLs (Slack's among them) carry their token there. Everything
    up to the *last* ``@`` counts as credentials, so a password holding ``/``, ``?`` or ``#``
    is still hidden (over-redacting an ``@`` in a query is the safe mistake).
    """
    scheme, separator, rest = raw.strip().rpartition("://")
    if not separator:
        scheme, rest = "", raw.strip()
    shown = f"{scheme}://" if separator else ""
    if "@" in rest:
        shown += "***@"
        rest = rest.rpartition("@")[2]
    end = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    shown += rest[:end]
    if "/" in rest[end:]:
        shown += "/…"
    if "?" in rest[end:] or "#" in rest[end:]:
        shown += "?…"
    return shown


def redact_urls(text: str) -> str:
    """``text`` with every URL shown as ``redact_url`` shows it: libraries such as ccxt quote
    the URL they failed to reach, password, query key and a token in its path included."""
    return _URL_IN_TEXT.sub(lambda url: redact_url(url[0]), text)


def redact_url_in(text: str, url: str) -> str:
    """``text`` with ``url`` shown redacted and its secret-bearing parts (user, password,
    path, query and its values, fragment) taken out wherever they appear: a server may echo
    the path or key it was sent, and a password may hold what ends a URL in text."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
        secrets = [parts.username or "", parts.password or "", parts.path, parts.query,
                   parts.fragment, *(value for _, value in parse_qsl(parts.query))]  # fmt: skip
    except ValueError:
        secrets = []
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) > 3:  # shorter ones ("/", "v3") are no secret, and everywhere
            text = text.replace(secret, "…")
    return redact_urls(text)
