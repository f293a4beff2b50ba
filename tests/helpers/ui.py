"""The MLflow and Prefect UIs on loopback in the system Chromium: the browser test's tools,
and the screenshot script's (bench/screenshots/ui_screenshots.py).

Chromium is the Debian package ``chromium`` (``/usr/bin/chromium``); Playwright comes from
PyPI and is never asked to download a browser.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tests.helpers.net import serving

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
VIEWPORT = {"width": 1280, "height": 860}


def mlflow_ui(db: Path, port: int, log: Path) -> contextlib.AbstractContextManager[None]:
    """``mlflow ui`` on loopback over the sqlite store ``db``."""
    cmd = [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    return serving(cmd, f"http://127.0.0.1:{port}/health", log, env)


def prefect_server(home: Path, port: int, log: Path) -> contextlib.AbstractContextManager[None]:
    """A Prefect server on loopback with its database under ``home``."""
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
           "--port", str(port)]  # fmt: skip
    env = {**os.environ, **prefect_env(home, port)}
    return serving(cmd, f"http://127.0.0.1:{port}/api/health", log, env)


def prefect_env(home: Path, port: int) -> dict[str, str]:
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def open_page(page: Page, url: str, wait_text: str) -> None:
    """Open ``url`` and wait until ``wait_text`` is visible; close MLflow's assistant panel."""
    page.goto(url)
    page.get_by_text(wait_text, exact=False).first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # charts and lazy panels settle
    assistant = page.get_by_role("button", name="Close", exact=True)
    if assistant.count() == 1 and assistant.is_visible():
        assistant.click()  # MLflow 3's assistant panel opens on first load, over the page
        page.wait_for_timeout(500)


def save(page: Page, path: Path) -> None:
    """The viewport as a 128-colour PNG (a fifth of the RGB file's size)."""
    from PIL import Image

    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)


def shoot(page: Page, url: str, path: Path, wait_text: str) -> None:
    """Open ``url``, wait for ``wait_text``, save the viewport."""
    open_page(page, url, wait_text)
    save(page, path)


@contextlib.contextmanager
def chromium() -> Iterator[Page]:
    """A Playwright page in the system Chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} not found: apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()
