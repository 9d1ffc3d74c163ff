"""Open a cotlens report in headless Chromium: a screenshot of the landing page, and a
check that the rendered page leads with the findings table.

    python tools/report_screenshot.py results/default/report.html [out.png]

Needs a Chromium (Debian: ``apt-get install chromium``). Exits 1 if the rendered landing
page has no findings table, 2 if no Chromium is found.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    report = Path(argv[0]).resolve()
    out = Path(argv[1] if len(argv) > 1 else report.with_name("report-landing.png")).resolve()
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        print("no Chromium found: apt-get install chromium", file=sys.stderr)
        return 2
    url = report.as_uri()
    subprocess.run(
        [browser, *FLAGS, "--window-size=1500,1100", f"--screenshot={out}", url], check=True, capture_output=True
    )
    dom = subprocess.run([browser, *FLAGS, "--dump-dom", url], check=True, capture_output=True, text=True).stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    rows = len(re.findall(r"\b(?:reproduced|not reproduced|inconclusive at this n|descriptive)\b", text))
    ok = "Findings of run" in text and rows > 0
    print(
        f"{out}: {out.stat().st_size} bytes; rendered page: findings table {'present' if ok else 'MISSING'}, {rows} verdicts"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
