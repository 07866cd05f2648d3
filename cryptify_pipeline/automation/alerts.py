"""Alerts to the webhook, and the ``FailureAlerts`` resource that configures them.

Alerts are posted with a short timeout and retried with backoff until delivered or a bound is
reached, each attempt recorded in their queue: ``run_failures`` for failed runs,
``freshness_alerts`` for assets gone stale or fresh again.

A sensor tick must stay short: the daemon evaluates sensors one after another, so a tick that
waits on a dead webhook delays the forecasts. Each POST waits at most ``timeout_seconds``; a
tick starts no POST that could end after ``tick_budget_seconds``, and stops at the first
failure (the webhook is probably down: the other alerts wait for the next tick).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit, urlunsplit

import adbc_driver_postgresql.dbapi as adbc
from dagster import ConfigurableResource
from pydantic import Field

from cryptify_pipeline.automation.failures import (
    DELIVERED,
    GAVE_UP,
    NOT_CONFIGURED,
    PENDING,
    RunFailure,
    due_alerts,
    record_alert_attempt,
)
from cryptify_pipeline.automation.freshness import due_freshness_alerts, record_freshness_attempt
from cryptify_pipeline.postgres_url import DatabaseUrl
from cryptify_pipeline.redaction import redact_url
from cryptify_pipeline.settings import DEFAULT_ALERT_FIRST_RETRY_SECONDS
from cryptify_pipeline.storage import pg_tables
from cryptify_pipeline.storage.resource import PostgresDatabase

_RESPONSE_BYTES = 65536  # read (and ignore) at most this much of the webhook's answer
_RETRYABLE_CLIENT_ERRORS = (408, 425, 429)


@dataclass(frozen=True)
class AlertPolicy:
    """How long one POST may take, how often and how long an alert is retried.

    With the defaults an alert is tried 20 times: after 30 s, then twice as long each time up
    to an hour between attempts, about 13 hours in all before it is given up.
    """

    timeout_seconds: float = 3.0
    max_attempts: int = 20
    first_retry_seconds: float = DEFAULT_ALERT_FIRST_RETRY_SECONDS
    max_retry_seconds: float = 3600.0
    tick_budget_seconds: float = 6.0
    per_tick: int = 10

    def retry_delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt."""
        seconds = self.first_retry_seconds * 2 ** min(attempts - 1, 30)
        return timedelta(seconds=min(seconds, self.max_retry_seconds))


@dataclass(frozen=True)
class QueuedAlert:
    """An alert due for posting: its key in its queue, what it is about, its JSON body."""

    key: str
    subject: str  # e.g. "run <id>", "freshness of candles"
    body: dict[str, object]
    attempts: int  # made so far


@dataclass(frozen=True)
class AlertQueue:
    """A table of alerts: reading the due ones, storing the outcome of an attempt."""

    due: Callable[[adbc.Connection, str, datetime, int], list[QueuedAlert]]
    record: Callable[[adbc.Connection, str, str, str, int, str | None, datetime | None], None]


def _due_run_failures(
    connection: adbc.Connection, schema: str, now: datetime, limit: int
) -> list[QueuedAlert]:
    return [
        QueuedAlert(p.failure.run_id, f"run {p.failure.run_id}", alert_body(p.failure), p.attempts)
        for p in due_alerts(connection, schema, now, limit)
    ]


def _due_freshness(
    connection: adbc.Connection, schema: str, now: datetime, limit: int
) -> list[QueuedAlert]:
    return [
        QueuedAlert(change.key, f"{change.change} {change.asset}", change.body(), attempts)
        for change, attempts in due_freshness_alerts(connection, schema, now, limit)
    ]


RUN_FAILURES = AlertQueue(_due_run_failures, record_alert_attempt)
FRESHNESS = AlertQueue(_due_freshness, record_freshness_attempt)


@dataclass(frozen=True)
class Attempt:
    """One POST of an alert and where it left the alert."""

    alert: QueuedAlert
    state: str  # DELIVERED, PENDING (retried at next_attempt_at) or GAVE_UP
    attempts: int  # made so far, this one included
    error: str | None
    next_attempt_at: datetime | None

    def __str__(self) -> str:
        run = f"alert for {self.alert.subject}"
        if self.state == DELIVERED:
            return f"{run} posted (attempt {self.attempts})"
        then = f"next attempt at {self.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC" if (
            self.next_attempt_at) else "given up"  # fmt: skip
        return f"{run} not posted (attempt {self.attempts}): {self.error}; {then}"


class DeliveryError(Exception):
    """A POST that did not deliver; ``final`` when retrying cannot help (a 4xx answer)."""

    def __init__(self, reason: str, final: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.final = final


def alert_body(failure: RunFailure) -> dict[str, object]:
    """The JSON posted: the failure, plus a Slack-compatible ``text``."""
    partitions = f" [{failure.partitions}]" if failure.partitions else ""
    return {
        **asdict(failure),
        "failed_at": failure.failed_at.isoformat(),
        "text": f"cryptify: {failure.job_name}{partitions} failed: {failure.message}",
    }


def post_alert(webhook_url: str, body: dict[str, object], timeout_seconds: float) -> None:
    """POST ``body`` as JSON to ``webhook_url``; raises ``DeliveryError`` with a reason that never
    quotes the URL (its path or query may be the webhook's token, its user:password@ the
    credentials, which are sent as HTTP basic auth)."""
    try:
        url, authorization = split_credentials(webhook_url)
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "cryptify-alerts"},
            method="POST",
        )
        if authorization:
            # unredirected: a redirect to another host must not carry the credentials along
            request.add_unredirected_header("Authorization", authorization)
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            response.read(_RESPONSE_BYTES)
    except urllib.error.HTTPError as error:
        final = 400 <= error.code < 500 and error.code not in _RETRYABLE_CLIENT_ERRORS
        raise DeliveryError(f"HTTP {error.code} {error.reason}", final) from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise DeliveryError(_no_answer(timeout_seconds)) from None
        raise DeliveryError(_without(f"cannot connect: {error.reason}", webhook_url)) from None
    except TimeoutError:
        raise DeliveryError(_no_answer(timeout_seconds)) from None
    except (OSError, http.client.HTTPException) as error:
        reason = f"{type(error).__name__}: {error}".rstrip(": ")
        raise DeliveryError(_without(reason, webhook_url)) from None
    except ValueError:
        raise DeliveryError(f"{redact_url(webhook_url)} is not a usable URL", True) from None


