"""The old web app's calls from its own origin, in a real browser: a page served from another
port fetches ``/history`` as the old app did, with a header of its own, so the browser first
asks the API by a CORS preflight (OPTIONS) whether that origin may read it."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest

from cryptify_pipeline.ml.models import MODEL_ZOO
from cryptify_pipeline_tests.api.conftest import HORIZONS, LAST_CANDLE
from cryptify_pipeline_tests.support.live_api import live_api

pytestmark = pytest.mark.live

# the old app's calls, with to_time: the fixture's candles are of January 2025
WINDOW = "time_range=1d&to_time=2025-01-24T00:00:00Z"
OLD_APP = """<!doctype html>
<html><body><script>
// what the old app did with /history: the newest forecast per horizon of one model, drawn
// as a line from the last candle through one point per horizon
async function load(url, model) {
  try {
    const response = await fetch(url, { headers: { "X-Cryptify-Client": "old-web-app" } });
    const body = await response.json();
    const bars = body.data.raw_bars;
    const last = bars[bars.length - 1];
    const mine = body.data.predictions.filter((p) => p.model === model);
    const line = [{ x: last.timestamp, y: last.close }].concat(
      mine.map((p) => ({ x: p.predicted_time, y: p.predicted_value })));
    return {
      status: response.status,
      horizons: body.data.predictions.map((p) => [p.model, p.prediction_horizon]),
      null_bounds: body.data.predictions.filter((p) => p.ci_low === null || p.ci_high === null
        || ("ci_low" in p) !== ("ci_high" in p)).length,
      last_candle: last.timestamp,
      line: line.map((point) => point.x),
      ahead: line.slice(1).filter((point) => Date.parse(point.x) > Date.parse(last.timestamp))
        .length,
    };
  } catch (error) {
    return { error: String(error) };
  }
}
</script></body></html>
"""


@contextmanager
def page_server(directory) -> Iterator[str]:
    """A static HTTP server of ``directory`` on a free port: another origin than the API's."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The old app's origin, listed in CRYPTIFY_API_CORS_ORIGINS, and one that is not."""
    root = tmp_path_factory.mktemp("old_app")
    (root / "index.html").write_text(OLD_APP)
    with page_server(root) as listed, page_server(root) as unlisted:
        yield listed, unlisted


@pytest.fixture(scope="module")
def api(forecast_tables, pages, tmp_path_factory):
    log = tmp_path_factory.mktemp("api") / "api.log"
    env = {"CRYPTIFY_SYMBOLS": "BTC/USDT,ETH/USDT", "CRYPTIFY_API_CORS_ORIGINS": pages[0]}
    with live_api(forecast_tables, log, **env) as served:
        yield served.url


def call_from(browser, origin: str, url: str, model: str) -> tuple[dict, list[str]]:
    """What the old app's page at ``origin`` got from ``url``; and the API's answers to the
    requests the browser sent for it, preflight included, as "METHOD status" (from DevTools:
    playwright's own events leave the preflight out)."""
    page = browser.new_page()
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    methods: dict[str, str] = {}
    answered: list[str] = []

    def sent(event: dict) -> None:
        if "/history" in event["request"]["url"]:
            methods[event["requestId"]] = event["request"]["method"]

    def received(event: dict) -> None:
        if event["requestId"] in methods:
            answered.append(f"{methods[event['requestId']]} {event['response']['status']}")

    devtools.on("Network.requestWillBeSent", sent)
    devtools.on("Network.responseReceived", received)
    page.goto(f"{origin}/index.html")
    result = page.evaluate("([url, model]) => load(url, model)", [url, model])
    page.close()
    return result, answered


@pytest.mark.parametrize("model_filter", ["client-side", "model=ridge"])
def test_the_old_app_reads_history_from_its_own_origin(api, browser, pages, model_filter):
    query = f"symbol=BTCUSDT&{WINDOW}"
    if model_filter != "client-side":
        query += f"&{model_filter}"
    result, sent = call_from(browser, pages[0], f"{api}/history?{query}", "ridge")
    assert "error" not in result, result
    assert result["status"] == 200
    assert sent == ["OPTIONS 200", "GET 200"]  # the preflight passed, then the call
    models = list(MODEL_ZOO) if model_filter == "client-side" else ["ridge"]
    # the newest forecast per model and horizon (one per horizon), sorted by horizon then model
    assert result["horizons"] == [[m, h] for h in HORIZONS for m in sorted(models)]
    assert result["null_bounds"] == 0  # bounds are there or absent, never null
    # the line: the last candle, then 3 points ahead of it, one per horizon
    assert result["last_candle"] == LAST_CANDLE.isoformat()
    assert result["line"] == [LAST_CANDLE.isoformat()] + [
        (LAST_CANDLE + timedelta(hours=h)).isoformat() for h in HORIZONS
    ]
    assert result["ahead"] == len(HORIZONS) == 3


def test_an_origin_not_listed_is_refused_by_the_browser(api, browser, pages):
    result, sent = call_from(browser, pages[1], f"{api}/history?symbol=BTCUSDT&{WINDOW}", "ridge")
    assert result == {"error": "TypeError: Failed to fetch"}
    assert sent == ["OPTIONS 400"]  # refused at the preflight: the GET is never sent
