"""Each state of the chat in headless Chromium: the page (heading face, plurals, examples from the
articles), an answer, an article added (upload box cleared), removal asking for confirmation, and the
read-only page. With QA_SCREENSHOTS=DIR each state is saved there as a small PNG (docs/*.png)."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from .test_browser import BOT, ask, browser  # noqa: F401 - the shared headless Chromium fixture

pytestmark = pytest.mark.browser

ARTICLE = ("Tartu Opens Solar-Powered Footbridge\n\nTartu, 2025-11-02. The city of Tartu opened a solar-powered "
           "footbridge over the Emajogi river on Friday. It cost 4.2 million euros.\n")


def shot(driver, name: str, show: str | None = None) -> None:
    """Save the window as docs/NAME.png when QA_SCREENSHOTS names a folder, with the element `show`
    (a CSS selector) scrolled into view; 64 colours keep it small."""
    target = os.environ.get("QA_SCREENSHOTS")
    if not target:
        return
    if show:
        driver.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'center'})", show)
    from PIL import Image

    path = Path(target) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    Image.open(path).convert("RGB").quantize(64).save(path, optimize=True)


def wait(driver, condition, seconds: float = 120):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.3).until(condition)


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else ""


def test_each_state_of_the_chat(browser, app_server, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.get(app_server["url"])
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#question textarea"))
    # the heading's bold face is really loaded (not a thinner synthetic bold of another face)
    assert d.execute_async_script(
        "const done = arguments[0]; document.fonts.load('700 32px \"Source Sans Pro\"')"
        ".then(f => done(f.length > 0 && document.fonts.check('700 32px \"Source Sans Pro\"')))")
    assert "1 indexed article" in text_of(d, "#articles") and "article(s)" not in text_of(d, "#articles")
    assert "8 passages" in text_of(d, "#articles")
    assert "Who directed the film?" in text_of(d, "#examples")  # examples a person would ask, from the article

    reply = ask(d, "Who directed the film?", 0)
    assert "Kang Yun-sung" in reply
    shot(d, "chat")

    # add an article: the status says so, the list grows, the upload box is emptied
    upload = tmp_path / "Tartu bridge.txt"
    upload.write_text(ARTICLE, encoding="utf-8")
    d.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(upload))
    wait(d, lambda d: "Tartu" in text_of(d, "#upload"))
    d.find_element(By.ID, "add").click()
    wait(d, lambda d: "Added" in text_of(d, "#article-status"))
    assert "2 indexed articles" in text_of(d, "#articles")
    wait(d, lambda d: "Tartu" not in text_of(d, "#upload"), 20)
    shot(d, "added", "#article-status")

    # remove it: first a confirmation, then the removal
    box = d.find_element(By.CSS_SELECTOR, "#remove-choice input")
    for _ in range(20):  # the dropdown's choices arrive a moment after "Added": until then Enter selects nothing
        box.click()
        box.clear()
        box.send_keys("Tartu-bridge.txt")
        box.send_keys(Keys.ENTER)
        time.sleep(0.5)
        if box.get_attribute("value") == "Tartu-bridge.txt":
            break
    d.find_element(By.ID, "remove").click()
    wait(d, lambda d: "Remove Tartu-bridge.txt?" in text_of(d, "#confirm-text"))
    assert "Tartu-bridge.txt" in app_server["qa"].articles  # nothing removed yet
    shot(d, "remove-confirm", "#confirm-box")
    d.find_element(By.ID, "confirm-remove").click()
    wait(d, lambda d: "Removed" in text_of(d, "#article-status"))
    assert "Tartu-bridge.txt" not in app_server["qa"].articles
    assert "1 indexed article" in text_of(d, "#articles")


def test_read_only_page(browser, app_qa):  # noqa: F811
    from selenium.webdriver.common.by import By

    from qa.web import page as chat_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = chat_app.build_app(app_qa, read_only=True)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                **chat_app.launch_options(app_qa))
    try:
        browser.get(demo.local_url)
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#question textarea"))
        assert "Read-only" in text_of(browser, "#read-only")
        assert not browser.find_elements(By.CSS_SELECTOR, "#upload, #remove, #add")
        ask(browser, "When did it open in theaters?", 0)
        shot(browser, "read-only")
    finally:
        demo.close()
