"""The demo's steps run one by one with progress: a spinner while a step works, a line with what it did when
it is done, and a failing step turned into one line naming the step and the cause (its traceback goes to the
demo's log file only)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import requests
from rich.console import Console
from rich.markup import escape

from connector.demo.api import ApiError
from connector.demo.services import ServiceError
from connector.demo.stage import WaitTimeoutError
from connector.domain.errors import StorelinkError
from connector.infra.embedded_redis import EmbeddedRedisError

logger = logging.getLogger(__name__)


class StepFailedError(Exception):
    """A step of the demo failed: `step` is its title, `cause` one line."""

    def __init__(self, step: str, cause: str):
        self.step = step
        self.cause = cause
        super().__init__(f"step '{step}' failed: {cause}")


@dataclass
class Outcome:
    """What a step reports when it is done (shown after its title)."""

    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


def describe(exc: BaseException) -> str:
    """One line for a step's failure: the demo's own errors as they are, the rest with their type."""
    if isinstance(exc, ApiError | ServiceError | WaitTimeoutError | EmbeddedRedisError):
        return str(exc)
    if isinstance(exc, StorelinkError):
        return f"{exc.message} [{exc.code}]"
    if isinstance(exc, requests.ConnectionError):
        return f"could not connect: {exc.request.url if exc.request else exc}"
    if isinstance(exc, requests.Timeout):
        return f"no answer in time from {exc.request.url if exc.request else 'a service'}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextlib.contextmanager
def step(console: Console, number: int, title: str) -> Iterator[Outcome]:
    """Run the block as step `number`; StepFailedError, with the cause in one line, when it raises."""
    began = time.monotonic()
    outcome = Outcome()
    try:
        with console.status(f"[bold]{number}.[/] {escape(title)}…"):
            yield outcome
    except Exception as exc:
        logger.exception("demo step failed", extra={"step": title})
        console.print(f"[red]✗[/] [bold]{number}.[/] {escape(title)}")
        raise StepFailedError(title, describe(exc)) from None
    seconds = time.monotonic() - began
    notes = f": {escape('; '.join(outcome.notes))}" if outcome.notes else ""
    console.print(f"[green]✓[/] [bold]{number}.[/] {escape(title)}{notes} [dim]({seconds:.1f} s)[/]")
