"""Render a report page in headless Chromium to a PNG screenshot: the check that the page shows in
a real browser as it should (bootstrap installs Debian's `chromium`)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
"""Executable names tried in order on PATH."""


class ChromiumNotFoundError(RuntimeError):
    """No Chromium executable on PATH."""


def find_chromium() -> str:
    """The path of the first Chromium executable on PATH; ChromiumNotFoundError if there is none."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise ChromiumNotFoundError(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)}); on Debian or "
                                "Ubuntu: apt-get install chromium (scripts/bootstrap.sh does)")


def render_in_chromium(html_path: Path | str, png_path: Path | str, width: int = 1280, height: int = 2400,
                       timeout_s: float = 90.0) -> Path:
    """Screenshot the page at html_path into png_path, a width x height px window from the top of
    the page; returns png_path. Raises ChromiumNotFoundError, or RuntimeError when Chromium fails."""
    html_path, png_path = Path(html_path).resolve(), Path(png_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"no page at {html_path}")
    chromium = find_chromium()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        # A throw-away profile, so runs at the same time do not share (and lock) one.
        command = [chromium, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                   "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                   f"--window-size={width},{height}", f"--screenshot={png_path}", html_path.as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to start its sandbox as root
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"Chromium did not finish the screenshot of {html_path} within {timeout_s:g} s") \
                from None
    if result.returncode != 0 or not png_path.is_file():
        raise RuntimeError(f"Chromium failed on {html_path} (exit {result.returncode}): "
                           f"{result.stderr.strip()[-1500:]}")
    return png_path
