"""Opening the navigator's pages in Debian's headless Chromium (the browser tests, the page
benchmark and the docs' screenshots drive it with Playwright, without downloading a browser)."""

from __future__ import annotations

import shutil

#: Chromium's command-line flags for a quiet headless run: no sandbox (containers, root), no GPU,
#: none of the browser's own background traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The installed Chromium (Debian's package ``chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")
