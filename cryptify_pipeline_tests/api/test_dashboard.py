"""The dashboard in a real browser: Debian's Chromium driven by playwright, against
``cryptify api`` serving the tables the pipeline wrote (a copy in which ridge's 6 h forecasts
have intervals, as a calibrated model's do, ETH/USDT has no xgboost 24 h forecasts, the
backtest was traded at costs other than the defaults, and BTC/USDT's linear 12 h forecasts
were never backtested)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page

from cryptify_pipeline.ml.models import MODEL_ZOO
from cryptify_pipeline_tests.api.conftest import LAST_CANDLE
from cryptify_pipeline_tests.support.database import run_sql
from cryptify_pipeline_tests.support.live_api import get_json, live_api

WEEK_START = LAST_CANDLE + timedelta(hours=1) - timedelta(days=7)
LEVEL = 0.8  # CRYPTIFY_INTERVAL_LEVEL of the served API: not the default 0.9
FEE_BPS, SLIPPAGE_BPS = 7.5, 2.5  # the backtest's costs in the copy: not the defaults 10 and 5
TIME_ZONES = ["UTC", "Asia/Tokyo", "America/New_York"]

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def shown_tables(forecast_tables):
    """A copy of the pipeline's tables: ridge's 6 h forecasts get an interval of +-1% at
    ``LEVEL``; ETH/USDT's xgboost 24 h forecasts are gone (a model yet to forecast)."""
    schema = f"{forecast_tables}_shown"
    run_sql(f'CREATE SCHEMA "{schema}"')
    tables = run_sql(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
        (forecast_tables,),
    )
    for (table,) in tables:
        run_sql(f'CREATE TABLE "{schema}"."{table}" AS TABLE "{forecast_tables}"."{table}"')
    run_sql(
        f'UPDATE "{schema}".predictions SET lower = 0.99 * pred_price, upper = 1.01 * pred_price,'
        " interval_level = %s, interval_calibrated = true WHERE model = 'ridge' AND horizon_h = 6",
        (LEVEL,),
    )
    run_sql(
        f'DELETE FROM "{schema}".predictions'
        " WHERE symbol = 'ETH/USDT' AND model = 'xgboost' AND horizon_h = 24"
    )
    for table in ("backtest", "backtest_summary"):
        run_sql(
            f'UPDATE "{schema}"."{table}" SET fee_bps = %s, slippage_bps = %s',
            (FEE_BPS, SLIPPAGE_BPS),
        )
        run_sql(
            f'DELETE FROM "{schema}"."{table}"'
            " WHERE symbol = 'BTC/USDT' AND model = 'linear' AND horizon_h = 12"
        )
    # and the leaderboard scores that band: its coverage and width (2% of the price)
    run_sql(
        f'UPDATE "{schema}".leaderboard SET coverage = 0.875, width_share = 0.02'
        " WHERE model = 'ridge' AND horizon_h = 6"
    )
    yield schema
    run_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def api(shown_tables, tmp_path_factory):
    log = tmp_path_factory.mktemp("api") / "api.log"
    env = {"CRYPTIFY_SYMBOLS": "BTC/USDT,ETH/USDT", "CRYPTIFY_INTERVAL_LEVEL": str(LEVEL)}
    with live_api(shown_tables, log, **env) as served:
        yield served.url


