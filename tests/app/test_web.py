"""The web page at the root and the API docs: served by the app, nothing from a CDN; and the page in a real
headless browser (Debian's chromium and chromium-driver): load it, submit a text, read the labels."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.app.conftest import free_port, wait_ready


def test_page_and_docs_come_from_the_app_itself(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    docs = client.get("/docs")
    assert docs.status_code == 200
    assets += re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", docs.text)
    assert assets and all(a.startswith("/") for a in assets), assets  # no other host
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert "/" not in client.get("/openapi.json").json()["paths"]  # the page is not an API route


def _browser() -> tuple[str, str] | None:
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
    )
    return (chrome, driver) if chrome and driver else None


@pytest.mark.integration
def test_the_page_in_a_real_browser(tree_bundle):
    found = _browser()
    if found is None:
        pytest.skip("needs chromium and its driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    chrome, driver_path = found
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xmlc.cli", "serve", "--bundle", str(tree_bundle), "--port", str(port)],
        env={**os.environ, "XMLC_API_KEY": "page-test-key"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    browser = None
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        service = webdriver.ChromeService(executable_path=driver_path)
        browser = webdriver.Chrome(options=options, service=service)
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 20)
        wait.until(ec.text_to_be_present_in_element((By.ID, "model"), "64 labels"))
        browser.find_element(By.ID, "key").send_keys("page-test-key")
        browser.find_element(By.ID, "title").send_keys("wa wb")
        browser.find_element(By.ID, "text").send_keys("wa wb wc wd we wf")
        k = browser.find_element(By.ID, "k")
        k.clear()
        k.send_keys("3")
        browser.find_element(By.ID, "submit").click()
        wait.until(ec.visibility_of_element_located((By.ID, "results")))
        rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr.label")
        assert len(rows) == 3
        names = [r.find_element(By.CLASS_NAME, "name").text for r in rows]
        scores = [float(r.find_element(By.CLASS_NAME, "score").text) for r in rows]
        assert all(n.startswith("label ") for n in names) and scores == sorted(scores, reverse=True)
        # An empty form is refused on the page, a missing key by the API, both said on the page.
        browser.find_element(By.ID, "title").clear()
        browser.find_element(By.ID, "text").clear()
        browser.find_element(By.ID, "submit").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Give a title, a text or both"))
        assert browser.find_element(By.ID, "results").is_displayed() is False
        browser.find_element(By.ID, "text").send_keys("wa wb")
        browser.find_element(By.ID, "key").clear()
        browser.find_element(By.ID, "submit").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "401"))
        assert "X-API-Key" in browser.find_element(By.ID, "status").text
    finally:
        if browser is not None:
            browser.quit()
        proc.terminate()
        proc.wait(30)
