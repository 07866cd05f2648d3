"""The dashboard in a real browser: Debian's Chromium driven by playwright, against
``cryptify api`` serving the tables the pipeline wrote."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from cryptify_pipeline_tests.api.conftest import LAST_CANDLE
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.live_api import get_json, live_api

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
WEEK_START = LAST_CANDLE + timedelta(hours=1) - timedelta(days=7)

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def api(forecast_tables, tmp_path_factory):
    log = tmp_path_factory.mktemp("api") / "api.log"
    with live_api(forecast_tables, log, CRYPTIFY_SYMBOLS="BTC/USDT,ETH/USDT") as served:
        yield served.url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_dashboard(browser, url: str) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    return page, requested


def drawn(page: Page) -> dict:
    """What the chart drew, from the DOM, and from plotly's own state of each trace."""
    return page.evaluate(
        """() => {
        const chart = document.getElementById("chart");
        const forecast = chart._fullData.find((t) => t.name.endsWith("forecast"));
        return {
            candles: chart.querySelectorAll(".trace.boxes path.box").length,
            points: chart.querySelectorAll(".scatterlayer .trace .points path.point").length,
            traces: chart._fullData.map((t) => [t.type, t.name, t.x.length]),
            last_forecast_time: forecast.x[forecast.x.length - 1],
            rows: document.querySelectorAll("#leaderboard tbody tr").length,
        };
    }"""
    )


def forecasts(symbol: str, model: str, horizon: int, schema: str) -> int:
    return run_sql(
        f'SELECT count(*) FROM "{schema}".predictions WHERE symbol = %s AND model = %s'
        " AND horizon_h = %s AND ts >= %s AND ts <= %s",
        (symbol, model, horizon, WEEK_START, LAST_CANDLE),
    )[0][0]


def test_dashboard_draws_candles_forecasts_and_the_leaderboard(
    api, browser, forecast_tables, tmp_path
):
    page, requested = open_dashboard(browser, f"{api}/?symbol=ETH-USDT&model=ridge&horizon=6")
    seen = drawn(page)
    candles = run_sql(
        f'SELECT count(*) FROM "{forecast_tables}".candles WHERE symbol = %s AND ts >= %s',
        ("ETH/USDT", WEEK_START),
    )[0][0]
    assert seen["candles"] == candles == 168  # the week ending at the newest candle
    assert seen["points"] == forecasts("ETH/USDT", "ridge", 6, forecast_tables) == 48
    assert seen["traces"] == [
        ["candlestick", "ETH/USDT hourly", 168],
        ["scatter", "90% interval", 48],
        ["scatter", "90% interval", 48],
        ["scatter", "ridge 6 h forecast", 48],
    ]
    # the newest forecasts reach ahead of the last candle's close
    assert seen["last_forecast_time"] == (LAST_CANDLE + timedelta(hours=6)).isoformat()
    assert seen["rows"] == 12  # 6 models x (30d, all) at 6 h
    page.wait_for_selector("#health.degraded")  # 2025 is long past
    assert "newest candle 2025-01-23T23:00:00+00:00" in page.locator("#health").inner_text()
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 20_000
    print(f"screenshot: {screenshot}")
    # nothing came from anywhere but the API: the chart library included
    assert all(url.startswith(api) or url.startswith("data:") for url in requested), requested
    assert f"{api}/vendor/plotly.min.js" in requested

    # another model and horizon, chosen in the page
    page.select_option("#horizon", "24")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#model", "hist_gbm")
    page.wait_for_selector("body[data-ready=true]")
    seen = drawn(page)
    assert seen["points"] == forecasts("ETH/USDT", "hist_gbm", 24, forecast_tables) == 48
    assert seen["traces"][3][1] == "hist_gbm 24 h forecast"
    assert seen["last_forecast_time"] == (LAST_CANDLE + timedelta(hours=24)).isoformat()
    page.screenshot(path=str(tmp_path / "dashboard-24h.png"), full_page=True)


def test_the_served_api_answers_and_stops_on_interrupt(forecast_tables, tmp_path):
    log = tmp_path / "api.log"
    with live_api(forecast_tables, log, CRYPTIFY_SYMBOLS="BTC/USDT,ETH/USDT") as served:
        base = served.url
        status, health = get_json(f"{base}/health")
        assert (status, health["latest_candle"]) == (200, LAST_CANDLE.isoformat())
        status, body = get_json(f"{base}/history?symbol=DOGE")
        assert (status, body["error"]["code"]) == (404, "unknown_symbol")
    assert "Shutting down" in log.read_text()
