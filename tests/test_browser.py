"""A person's view: Debian's Chromium, driven by Playwright, uploads a cell and sees results.

Playwright never downloads a browser here (`playwright install` cannot work offline); it
drives /usr/bin/chromium, which .ci/run installs with apt-get. The screenshot is kept in
``$CERVIX_TEST_ARTIFACTS`` (default ``artifacts/``).
"""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def _require_browser():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -r requirements-dev.txt)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test; missing: {missing}")
        pytest.skip(f"browser test needs {missing}")


def test_upload_a_cell_and_see_label_and_heat_map(served, tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    url, model, examples = served
    out_dir = Path(os.environ.get("CERVIX_TEST_ARTIFACTS", "artifacts"))
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(url, wait_until="networkidle")
            expect(page.get_by_text("not a diagnostic device").first).to_be_visible()
            page.locator("input[type=file]").first.set_input_files(examples[4])
            page.get_by_role("button", name="Classify", exact=True).click()
            label = page.get_by_test_id("label-output-value").first
            expect(label).to_contain_text("Abnormal", timeout=60_000)
            expect(page.get_by_text("Decision:")).to_be_visible()
            heat = page.locator("img[src*='heatmap'], img[src*='.png']").last
            expect(heat).to_be_visible(timeout=30_000)
            box = heat.bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50
            page.screenshot(path=str(out_dir / "browser_single_image.png"), full_page=True)
        finally:
            browser.close()
    decision = model.predict([examples[4]])[0]
    assert decision in ("Normal", "Abnormal")
