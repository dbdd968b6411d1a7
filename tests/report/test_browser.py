"""report.html in a real headless Chromium: it renders, offline, with no console errors.

Needs Debian's ``chromium`` package (``apt-get install -y chromium``, about a minute);
skipped, saying so, where no Chromium is installed.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
WIDTH, HEIGHT = 1200, 1800


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here: install Debian's `chromium` package "
                                             "(apt-get install -y chromium) to run the browser check of report.html")
def test_report_renders_offline_in_headless_chromium(finished_run, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           # offline: any attempt to reach the network fails (and would show as a broken page)
           "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr", "--v=0",
           f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", (finished_run / "report.html").as_uri()]
    r = subprocess.run(cmd, capture_output=True, check=False, text=True, timeout=180)
    assert shot.is_file(), f"no screenshot (exit {r.returncode}): {r.stderr[-2000:]}"
    # the page has no scripts: any console message (errors, CSP or resource failures) is a fault
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    img = imread(str(shot))
    assert img.shape[:2] == (HEIGHT, WIDTH)
    gray = img[..., :3].mean(axis=2)
    assert gray.std() > 0.05, "the screenshot is blank"
    # text and figures below the fold of the first screen too, not only a title on white
    lower = gray[HEIGHT // 2:]
    assert (lower < 0.9).mean() > 0.01, "nothing rendered in the lower half of the first screen"
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, "too few colours for a page with figures"
