"""Screenshots of the MLflow UI for docs/commands.md, from a real (headless) Chromium.

    cnnlab ui --port 5055 &                      # over a store with the quickstart study
    python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    apt-get install -y chromium                   # Playwright drives Debian's Chromium
    /tmp/pw/bin/python docs/screenshot_ui.py http://127.0.0.1:5055/#/experiments/1/runs

Writes docs/mlflow-ui-study.png (the study run with its trial runs expanded) and
docs/mlflow-ui-charts.png (the chart view). Not part of the package or its tests.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main(url: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.goto(url)
        page.wait_for_timeout(6000)
        for name in ("Close", "close"):  # The assistant's side panel, if it is open.
            try:
                page.get_by_role("button", name=name).first.click(timeout=1500)
            except Exception:
                pass
        page.mouse.click(318, 265)  # The [+] beside the study run: show its trial runs.
        page.wait_for_timeout(2000)
        page.screenshot(path=HERE / "mlflow-ui-study.png")
        page.mouse.click(296, 119)  # The chart view.
        page.wait_for_timeout(5000)
        page.screenshot(path=HERE / "mlflow-ui-charts.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
