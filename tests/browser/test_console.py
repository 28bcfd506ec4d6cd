"""The console in a real headless Chromium, against the app on a loopback server and a real worker process:
support signs in, dry-runs and applies a resync and watches it to the end, dry-runs an inventory resync and
sees the stock difference, retries a failed job and replays a failed webhook delivery and sees both succeed; a
problem shows on a merchant's page while its cause (a feed file removed) lasts and clears with the next run
that succeeds; a merchant user sees its own merchant only. Screenshots of the main pages are saved (see
conftest)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import select

from config.settings import Settings
from connector.catalog import syncs
from connector.infra import outbox
from connector.infra.models import Delivery
from connector.infra.runtime import Runtime
from connector.sandbox.feeds import write_feed
from connector.sandbox.platform import Server, serve
from tests.browser.conftest import MISSING, SKIP_REASON
from tests.helpers import Processes, ServedApp, add_feed_merchant, process_env, rewrite_feed, wait_for
from tests.integration.console_support import PASSWORD, add_user
from webhooks.outbound.endpoints import create_endpoint

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.skipif(bool(MISSING), reason=SKIP_REASON)]

ROWS = 1500


@dataclass
class Site:
    url: str
    rt: Runtime
    acme: int
    bolt: int
    driver: WebDriver
    shots: Path
    worker: subprocess.Popen[bytes]

    def open(self, path: str) -> None:
        self.driver.get(self.url + path)

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, check: Callable[[WebDriver], Any], timeout: float = 30) -> Any:
        waiting = WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(WebDriverException,),  # a page reloading under it
        )
        return waiting.until(check)

    def text(self) -> str:
        return str(self.find("body").text)

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        self.open("/")
        self.wait(lambda d: d.find_elements(By.ID, "sign-in-form"))
        self.find("#email").clear()
        self.find("#email").send_keys(email)
        self.find("#password").send_keys(password)
        self.find("#sign-in").click()

    def shot(self, name: str) -> None:
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))


@pytest.fixture
def site(
    rt: Runtime, settings: Settings, tmp_path: Path, browser: WebDriver, screenshots: Path
) -> Iterator[Site]:
    acme = add_feed_merchant(rt, write_feed(tmp_path / "acme.csv", ROWS), name="acme")
    bolt = add_feed_merchant(rt, tmp_path / "bolt.csv", name="bolt")  # its feed is not there yet
    add_user(rt, "support@storelink.example")
    add_user(rt, "owner@acme.example", "merchant", ("acme",))
    served = ServedApp(rt)
    env = process_env(
        settings, tmp_path, WEBHOOK_ALLOW_PRIVATE_URLS="true", LOG_LEVEL="WARNING", SYNC_BATCH_SIZE="50"
    )
    procs = Processes(env, tmp_path)
    worker = procs.start("worker", "worker", "--queues", "orders,events,sync,bulk,webhooks")
    try:
        yield Site(served.url, rt, acme, bolt, browser, screenshots, worker)
    finally:
        procs.stop()
        served.close()


RUN_STATE = """
const bar = document.getElementById("run-bar"), status = document.getElementById("run-status"),
      box = document.getElementById("run-progress");
return [bar ? bar.getAttribute("value") || "" : "", status ? status.textContent.trim() : "", box ? box.dataset.finished : ""];
"""


def _bar_partway(driver: WebDriver) -> str | None:
    value = str(driver.execute_script(RUN_STATE)[0])
    return value if value not in ("", "0", "100") else None


def _held_partway(site: Site, start: str) -> str:
    """Press a resync button with the worker held still, let it start the run, and hold it again partway; the
    bar's value the page shows then (so the page is seen following a run, however fast the machine)."""
    before = site.driver.current_url
    site.worker.send_signal(signal.SIGSTOP)
    try:
        site.find(start).click()
        site.wait(lambda d: "/runs/" in d.current_url and d.current_url != before)
        run_id = int(site.driver.current_url.rsplit("/", 1)[1])
        site.worker.send_signal(signal.SIGCONT)
        wait_for(lambda: syncs.get_run(site.rt, run_id).rows_read, 30, "the run to start", interval=0.001)
        site.worker.send_signal(signal.SIGSTOP)
        assert syncs.get_run(site.rt, run_id).status == "running", "the run was held partway"
        return str(site.wait(_bar_partway))
    finally:
        site.worker.send_signal(signal.SIGCONT)