def open_dashboard(
    browser, url: str, width: int = 1400, time_zone: str = "UTC"
) -> tuple[Page, list[str]]:
    context = browser.new_context(
        viewport={"width": width, "height": 1000}, timezone_id=time_zone, locale="en-US"
    )
    page = context.new_page()
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
        const forecast = chart._fullData.find((t) => t.name.includes(" forecast"));
        const texts = (selector) => [...document.querySelectorAll(selector)]
            .map((e) => e.textContent.trim());
        return {
            candles: chart.querySelectorAll(".trace.boxes path.box").length,
            points: chart.querySelectorAll(".scatterlayer .trace .points path.point").length,
            traces: chart._fullData.map((t) => [t.type, t.name, t.x.length]),
            last_forecast_time: forecast ? forecast.x[forecast.x.length - 1] : null,
            rows: document.querySelectorAll("#leaderboard tbody tr").length,
            legend: texts("#chart .legend .legendtext"),
            band_note: document.getElementById("band-note").textContent,
            notice: document.getElementById("notice").hidden
                ? null : document.getElementById("notice").textContent,
            models: [...document.querySelectorAll("#model option")].map((o) => o.value),
            chosen: ["symbol", "model", "horizon", "range"]
                .map((id) => document.getElementById(id).value),
            y_title: texts("#chart .ytitle")[0],
            x_title: texts("#chart .xtitle")[0],
            y_ticks: texts("#chart .yaxislayer-above .ytick text"),
        };
    }"""
    )


def leaderboard_cells(page: Page) -> dict:
    """The leaderboard's header and every row's cells, as shown."""
    return page.evaluate(
        """() => {
        const table = document.getElementById("leaderboard");
        const texts = (cells) => [...cells].map((c) => c.textContent.trim());
        return {
            header: texts(table.querySelectorAll("thead th")),
            rows: [...table.querySelectorAll("tbody tr")].map((r) => texts(r.cells)),
        };
    }"""
    )


def forecasts(symbol: str, model: str, horizon: int, schema: str) -> int:
    return run_sql(
        f'SELECT count(*) FROM "{schema}".predictions WHERE symbol = %s AND model = %s'
        " AND horizon_h = %s AND ts >= %s AND ts <= %s",
        (symbol, model, horizon, WEEK_START, LAST_CANDLE),
    )[0][0]


def screenshot(page: Page, tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    print(f"screenshot: {path}")


def test_dashboard_draws_candles_forecasts_and_the_leaderboard(
    api, browser, shown_tables, tmp_path
):
    page, requested = open_dashboard(browser, f"{api}/?symbol=ETH-USDT&model=ridge&horizon=6")
    seen = drawn(page)
    candles = run_sql(
        f'SELECT count(*) FROM "{shown_tables}".candles WHERE symbol = %s AND ts >= %s',
        ("ETH/USDT", WEEK_START),
    )[0][0]
    assert seen["candles"] == candles == 168  # the week ending at the newest candle
    assert seen["points"] == forecasts("ETH/USDT", "ridge", 6, shown_tables) == 48
    # the band at the API's interval level, not a fixed 90%
    assert seen["traces"] == [
        ["candlestick", "ETH/USDT hourly", 168],
        ["scatter", "80% interval", 48],
        ["scatter", "80% interval", 48],
        ["scatter", "ridge 6 h forecast", 48],
    ]
    assert seen["legend"] == ["ETH/USDT hourly", "80% interval", "ridge 6 h forecast"]
    assert seen["band_note"] == "The band is the forecast's 80% interval."
    assert page.locator(".note .h").inner_text() == "6"  # "made 6 hours earlier"
    # the newest forecasts reach ahead of the last candle's close
    assert seen["last_forecast_time"] == (LAST_CANDLE + timedelta(hours=6)).isoformat()
    assert seen["rows"] == 2 * len(MODEL_ZOO)  # every model x (30d, all) at 6 h
    # the leaderboard shows each model's coverage and interval width; "-" where no interval
    board = leaderboard_cells(page)
    assert board["header"][8:10] == ["coverage", "width"]
    shown = {(row[0], row[2]): (row[8], row[9]) for row in board["rows"]}
    assert shown["all", "ridge"] == shown["30d", "ridge"] == ("87.5%", "2.0%")
    assert shown["all", "linear"] == ("-", "-")
    assert seen["notice"] is None
    page.wait_for_selector("#health.degraded")  # 2025 is long past
    assert "newest candle 2025-01-23T23:00:00+00:00" in page.locator("#health").inner_text()
    screenshot(page, tmp_path, "dashboard")
    # nothing came from anywhere but the API: the chart library included
    assert all(url.startswith(api) or url.startswith("data:") for url in requested), requested
    assert f"{api}/vendor/plotly.min.js" in requested

    # another model and horizon, chosen in the page
    page.select_option("#horizon", "24")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#model", "hist_gbm")
    page.wait_for_selector("body[data-ready=true]")
    seen = drawn(page)
    assert seen["points"] == forecasts("ETH/USDT", "hist_gbm", 24, shown_tables) == 48
    assert seen["traces"][1][1] == "hist_gbm 24 h forecast (no interval)"
    assert seen["last_forecast_time"] == (LAST_CANDLE + timedelta(hours=24)).isoformat()
    screenshot(page, tmp_path, "dashboard-24h")


def candle_centres_and_last_close_line(page: Page) -> tuple[list[float], float]:
    """Where the candles' centres and the dotted line are drawn, in pixels (from the SVG)."""
    return page.evaluate(
        """() => {
        const centre = (e) => { const r = e.getBoundingClientRect(); return r.x + r.width / 2; };
        const boxes = [...document.querySelectorAll("#chart .trace.boxes path.box")];
        const lines = [...document.querySelectorAll("#chart .shapelayer path")];
        return [boxes.map(centre).sort((a, b) => a - b), lines.map(centre)];
    }"""
    )


