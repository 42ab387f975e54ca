"""Retries for Hub calls: which failures are transient, exponential backoff, and messages safe to write down.

Transient: HTTP 408 / 409 / 412 (a commit conflict: retried on the new parent) / 429 / 5xx, time-outs, refused or
dropped connections. Anything else (401 no access, 404 on a write, bad input) fails at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger("ditlaws.store")
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 409, 412, 429, 500, 502, 503, 504})
CONFLICT_STATUS = frozenset({409, 412})


def status_of(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def is_transient(err: BaseException) -> bool:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    if isinstance(err, OfflineModeIsEnabled):
        return False
    if isinstance(err, LocalEntryNotFoundError):  # a download fell back to an empty cache: why it had to
        return err.__cause__ is not None and is_transient(err.__cause__)
    if isinstance(err, HfHubHTTPError):
        return status_of(err) in TRANSIENT_STATUS
    return isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError))


def is_conflict(err: BaseException) -> bool:
    return status_of(err) in CONFLICT_STATUS


def describe(err: BaseException) -> str:
    """One line about a failure, with any Hub token in it masked (messages are logged and written to files)."""
    from huggingface_hub import get_token

    text = str(err).strip().splitlines()
    line = f"{type(err).__name__}: {text[0] if text else ''}".strip()
    status = status_of(err)
    if status is not None and str(status) not in line:
        line += f" (HTTP {status})"
    token = get_token()
    return line.replace(token, "***") if token else line


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with jitter: wait about base_s, 2·base_s, ... (at most max_s) between up to `attempts`
    tries. A commit conflict (another writer got there first) retries soon, on its own budget of `conflicts`.
    `stop()` returning True ends the retries (after at least one try)."""

    attempts: int = 6
    base_s: float = 1.0
    max_s: float = 30.0
    conflicts: int = 20
    timeout_s: float = 30.0  # one HTTP request's limit (`use_timeout`)

    def wait(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2 ** attempt) * (0.75 + 0.5 * random.random())

    def call(self, fn: Callable[[], T], what: str, stop: Callable[[], bool] | None = None) -> T:
        attempt = conflicts = 0
        while True:
            try:
                return fn()
            except Exception as err:
                if is_conflict(err):
                    conflicts += 1
                    if conflicts > self.conflicts or (stop is not None and stop()):
                        raise
                    log.info("hub: %s: %s; retrying on the new parent", what, describe(err))
                    time.sleep(0.2 * random.random())
                    continue
                attempt += 1
                if not is_transient(err) or attempt >= self.attempts or (stop is not None and stop()):
                    raise
                pause = self.wait(attempt - 1)
                log.warning("hub: %s failed (%s); retry %d/%d in %.1f s", what, describe(err), attempt,
                            self.attempts - 1, pause)
                end = time.monotonic() + pause
                while time.monotonic() < end:
                    if stop is not None and stop():
                        raise
                    time.sleep(min(0.1, end - time.monotonic()))


_TIMEOUT: list[float | None] = [None]


def use_timeout(seconds: float) -> None:
    """Give every huggingface_hub HTTP request a time limit (its default client has none, so an endpoint that
    accepts a connection and never answers would hold a push forever); a request that runs out is a transient
    failure, retried within the caller's budget. Process-wide; the shared client is replaced only on a change."""
    if _TIMEOUT[0] == seconds:
        return
    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    def client() -> httpx2.Client:
        made = default_client_factory()
        made.timeout = httpx2.Timeout(seconds)
        return made

    set_client_factory(client)
    _TIMEOUT[0] = seconds
