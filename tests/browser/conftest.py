"""Browser tests: a real headless Chromium (Debian's `/usr/bin/chromium` driven through its
`/usr/bin/chromedriver` by Selenium) against the web app on a real loopback server, with a real worker process,
Redis and database. Skipped, with the reason, where Debian's chromium and chromium-driver are not installed.

They run on one database: PostgreSQL when TEST_DATABASE_URL is set, else SQLite. Screenshots of the pages go to
`<pytest's base temp>/screenshots`, or to STORELINK_SCREENSHOTS when it names a folder (the README's pictures,
docs/screenshots, are refreshed that way).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]


SKIP_REASON = f"{' and '.join(MISSING)} missing: apt-get install -y chromium chromium-driver"


@pytest.fixture(params=["postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One database for the browser tests (they cost seconds each): PostgreSQL when configured, else SQLite."""
    if request.param == "sqlite":
        path = tmp_path / "storelink.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    databases = request.getfixturevalue("postgres_databases")
    with databases.database() as url:
        yield url


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("STORELINK_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