@pytest.mark.parametrize("time_zone", TIME_ZONES)
def test_the_last_close_line_is_at_the_last_candles_close_in_every_time_zone(
    api, browser, tmp_path, time_zone
):
    page, _ = open_dashboard(browser, f"{api}/?symbol=BTC-USDT&model=ridge", time_zone=time_zone)
    centres, lines = candle_centres_and_last_close_line(page)
    assert len(centres) == 168 and len(lines) == 1
    hour = centres[-1] - centres[-2]  # the candles are an hour apart
    assert hour == pytest.approx(centres[1] - centres[0], abs=0.1)
    # the last candle (drawn at its open hour) closes an hour later; the line is there, not
    # 9 h to the right (Tokyo) or 5 h to the left (New York)
    assert lines[0] == pytest.approx(centres[-1] + hour, abs=0.5), (hour, centres[-1], lines)
    seen = drawn(page)
    assert seen["x_title"] == "time (UTC)"
    screenshot(page, tmp_path, f"dashboard-{time_zone.replace('/', '-')}")


def test_prices_are_in_the_quote_currency_in_plain_digits_and_the_hover_says_when(
    api, browser, shown_tables, tmp_path
):
    page, _ = open_dashboard(
        browser, f"{api}/?symbol=BTC-USDT&model=ridge&horizon=6", time_zone="Asia/Tokyo"
    )
    seen = drawn(page)
    assert seen["y_title"] == "price (USDT)"
    assert seen["y_ticks"] and all(  # 118,000 rather than Plotly's 118k
        tick.replace(",", "").isdigit() for tick in seen["y_ticks"]
    ), seen["y_ticks"]
    # hover over the newest forecast: 6 h past the last candle
    newest = run_sql(
        f'SELECT pred_price, lower, upper FROM "{shown_tables}".predictions'
        " WHERE symbol = 'BTC/USDT' AND model = 'ridge' AND horizon_h = 6 AND ts = %s",
        (LAST_CANDLE,),
    )[0]
    # the mouse where the point is: plotly's drag layer lies over it and takes the events
    point = page.locator("#chart .scatterlayer .trace .points path.point").last.bounding_box()
    page.mouse.move(point["x"] + point["width"] / 2, point["y"] + point["height"] / 2)
    hover = page.locator("#chart .hoverlayer .hovertext").first
    hover.wait_for()
    text = hover.text_content()
    price, low, high = (f"{value:,.2f}" for value in newest)
    assert f"ridge: {price} USDT" in text, text
    assert f"80% interval: {low} .. {high} USDT" in text, text
    # UTC, though the browser is in Tokyo
    assert "close of the candle of 2025-01-24 05:00 UTC" in text, text
    assert "made at the close of 2025-01-23 23:00 UTC" in text, text
    assert "k" not in text.replace("candle", "")  # no SI suffix anywhere
    screenshot(page, tmp_path, "dashboard-hover")


