"""The browser pair the real-browser tests drive: Debian's Chromium and the PyPI ``playwright`` package."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and none of Chromium's background connections (refused on a closed network, many at a time).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]
INSTALL_HINT = "apt-get install -y chromium; .ci/run installs it"


def chromium_version(path: Path = CHROMIUM, timeout: float = 30.0) -> str:
    """``Chromium 156.0.8078.73`` as the binary prints it (raises OSError / TimeoutExpired)."""
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=timeout, check=True)
    return out.stdout.strip()


def launch_browser(playwright: Any) -> Any:
    """A headless Chromium started by playwright (``sync_playwright()``'s object)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


def page_title(html: str) -> str:
    """Start Chromium through playwright, load ``html`` and return its title: the pair works end to end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            page = browser.new_page()
            page.set_content(html)
            return page.title()
        finally:
            browser.close()
