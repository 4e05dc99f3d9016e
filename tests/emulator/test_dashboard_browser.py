"""The dashboard in a real headless browser (Debian's Chromium, driven by Selenium), against
the emulator: the page lists the queues and a running worker; a dead job is retried with a
click and runs; purge asks first; a message full of HTML and script is shown as text and
runs nothing; a POST from another site is refused.

Chromium and ChromeDriver come from Debian (``apt-get install chromium chromium-driver``;
``.ci/run`` installs them). Without them these tests skip on a developer's machine and fail
in CI (``CI`` set): a browser test that cannot run must not pass unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pubsub_jobs import job
from pubsub_jobs.dashboard.config import DashboardConfig
from pubsub_jobs.dashboard.server import DashboardServer
from pubsub_jobs.dead import list_dead
from pubsub_jobs.message import format_time, utcnow
from pubsub_jobs.settings import Settings
from pubsub_jobs.testing.helpers import publish_raw
from pubsub_jobs.worker import Worker
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1280,1000")

FAILING: set[str] = set()
RAN: list[str] = []
RELEASE = threading.Event()


@job(queue="web", max_attempts=1)
def charge(order: str) -> None:
    """Fails while its order is in FAILING: one attempt, then the dead set."""
    if order in FAILING:
        raise ConnectionError(f"payment provider down for {order}")
    RAN.append(order)


@job(queue="web")
def export(n: int) -> None:
    """Runs until the test releases it."""
    RELEASE.wait(60)


def _find(name: str) -> str | None:
    for candidate in (shutil.which(name), f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium of Debian's, with a fresh profile; quit after the module."""
    chromium, driver_path = _find("chromium"), _find("chromedriver")
    if chromium is None or driver_path is None:
        message = ("Chromium or ChromeDriver is missing: apt-get install chromium "
                   "chromium-driver (.ci/run does)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pubsub-jobs-chromium-")
    options = Options()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")  # never let Selenium Manager look for downloads
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def dashboard(pubsub_jobs_settings: Settings, bootstrap_queues,
              browser: Any) -> Iterator[Callable[..., DashboardServer]]:
    """``dashboard("web", ...)`` bootstraps the queues and serves a dashboard for them on
    127.0.0.1 (a free port), stopped after the test; the browser starts with no cookies."""
    started: list[DashboardServer] = []

    def start(*queues: str) -> DashboardServer:
        bootstrap_queues(*queues)
        config = DashboardConfig(queues=queues, host="127.0.0.1", port=0, refresh_seconds=1,
                                 page_size=20)
        server = DashboardServer(config, pubsub_jobs_settings).start()
        started.append(server)
        return server

    browser.delete_all_cookies()
    yield start
    for server in started:
        server.stop()


