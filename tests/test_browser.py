"""The chat in a real browser: headless Chromium driven by Selenium, against the app on loopback."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

BOT = '#chat [data-testid="bot"]'  # the assistant's messages
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not CHROMIUM or not Path(CHROMEDRIVER).exists():
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def ask(driver, question: str, replies_before: int) -> str:
    """Type the question, press Send and wait for the next reply; returns its visible text."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    box = driver.find_element(By.CSS_SELECTOR, "#question textarea")
    box.clear()
    box.send_keys(question)
    driver.find_element(By.ID, "send").click()

    def answered(d):
        found = d.find_elements(By.CSS_SELECTOR, BOT)
        return found[-1] if len(found) > replies_before and found[-1].text.strip() else False

    return WebDriverWait(driver, 120, poll_frequency=0.5).until(answered).text


def test_chat_answers_in_the_browser(browser, app_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(app_server["url"])
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#question textarea"))
    reply = ask(browser, "Who directed the film?", 0)
    assert "Kang Yun-sung" in reply
    # open the source so the screenshot shows the highlighted passage
    browser.find_elements(By.CSS_SELECTOR, "#chat details summary")[-1].click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chat details[open] mark"))
    assert "Kang Yun-sung" in browser.find_elements(By.CSS_SELECTOR, "#chat details[open] mark")[-1].text

    browser.execute_script("document.querySelector('#chat [role=log]').scrollTop = 0")  # question in view
    shot = tmp_path / "chat.png"
    assert browser.save_screenshot(str(shot))
    if os.environ.get("QA_SCREENSHOT"):
        target = Path(os.environ["QA_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def test_question_markup_is_not_executed(browser, app_server):
    from selenium.webdriver.common.by import By

    if not browser.find_elements(By.CSS_SELECTOR, "#question textarea"):
        browser.get(app_server["url"])
    before = len(browser.find_elements(By.CSS_SELECTOR, BOT))
    ask(browser, "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\"> who directed it?", before)
    assert not browser.find_elements(By.CSS_SELECTOR, "#chat script, #chat img[src='x']")
    assert browser.execute_script("return window.pwned === undefined")
    assert "<script>window.pwned=1</script>" in browser.find_element(By.ID, "chat").text  # shown as text