def test_the_model_menu_offers_the_models_with_forecasts_and_takes_aliases(api, browser):
    trained = list(MODEL_ZOO)  # the fixture trains no +context twin
    page, _ = open_dashboard(browser, f"{api}/?symbol=ETH-USDT&model=linear_regression&horizon=12")
    seen = drawn(page)
    assert seen["models"] == trained
    # linear_regression is the old name of linear (lstm is the zoo's own now)
    assert seen["chosen"] == ["ETH/USDT", "linear", "12", "1w"]
    assert seen["traces"][1][1] == "linear 12 h forecast (no interval)"
    assert seen["notice"] is None

    # xgboost has no 24 h forecasts for ETH/USDT: not offered there, offered at 6 h
    page.select_option("#model", "xgboost")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#horizon", "24")
    page.wait_for_selector("body[data-ready=true]")
    seen = drawn(page)
    assert seen["models"] == [m for m in trained if m != "xgboost"]
    assert seen["notice"].startswith("xgboost has no 24 h forecasts for ETH/USDT in this range")
    shown = seen["chosen"][1]
    assert shown != "xgboost" and seen["traces"][1][1].startswith(f"{shown} 24 h forecast")

    page, _ = open_dashboard(browser, f"{api}/?model=linear_regression")
    assert drawn(page)["chosen"][1] == "linear"
    # a model never trained is said, not silently swapped
    page, _ = open_dashboard(browser, f"{api}/?model=ridge%2Bcontext")
    seen = drawn(page)
    shown = seen["chosen"][1]
    assert "ridge+context" not in seen["models"]
    assert seen["notice"] == (
        f"ridge+context has no 6 h forecasts for BTC/USDT in this range: showing {shown}."
    )


def test_bad_url_parameters_are_named_with_what_is_shown_instead(api, browser, tmp_path):
    page, _ = open_dashboard(browser, f"{api}/?symbol=DOGE-USDT&horizon=7&range=5y&model=nope")
    seen = drawn(page)
    models = ", ".join(get_json(f"{api}/meta")[1]["data"]["models"])
    assert page.locator("#notice").is_visible()
    assert seen["notice"] == (
        'Unknown symbol "DOGE-USDT" in the URL (known: BTC/USDT, ETH/USDT): showing BTC/USDT. '
        'Unknown horizon "7" in the URL (known: 6 h, 12 h, 24 h): showing 6 h. '
        'Unknown range "5y" in the URL (known: 1d, 1w, 1m): showing 1w. '
        f'Unknown model "nope" in the URL (known: {models}).'
    )
    assert [seen["chosen"][i] for i in (0, 2, 3)] == ["BTC/USDT", "6", "1w"]
    assert seen["candles"] == 168
    screenshot(page, tmp_path, "dashboard-bad-url")
    # the notice is about the URL: it goes once the user chooses
    page.select_option("#horizon", "12")
    page.wait_for_selector("body[data-ready=true]")
    assert drawn(page)["notice"] is None


def test_a_forecast_without_an_interval_draws_no_band_and_says_so(api, browser):
    page, _ = open_dashboard(browser, f"{api}/?symbol=BTC-USDT&model=ridge&horizon=12")
    seen = drawn(page)
    assert [trace[1] for trace in seen["traces"]] == [
        "BTC/USDT hourly",
        "ridge 12 h forecast (no interval)",
    ]
    assert seen["legend"] == ["BTC/USDT hourly", "ridge 12 h forecast (no interval)"]
    assert seen["band_note"] == (
        "ridge has no 80% interval at 12 h (too few held-out errors to calibrate one), so no "
        "band is drawn."
    )


def backtest_panel(page: Page) -> dict:
    """What the backtest panel shows: its message, its curves (plotly's state of each trace and
    the lines in the SVG), its caption, costs and figures."""
    return page.evaluate(
        """() => {
        const chart = document.getElementById("equity");
        const text = (id) => document.getElementById(id).textContent.trim();
        return {
            empty: document.getElementById("backtest-empty").hidden ? null : text("backtest-empty"),
            body_visible: !document.getElementById("backtest-body").hidden
                && document.getElementById("backtest-body").offsetHeight > 0,
            curves: (chart._fullData || []).map((t) => ({ name: t.name, x: t.x, y: t.y })),
            lines: chart.querySelectorAll(".scatterlayer .trace path.js-line").length,
            legend: [...chart.querySelectorAll(".legend .legendtext")].map((e) => e.textContent),
            caption: text("backtest-caption"),
            rule: text("backtest-rule-text"),
            costs: text("backtest-costs"),
            figures: [...document.querySelectorAll("#backtest-metrics tbody tr")]
                .map((tr) => [...tr.children].map((td) => td.textContent)),
            rules: [...document.querySelectorAll("#backtest-rule option")].map((o) => o.value),
            windows: [...document.querySelectorAll("#backtest-window option")].map((o) => o.value),
        };
    }"""
    )