def settled(action: Callable[[], Any], timeout: float = 10) -> Any:
    """``action()``, tried again while the element it used was swapped by the page's own
    update (a stale element) or is not there yet."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def attempt() -> Any:
        try:
            return (action(),)
        except (StaleElementReferenceException, NoSuchElementException):
            return None

    return wait_for(attempt, timeout, "a settled page", every=0.1)[0]


def wait_text(browser: Any, element_id: str, text: str, timeout: float = 20) -> str:
    from selenium.webdriver.common.by import By

    def found() -> str | None:
        content = str(settled(lambda: browser.find_element(By.ID, element_id).text))
        return content if text in content else None

    return wait_for(found, timeout, f"{text!r} in #{element_id}", every=0.2)


def button(browser: Any, label: str, job_id: str | None = None) -> Any:
    """The button whose text (visible and for screen readers) says ``label`` (and names
    ``job_id``)."""
    from selenium.webdriver.common.by import By

    for candidate in browser.find_elements(By.TAG_NAME, "button"):
        text = candidate.get_attribute("textContent") or ""
        if text.startswith(label) and (job_id is None or job_id in text):
            return candidate
    raise AssertionError(f"no button {label!r} {job_id or ''}")


def press(browser: Any, label: str, job_id: str | None = None, *keys: str) -> None:
    """Click the button (or type ``keys`` on it), finding it again if the page swapped it."""
    settled(lambda: button(browser, label, job_id).send_keys(*keys) if keys
            else button(browser, label, job_id).click())


def test_the_page_lists_the_queues_and_a_running_worker(
    pubsub_jobs_settings: Settings, dashboard, browser: Any
) -> None:
    server = dashboard("web", "web-mailers")
    RELEASE.clear()
    worker = Worker(["web=4", "web-mailers"], settings=pubsub_jobs_settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        export.enqueue(1)
        browser.get(server.url + "/")
        assert browser.title.startswith("Queues and workers")
        queues = wait_text(browser, "queues", "web-mailers")
        assert pubsub_jobs_settings.topic("web") in queues
        assert pubsub_jobs_settings.subscription("web-mailers") in queues
        assert "unknown on the emulator" in queues
        # The page updates itself: the worker's heartbeat and its running job appear.
        workers = wait_text(browser, "workers", export.name, timeout=30)
        assert f"pid {os.getpid()}" in workers and "web ×4" in workers and "ok" in workers
    finally:
        RELEASE.set()
        worker.request_stop()
        thread.join(30)
    wait_text(browser, "workers", "No worker has sent a heartbeat", timeout=20)


def test_a_dead_job_is_retried_with_a_click_and_runs(
    pubsub_jobs_settings: Settings, dashboard, browser: Any, drain_queues
) -> None:
    server = dashboard("web")
    FAILING.clear()
    FAILING.add("order-7")
    RAN.clear()
    dead_id = charge.enqueue("order-7").job_id
    drain_queues("web", idle=1.0)
    wait_for(lambda: list_dead("web"), 15, "the dead job")
    browser.get(server.url + "/queues/web/dead")
    listing = wait_text(browser, "dead-list", dead_id)
    assert "ConnectionError: payment provider down for order-7" in listing
    assert '["order-7"]' in listing and "max_attempts" in listing

    FAILING.clear()
    press(browser, "Retry", dead_id)
    flash = wait_text(browser, "flash", "Retried 1 job")
    assert pubsub_jobs_settings.topic_path("web") in flash
    wait_text(browser, "dead-list", "The dead set is empty")
    drain_queues("web", idle=1.0)
    assert RAN == ["order-7"]


def test_a_selection_is_retried_from_the_keyboard(
    pubsub_jobs_settings: Settings, dashboard, browser: Any, drain_queues
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server = dashboard("web")
    FAILING.clear()
    FAILING.update({"a", "b", "c"})
    RAN.clear()
    ids = {order: charge.enqueue(order).job_id for order in ("a", "b", "c")}
    drain_queues("web", idle=1.0)
    wait_for(lambda: len(list_dead("web")) == 3, 15, "three dead jobs")
    browser.get(server.url + "/queues/web/dead")
    wait_text(browser, "dead-list", "3 dead jobs")

    def tick(order: str) -> None:
        box = browser.find_element(By.CSS_SELECTOR, f'input[name="ids"][value="{ids[order]}"]')
        label = browser.find_element(By.CSS_SELECTOR, f'label[for="{box.get_attribute("id")}"]')
        assert ids[order] in (label.get_attribute("textContent") or "")
        box.send_keys(Keys.SPACE)  # once a box is ticked, the page's updates leave the list
        assert box.is_selected()

    for order in ("a", "c"):
        settled(lambda order=order: tick(order))
    FAILING.clear()
    press(browser, "Retry selected", None, Keys.ENTER)
    wait_text(browser, "flash", "Retried 2 jobs")
    assert [j.job_id for j in list_dead("web")] == [ids["b"]]
    drain_queues("web", idle=1.0)
    assert sorted(RAN) == ["a", "c"]


def test_purge_asks_first(pubsub_jobs_settings: Settings, dashboard, browser: Any,
                          drain_queues) -> None:
    from selenium.webdriver.common.by import By

    server = dashboard("web")
    FAILING.clear()
    FAILING.update({"x", "y"})
    first, second = charge.enqueue("x").job_id, charge.enqueue("y").job_id
    drain_queues("web", idle=1.0)
    wait_for(lambda: len(list_dead("web")) == 2, 15, "two dead jobs")
    browser.get(server.url + "/queues/web/dead")
    wait_text(browser, "dead-list", first)

    def heading() -> str:
        text: str = settled(lambda: browser.find_element(By.TAG_NAME, "h1").text)
        return text

    press(browser, "Purge…", first)
    # the click loads the question page: wait for it rather than read the old page
    wait_for(lambda: heading() == "Purge 1 dead job of queue web?", 20, "the purge question")
    assert first in settled(lambda: browser.find_element(By.CLASS_NAME, "confirm-list").text)
    assert len(list_dead("web")) == 2  # asking removed nothing
    settled(lambda: browser.find_element(By.ID, "cancel-purge").click())
    wait_text(browser, "dead-list", first)
    assert len(list_dead("web")) == 2

    press(browser, "Purge…", first)
    wait_for(lambda: heading() == "Purge 1 dead job of queue web?", 20, "the purge question")
    settled(lambda: browser.find_element(By.ID, "confirm-purge").click())
    wait_text(browser, "flash", "Purged 1 job")
    assert [j.job_id for j in list_dead("web")] == [second]


def test_html_and_script_in_a_message_are_shown_as_text(
    pubsub_jobs_settings: Settings, dashboard, browser: Any, drain_queues
) -> None:
    from selenium.webdriver.common.by import By

    server = dashboard("web")
    name = '<img src=x onerror="window.__pwned=1">'
    job_id = "<script>window.__pwned=2</script>"
    publish_raw("web", json.dumps({"args": ["</code><script>window.__pwned=3</script>"],
                                   "kwargs": {"<b>k</b>": "<svg onload=window.__pwned=4>"}}
                                  ).encode(),
                {"job_name": name, "job_id": job_id, "queue_name": "web",
                 "enqueued_at": format_time(utcnow()), "wire_version": "1",
                 "note": "<iframe src=javascript:window.__pwned=5>"},
                pubsub_jobs_settings)
    drain_queues("web", idle=1.0)
    wait_for(lambda: list_dead("web"), 15, "the dead message")
    browser.get(server.url + "/queues/web/dead")
    listing = wait_text(browser, "dead-list", job_id)
    assert name in listing and "unknown_job" in listing
    assert "</code><script>window.__pwned=3</script>" in listing
    settled(lambda: browser.find_element(By.CSS_SELECTOR, "#dead-list details summary").click())
    details = settled(lambda: browser.find_element(By.CSS_SELECTOR, "#dead-list details").text)
    assert "<iframe src=javascript:window.__pwned=5>" in details
    main = browser.find_element(By.TAG_NAME, "main")
    for tag in ("img", "script", "svg", "iframe", "b"):
        assert main.find_elements(By.TAG_NAME, tag) == [], tag
    assert browser.execute_script("return window.__pwned") is None
    assert settled(lambda: button(browser, "Retry", job_id))  # the id, intact in attributes


class AttackerSite:
    """Another site's page (another port, so another origin) with a form that posts to the
    dashboard, as a CSRF attack would."""

    def __init__(self, target: str, csrf_token: str) -> None:
        page = (f'<!doctype html><title>win a prize</title><form method="post" '
                f'action="{target}"><input type="hidden" name="all" value="1">'
                f'<input type="hidden" name="csrf_token" value="{csrf_token}">'
                '<button id="go">Claim</button></form>').encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.mark.parametrize("attacker_host", ["127.0.0.1", "localhost"])
def test_a_post_from_another_site_is_refused(
    pubsub_jobs_settings: Settings, dashboard, browser: Any, drain_queues, attacker_host: str
) -> None:
    from selenium.webdriver.common.by import By

    server = dashboard("web")
    FAILING.clear()
    FAILING.add("z")
    charge.enqueue("z")
    drain_queues("web", idle=1.0)
    wait_for(lambda: list_dead("web"), 15, "the dead job")
    browser.get(server.url + "/queues/web/dead")  # the person's session cookie is set
    token = browser.find_element(By.NAME, "csrf_token").get_attribute("value")
    site = AttackerSite(server.url + "/queues/web/dead/retry", token)
    try:
        browser.get(f"http://{attacker_host}:{site.port}/")
        browser.find_element(By.ID, "go").click()
        # The click navigates: while the answer loads there is no body yet (settled waits).
        wait_for(lambda: "refused" in settled(
            lambda: browser.find_element(By.TAG_NAME, "body").text), 15,
            "the dashboard's refusal")
        assert "changes are accepted only from the dashboard's own pages" in \
            settled(lambda: browser.find_element(By.TAG_NAME, "body").text)
    finally:
        site.close()
    assert len(list_dead("web")) == 1  # nothing was retried
