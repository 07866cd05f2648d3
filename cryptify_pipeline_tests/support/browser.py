"""A real browser for the live tests: Debian's Chromium (apt-get install chromium) driven by
playwright, which cannot download one of its own here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# a name the tests reach the API by that is not localhost, so that pages behave as in a
# deployment (Swagger UI, for one, loads its validator badge for any host but localhost)
API_HOST_NAME = "api.cryptify.test"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
    f"--host-resolver-rules=MAP {API_HOST_NAME} 127.0.0.1",
]  # fmt: skip


@contextmanager
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