def stored_backtest(schema: str, model: str, horizon: int, rule: str) -> dict:
    """The summary row of BTC/USDT's ``model`` in the recent window, and its strategy's equity
    compounded here from the stored hourly returns."""
    row = run_sql(
        "SELECT fee_bps, slippage_bps, total_return, sharpe, max_drawdown, bh_total_return,"
        f' bh_sharpe, bh_max_drawdown FROM "{schema}".backtest_summary WHERE symbol = %s'
        " AND model = %s AND horizon_h = %s AND rule = %s AND \"window\" = '30d'",
        ("BTC/USDT", model, horizon, rule),
    )[0]
    equity = [1.0]
    for (returns,) in run_sql(
        f'SELECT strategy_return FROM "{schema}".backtest WHERE symbol = %s AND model = %s'
        " AND horizon_h = %s AND rule = %s ORDER BY day",
        ("BTC/USDT", model, horizon, rule),
    ):
        for value in returns:
            equity.append(equity[-1] * (1 + (value or 0.0)))
    names = ("fee_bps", "slippage_bps", "total_return", "sharpe", "max_drawdown",
             "bh_total_return", "bh_sharpe", "bh_max_drawdown")  # fmt: skip
    return {**dict(zip(names, row, strict=True)), "equity": equity}


def signed_percent(value: float) -> str:
    text = f"{100 * value:.2f}%"
    return f"+{text}" if value > 0 else text


def assert_panel_shows(seen: dict, stored: dict, label: str) -> None:
    """Two curves (and cash) as stored, the stored costs stated, the stored figures beside."""
    assert seen["empty"] is None and seen["body_visible"]
    assert [c["name"] for c in seen["curves"]] == [label, "buy and hold", "flat (cash)"]
    strategy, hold, flat = seen["curves"]
    assert seen["lines"] == 3 and seen["legend"] == [label, "buy and hold", "flat (cash)"]
    assert len(strategy["x"]) == len(hold["x"]) == 25  # the backtested day: start and 24 closes
    assert strategy["y"] == pytest.approx(stored["equity"], abs=1e-12)
    assert strategy["y"][-1] - 1 == pytest.approx(stored["total_return"], abs=1e-12)
    assert hold["y"][-1] - 1 == pytest.approx(stored["bh_total_return"], abs=1e-12)
    assert set(flat["y"]) == {1}
    assert seen["costs"] == (
        f"Costs: fees {stored['fee_bps']:g} bps per side, slippage {stored['slippage_bps']:g} "
        f"bps per side ({2 * (stored['fee_bps'] + stored['slippage_bps']):g} bps a round trip), "
        "paid on every change of position."
    )
    model_row, hold_row, cash_row = seen["figures"]
    assert model_row[1] == signed_percent(stored["total_return"])
    assert model_row[3] == signed_percent(stored["max_drawdown"])
    assert hold_row[:2] == ["buy and hold", signed_percent(stored["bh_total_return"])]
    assert hold_row[3] == signed_percent(stored["bh_max_drawdown"])
    for shown, value in ((model_row[2], stored["sharpe"]), (hold_row[2], stored["bh_sharpe"])):
        if value is None:  # never traded: the return never varies
            assert shown == "-"
        else:
            assert float(shown) == pytest.approx(value, rel=5e-3)  # 3 significant digits
    assert cash_row == ["flat (cash)", "0.00%", "-", "0.00%"]