def _resync(
    site: Site, start: str | None, rows: str | None = f"{ROWS} rows", status: str = "succeeded"
) -> list[str]:
    """Press a resync button (None: it was pressed) and follow its page until the run ends (the page polls,
    then reloads); returns the progress bar's values seen on the way."""
    if start is not None:
        before = site.driver.current_url
        site.find(start).click()
        site.wait(lambda d: "/runs/" in d.current_url and d.current_url != before)
    seen: list[str] = []

    def finished(driver: WebDriver) -> bool:
        value, state, done = driver.execute_script(RUN_STATE)
        seen.append(value)
        return bool(done == "true" and state in ("succeeded", "failed"))

    site.wait(finished, timeout=60)
    assert site.find("#run-status").text == status
    assert site.find("#run-bar").get_attribute("value") == "100"
    if rows is not None:
        assert rows in site.find("#run-rows").text
    return seen


def _fail_a_sync_job(site: Site, feed: Path) -> str:
    run = syncs.request_sync(site.rt, site.bolt)
    jobs = wait_for(lambda: site.rt.queues.failed_jobs(), 30, "the sync job to fail")
    assert syncs.get_run(site.rt, run.id).status == "failed"
    write_feed(feed, 3)  # the cause is fixed
    return str(jobs[0].id)  # type: ignore[index]


def _fail_a_delivery(site: Site, platform: Server) -> int:
    with site.rt.db.session() as session:
        created = create_endpoint(
            session, site.rt.secrets, url=platform.url, event_types=["*"], allow_private=True
        )
    platform.receiver.add_secret(created.secret)
    platform.receiver.plan(400)  # the first answer refuses; the next ones take it
    with site.rt.db.session() as session:
        outbox.publish(session, [outbox.DomainEvent("product.updated", site.acme, {"id": "console"})])

    def failed() -> int | None:
        with site.rt.db.session() as session:
            return session.scalar(select(Delivery.id).where(Delivery.status == "failed"))

    return int(wait_for(failed, 30, "the delivery to fail"))  # type: ignore[arg-type]


@pytest.fixture
def platform() -> Iterator[Server]:
    with serve() as server:
        yield server


