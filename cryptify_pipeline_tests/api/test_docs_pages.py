"""``/docs`` (Swagger UI) and ``/redoc`` in a real browser, reached by a host name other than
localhost as in a deployment: they render every operation from the API's own files, and ask
nothing of any other host."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from cryptify_pipeline_tests.support.browser import API_HOST_NAME
from cryptify_pipeline_tests.support.live_api import live_api

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def api(forecast_tables, tmp_path_factory):
    """The API's URL by its host name (the browser maps it to 127.0.0.1)."""
    log = tmp_path_factory.mktemp("api") / "api.log"
    with live_api(forecast_tables, log, CRYPTIFY_SYMBOLS="BTC/USDT,ETH/USDT") as served:
        yield served.url.replace("127.0.0.1", API_HOST_NAME)


def open_page(browser, url: str) -> tuple[Page, list[str], list[str]]:
    """The page, the requests it made, and those its content security policy stopped before
    they left the browser."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requested: list[str] = []
    blocked: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "requestfailed",
        lambda request: request.failure == "csp" and blocked.append(request.url),
    )
    page.goto(url)
    return page, requested, blocked


def outside(requested: list[str], api: str) -> list[str]:
    """The requests to anywhere but the API (inline data and blobs stay in the page)."""
    own = urlsplit(api).netloc
    return [
        url for url in requested
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != own
    ]  # fmt: skip


def test_swagger_ui_renders_the_operations_with_no_outside_request(api, browser, tmp_path):
    page, requested, blocked = open_page(browser, f"{api}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    paths = page.locator(".opblock .opblock-summary-path").all_text_contents()
    assert "/history" in paths and "/predict/{model}/{horizon}" in paths and "/meta" in paths
    assert page.locator(".opblock-get").count() == len(paths)  # a read-only API
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=False)
    print(f"screenshot: {tmp_path / 'docs.png'}")
    assert f"{api}/openapi.json" in requested
    assert outside(requested, api) == [] and blocked == []


def test_redoc_renders_the_operations_with_no_outside_request(api, browser, tmp_path):
    page, requested, blocked = open_page(browser, f"{api}/redoc")
    page.wait_for_selector("[role=menuitem]", timeout=30_000)
    menu = page.locator("[role=menuitem]").all_text_contents()
    assert any("The dashboard call" in item for item in menu), menu
    page.wait_for_selector("h2:has-text('The dashboard call')")  # the operation's own section
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(tmp_path / "redoc.png"), full_page=False)
    print(f"screenshot: {tmp_path / 'redoc.png'}")
    assert f"{api}/openapi.json" in requested
    # ReDoc's sidebar asks for Redocly's logo from its CDN; the page's policy stops it in the
    # browser (without the policy it would be sent)
    assert blocked == ["https://cdn.redoc.ly/redoc/logo-mini.svg"]
    assert [url for url in outside(requested, api) if url not in blocked] == []