def test_the_backtest_panel_draws_the_models_equity_against_buy_and_hold_with_its_costs(
    api, browser, shown_tables, tmp_path
):
    page, _ = open_dashboard(browser, f"{api}/?symbol=BTC-USDT&model=ridge&horizon=6")
    seen = backtest_panel(page)
    ridge = stored_backtest(shown_tables, "ridge", 6, "sign")
    assert (ridge["fee_bps"], ridge["slippage_bps"]) == (FEE_BPS, SLIPPAGE_BPS)
    assert_panel_shows(seen, ridge, "ridge 6 h, sign rule, after costs")
    assert seen["figures"][0][0] == "ridge (sign rule)"
    assert seen["rule"] == (
        "Rule: sign, long when the forecast is up, short when it is down; long or short."
    )
    assert seen["caption"] == (
        "BTC/USDT, ridge 6 h forecasts, window 30d: 2025-01-22 00:00 UTC .. "
        "2025-01-23 00:00 UTC (24 hours)"
    )
    assert (seen["rules"], seen["windows"]) == (["sign", "edge", "interval"], ["30d", "all"])
    page.locator("#backtest").screenshot(path=str(tmp_path / "backtest.png"))
    assert (tmp_path / "backtest.png").stat().st_size > 10_000

    # another model chosen at the top: the panel draws its backtest
    page.select_option("#model", "zero_return")
    page.wait_for_selector("body[data-ready=true]")
    seen = backtest_panel(page)
    zero = stored_backtest(shown_tables, "zero_return", 6, "sign")
    assert_panel_shows(seen, zero, "zero_return 6 h, sign rule, after costs")
    # no forecast moves: it never trades and stays at 1, while ridge did trade
    assert set(seen["curves"][0]["y"]) == {1} and set(ridge["equity"]) != {1}

    # another rule chosen in the panel: only the panel is drawn again
    page.select_option("#model", "ridge")
    page.wait_for_selector("body[data-ready=true]")
    page.select_option("#backtest-rule", "edge")
    page.wait_for_selector("body[data-ready=true]")
    assert_panel_shows(
        backtest_panel(page), stored_backtest(shown_tables, "ridge", 6, "edge"),
        "ridge 6 h, edge rule, after costs",
    )  # fmt: skip
    screenshot(page, tmp_path, "dashboard-backtest")


def test_the_backtest_panel_says_when_there_is_no_backtest_yet(api, browser, tmp_path):
    page, _ = open_dashboard(browser, f"{api}/?symbol=BTC-USDT&model=linear&horizon=12")
    seen = backtest_panel(page)
    assert seen["empty"] == (
        "No backtest of linear's 12 h forecasts for BTC/USDT by the sign rule yet: the "
        "backtest assets have not traded them."
    )
    assert not seen["body_visible"] and seen["curves"] == []
    assert page.locator("#backtest-empty").is_visible()
    assert not page.locator("#error").is_visible()  # the rest of the page is drawn
    assert drawn(page)["candles"] == 168
    screenshot(page, tmp_path, "dashboard-no-backtest")
    # another model has one: the message goes
    page.select_option("#model", "ridge")
    page.wait_for_selector("body[data-ready=true]")
    assert backtest_panel(page)["empty"] is None


def test_the_page_is_readable_420_px_wide(api, browser, tmp_path):
    page, _ = open_dashboard(browser, f"{api}/?symbol=ETH-USDT&model=ridge&horizon=6", width=420)
    layout = page.evaluate(
        """() => {
        const box = (e) => { const r = e.getBoundingClientRect();
            return { left: r.left, right: r.right, top: r.top, bottom: r.bottom }; };
        const scroller = document.querySelector(".table-scroll");
        return {
            page_width: document.documentElement.scrollWidth,
            table: [scroller.scrollWidth, scroller.clientWidth],
            title: box(document.querySelector("#chart .gtitle")),
            legend: box(document.querySelector("#chart .legend")),
            plot: box(document.querySelector("#chart .nsewdrag")),
        };
    }"""
    )
    assert layout["page_width"] <= 420
    wide, shown = layout["table"]
    assert wide > shown  # the table scrolls inside its own box
    title, legend, plot = layout["title"], layout["legend"], layout["plot"]
    # the legend is below the plot: it neither covers the title nor the candles
    assert legend["top"] >= plot["bottom"] and legend["top"] >= title["bottom"], layout
    screenshot(page, tmp_path, "dashboard-420px")


def test_the_served_api_answers_and_stops_on_interrupt(forecast_tables, tmp_path):
    log = tmp_path / "api.log"
    with live_api(forecast_tables, log, CRYPTIFY_SYMBOLS="BTC/USDT,ETH/USDT") as served:
        base = served.url
        status, health = get_json(f"{base}/health")
        assert (status, health["latest_candle"]) == (200, LAST_CANDLE.isoformat())
        status, body = get_json(f"{base}/history?symbol=DOGE")
        assert (status, body["error"]["code"]) == (404, "unknown_symbol")
    assert "Shutting down" in log.read_text()