def test_support_resyncs_retries_and_replays(site: Site, platform: Server, tmp_path: Path) -> None:
    started = time.monotonic()
    site.sign_in("support@storelink.example")
    site.wait(lambda d: d.find_elements(By.ID, "merchants"))
    assert "support@storelink.example · support" in site.find("#signed-in-as").text
    assert {"acme", "bolt"} <= {
        a.text for a in site.driver.find_elements(By.CSS_SELECTOR, "#merchants td > a")
    }

    site.open(f"/console/merchants/{site.acme}")
    _resync(site, "#dry-run-catalog")
    assert site.find("#diff").find_elements(By.CSS_SELECTOR, "tbody tr")
    site.shot("dry-run")
    partway = _held_partway(site, "#apply")
    assert 0 < int(partway) < 100, "the bar moved while the run ran, as the page polled"
    _resync(site, None)
    assert f"created {ROWS}" in site.find("#run-counts").text
    site.open(f"/console/merchants/{site.acme}")
    assert "catalog" in site.find("#runs").text

    rewrite_feed(tmp_path / "acme.csv", lambda i, row: {**row, "quantity": "37"} if i == 0 else row)
    _resync(site, "#dry-run-inventory", rows=f"{ROWS} variants of {ROWS}")
    stock = [
        [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in site.find("#diff").find_elements(By.CSS_SELECTOR, "tbody tr")
    ]
    assert len(stock) == 1 and stock[0][0] == "SKU-000001" and stock[0][3] == "37", stock
    assert stock[0][4] == f"{37 - int(stock[0][2]):+d}", "the difference is the store's less the stored"
    assert "stock differences 1" in site.find("#run-counts").text
    site.shot("dry-run-inventory")

    job = _fail_a_sync_job(site, tmp_path / "bolt.csv")
    site.open("/console/queues")
    row = site.find(f'tr[data-job="{job}"]')
    assert "bolt.csv does not exist" in row.text
    site.shot("queues")
    site.find(f'tr[data-job="{job}"] button').click()
    site.wait(lambda d: "requeued" in site.find(".flash").text)
    for _ in range(300):
        site.open(f"/console/merchants/{site.bolt}")
        if "succeeded" in site.find("#runs tbody tr").text:
            break
        time.sleep(0.1)
    assert "succeeded" in site.find("#runs tbody tr").text

    delivery = _fail_a_delivery(site, platform)
    site.open("/console/webhooks")
    assert "HTTP 400" in site.find(f'tr[data-delivery="{delivery}"]').text or "400" in site.text()
    site.shot("webhooks")
    site.find(f"#replay-{delivery}").click()
    site.wait(lambda d: "replayed" in site.find(".flash").text)
    for _ in range(300):
        site.open("/console/webhooks")
        if site.find(f'tr[data-delivery="{delivery}"] .delivery-status').text == "succeeded":
            break
        time.sleep(0.1)
    assert site.find(f'tr[data-delivery="{delivery}"] .delivery-status').text == "succeeded"

    assert time.monotonic() - started < 90


def _problems(site: Site) -> list[str]:
    return [
        str(p.get_attribute("data-problem"))
        for p in site.driver.find_elements(By.CSS_SELECTOR, "#problems [data-problem]")
    ]


def test_a_problem_shows_while_its_cause_lasts_and_clears_with_the_next_good_run(
    site: Site, tmp_path: Path
) -> None:
    feed = write_feed(tmp_path / "bolt.csv", 6)
    site.sign_in("support@storelink.example")
    site.wait(lambda d: d.find_elements(By.ID, "merchants"))
    page = f"/console/merchants/{site.bolt}"
    site.open(page)
    _resync(site, "#dry-run-catalog", rows="6 rows")
    _resync(site, "#apply", rows="6 rows")
    site.open(page)
    assert _problems(site) == [] and site.find("#no-problems")
    assert site.find("#dry-run-orders").get_attribute("disabled") is not None
    assert "its store takes no orders" in site.find("#refused-orders").text

    feed.unlink()  # the cause: the feed file is gone
    _resync(site, "#dry-run-catalog", rows=None, status="failed")
    assert "does not exist" in site.find("#run-error").text
    site.open(page)
    assert _problems(site) == ["store_unreachable"]
    shown = site.find('#problems [data-problem="store_unreachable"]').text
    assert "Store or feed unreachable" in shown and "bolt.csv does not exist" in shown
    assert "seen 1 time" in shown and "What to do: The store or feed address did not answer" in shown
    site.shot("merchant")
    site.open("/console/")
    assert site.find(f'#merchants tr[data-merchant="{site.bolt}"] [data-problem="store_unreachable"]')
    site.shot("merchants")

    write_feed(feed, 6)  # the cause is gone; the next run that reads the feed clears the problem
    site.open(page)
    _resync(site, "#dry-run-catalog", rows="6 rows")
    site.open(page)
    assert _problems(site) == [] and site.find("#no-problems")
    assert site.find("#problem-history-box").get_attribute("open") is not None  # shown once all cleared
    assert (
        "Store or feed unreachable" in site.find('#problem-history [data-cleared="store_unreachable"]').text
    )


def test_a_merchant_user_sees_only_its_merchant(site: Site) -> None:
    site.sign_in("owner@acme.example", "not the password at all")
    site.wait(lambda d: d.find_elements(By.ID, "sign-in-error"))
    assert "Wrong email or password." in site.find("#sign-in-error").text
    site.sign_in("owner@acme.example")
    site.wait(lambda d: d.find_elements(By.ID, "merchants"))
    assert [a.text for a in site.driver.find_elements(By.CSS_SELECTOR, "#merchants td > a")] == ["acme"]
    assert not site.driver.find_elements(By.LINK_TEXT, "Queues")
    site.open(f"/console/merchants/{site.acme}")
    assert site.find("#merchant-name").text.startswith("acme")
    site.open(f"/console/merchants/{site.bolt}")
    assert "not_found" in site.text() and "bolt" not in site.text()
    site.open("/console/queues")
    assert "forbidden" in site.text()
    site.open("/console/")
    site.find("#sign-out").click()
    site.wait(lambda d: d.find_elements(By.ID, "sign-in-form"))
    assert "Signed out." in site.text()
    site.open(f"/console/merchants/{site.acme}")
    assert site.driver.find_elements(By.ID, "sign-in-form")