def split_credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@``, and the basic ``Authorization`` header they make.

    urllib keeps userinfo in the host name: ``user:pass@127.0.0.1`` went to the resolver (the
    credentials in a DNS query) and was never delivered. Percent-escapes are decoded, as a
    password holding ``@`` or ``:`` must be written escaped; no password is an empty one.
    """
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    credentials = f"{unquote(user)}:{unquote(password)}".encode()
    return urlunsplit(parts._replace(netloc=host)), f"Basic {b64encode(credentials).decode()}"


def deliver_due_alerts(
    database: DatabaseUrl, schema: str, webhook_url: str, policy: AlertPolicy,
    queue: AlertQueue = RUN_FAILURES,
) -> list[Attempt]:  # fmt: skip
    """Post the alerts of ``queue`` whose next attempt is due, within the tick's budget; each
    outcome is committed as soon as it is known."""
    started = time.monotonic()
    with pg_tables.transaction(database) as connection:
        due = queue.due(connection, schema, datetime.now(UTC), policy.per_tick)
    attempts: list[Attempt] = []
    for pending in due:
        if time.monotonic() - started + policy.timeout_seconds > policy.tick_budget_seconds:
            break
        attempt = _attempt(webhook_url, pending, pending.attempts + 1, policy)
        with pg_tables.transaction(database) as connection:
            queue.record(
                connection, schema, attempt.alert.key, attempt.state, attempt.attempts,
                attempt.error, attempt.next_attempt_at,
            )  # fmt: skip
        attempts.append(attempt)
        if attempt.state != DELIVERED:
            break
    return attempts


def _attempt(webhook_url: str, alert: QueuedAlert, number: int, policy: AlertPolicy) -> Attempt:
    try:
        post_alert(webhook_url, alert.body, policy.timeout_seconds)
    except DeliveryError as error:
        if error.final or number >= policy.max_attempts:
            return Attempt(alert, GAVE_UP, number, error.reason, None)
        retry_at = datetime.now(UTC) + policy.retry_delay(number)
        return Attempt(alert, PENDING, number, error.reason, retry_at)
    return Attempt(alert, DELIVERED, number, None, None)


def _no_answer(timeout_seconds: float) -> str:
    return f"no answer within {timeout_seconds:g} s"


def _without(text: str, url: str) -> str:
    """``text`` with ``url`` and its secret-bearing parts taken out."""
    text = text.replace(url, redact_url(url))
    try:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        secrets = [userinfo, *userinfo.split(":"), parts.path, parts.query, parts.fragment]
        secrets += [unquote(secret) for secret in secrets]
    except ValueError:
        secrets = []
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) > 3:
            text = text.replace(secret, "…")
    return text


_ALERTS = AlertPolicy()


class FailureAlerts(ConfigurableResource):
    """Where run failures and stale assets are announced beyond the log and their tables, and
    how hard: each alert is retried with backoff until delivered or ``max_attempts`` is reached."""

    # Its path or query is the webhook's token: definitions.build_resources passes it as an
    # EnvVar, and
    # the UI masks it even when given as a value.
    webhook_url: str | None = Field(
        default=None,
        description="POSTed a JSON body per failed run (Slack-compatible text).",
        json_schema_extra={"dagster__is_secret": True},
    )
    timeout_seconds: float = Field(
        default=_ALERTS.timeout_seconds, description="How long one POST waits for an answer."
    )
    max_attempts: int = Field(
        default=_ALERTS.max_attempts, description="Attempts per alert before it is given up."
    )
    first_retry_seconds: float = Field(
        default=_ALERTS.first_retry_seconds,
        description="Wait after the first failed attempt; doubled after each next one.",
    )
    max_retry_seconds: float = Field(
        default=_ALERTS.max_retry_seconds, description="Longest wait between two attempts."
    )
    tick_budget_seconds: float = Field(
        default=_ALERTS.tick_budget_seconds,
        description="Time a sensor tick may spend posting alerts.",
    )

    def policy(self) -> AlertPolicy:
        return AlertPolicy(
            timeout_seconds=self.timeout_seconds, max_attempts=self.max_attempts,
            first_retry_seconds=self.first_retry_seconds, max_retry_seconds=self.max_retry_seconds,
            tick_budget_seconds=self.tick_budget_seconds,
        )  # fmt: skip

    def state_of_new_alerts(self) -> str:
        """PENDING when there is a webhook to post to, else NOT_CONFIGURED."""
        return PENDING if self.webhook_url else NOT_CONFIGURED

    def deliver_due(
        self, database: PostgresDatabase, queue: AlertQueue = RUN_FAILURES
    ) -> list[Attempt]:
        """Post the alerts of ``queue`` whose next attempt is due (none without a webhook)."""
        if not self.webhook_url:
            return []
        url = database.connection_url()
        return deliver_due_alerts(url, database.schema_name, self.webhook_url, self.policy(), queue)
