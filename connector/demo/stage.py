"""What the demo's steps share: the services started, the platform client's API, and what each step made
for the later ones (merchants, programs, creators' links and clicks, the flash sale, the orders)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from connector.demo.api import PlatformApi
from connector.demo.services import Emulators, Sizes, UpProcess
from connector.infra import runtime

WAIT_POLL: Final = 0.25


class WaitTimeoutError(Exception):
    """Something the demo waits for did not happen in time; the message says what and what was seen."""


@dataclass(frozen=True, slots=True)
class Link:
    """A creator's link, and the click ids of the visits made through it."""

    creator_ref: str
    code: str
    product_id: int
    merchant: str
    click_ids: tuple[str, ...] = ()


@dataclass
class Stage:
    console: Console
    sizes: Sizes
    data_dir: Path
    rt: runtime.Runtime
    emulators: Emulators
    up: UpProcess
    started: float
    api: PlatformApi | None = None
    client_id: int = 0
    merchants: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    showcases: list[int] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def web_url(self) -> str:
        return self.up.url

    @property
    def platform(self) -> PlatformApi:
        if self.api is None:
            raise RuntimeError("the platform client is made by an earlier step")
        return self.api

    def creators(self) -> list[str]:
        return [f"creator-{n + 1}" for n in range(self.sizes.creators)]

    def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `check` until it returns something truthy; WaitTimeoutError after `timeout` seconds naming `what`
        (and what `check` saw last when it returns a falsy description). `storelink up` exiting meanwhile is
        the error instead."""
        deadline = time.monotonic() + timeout
        while True:
            self.up.check()
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise WaitTimeoutError(f"{what} did not happen within {timeout:.0f} s")
            time.sleep(WAIT_POLL)
