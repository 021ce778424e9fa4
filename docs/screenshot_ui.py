"""Screenshots of the MLflow UI for docs/commands.md, from a real (headless) Chromium.

    cnnlab study run experiments/knobs.toml        # in an empty folder: a fresh store
    cnnlab ui --port 5055 &                        # prints "study 'knobs': its trial runs URL"
    apt-get install -y chromium                    # Playwright drives Debian's Chromium
    pip install playwright                         # (the test extra has it)
    python docs/screenshot_ui.py URL               # the URL `cnnlab ui` printed

Writes docs/mlflow-ui-study.png (the runs page `cnnlab ui` opens on: the trial runs with their
state, outcome and metrics) and docs/mlflow-ui-charts.png (the same page's chart view). Not part
of the package or its tests.
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
        page.get_by_role("link", name="trial-0", exact=True).wait_for(timeout=120_000)
        # MLflow opens its assistant's panel over a third of the page on a browser's first
        # visit; close it, and the shared-view banner above the table.
        page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]').click()
        page.get_by_role("button", name="Hide banner").click()
        page.wait_for_timeout(1500)  # The table widens into the freed space.
        page.screenshot(path=HERE / "mlflow-ui-study.png")
        page.goto(url + "&compareRunsMode=CHART")
        page.get_by_text("Model metrics").first.wait_for(timeout=120_000)
        page.wait_for_timeout(3000)  # The charts draw their lines.
        page.screenshot(path=HERE / "mlflow-ui-charts.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
