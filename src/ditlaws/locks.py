"""Exclusive locks on run folders and store records, across processes and hosts that share a filesystem.

A lock is a small JSON file (`{"pid", "host", "pid_start", "token", "label", "acquired"}`) created atomically: it is
written under a temporary name and hard-linked to the lock path, which fails if the lock exists, so a lock file is
never seen half-written and only one process can create it. While held, a background thread refreshes the lock
file's modification time every `heartbeat_s` (through the holder's own open file, so it can never refresh a lock
that someone else has since taken over): that mtime is the heartbeat.

A lock is *stale*, and may be taken over, when its holder is gone: on this host, its process no longer exists (or
the pid now belongs to another process, told apart by the process start time); on any host, its heartbeat is older
than `stale_s`. Taking over is serialised by a second, short-lived `<lock>.break` file, so of several processes
that find the same stale lock exactly one replaces it. A holder that was stalled past `stale_s` and taken over
finds out at its next heartbeat (`lost` turns true) and must stop writing.

    lock = folder_lock(run_dir, label="sweep runner")    # <run_dir>/.ditlaws.lock
    if not lock.acquire(blocking=False):                 # another runner has this run: skip it
        print(f"in progress elsewhere: {lock.holder().describe()}")
    with file_lock(record_path, timeout=30):             # or wait (LockBusy, a UserError, after `timeout` s)
        ...
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ditlaws.errors import UserError

FOLDER_LOCK = ".ditlaws.lock"


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux /proc; None elsewhere): tells a live holder from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    if start is not None:
        now = process_start(pid)
        if now is not None and now != start:
            return False  # the pid was reused by a later process
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as read from its file."""

    pid: int
    host: str
    token: str
    label: str
    acquired: float
    heartbeat: float  # the lock file's mtime
    pid_start: str | None = None

    def age(self) -> float:
        return time.time() - self.heartbeat

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.acquired))
        what = f"{self.label}, " if self.label else ""
        return f"{what}pid {self.pid} on {self.host}, since {since}, heartbeat {self.age():.0f} s ago"


class LockBusy(UserError):
    """The lock is held by another live process (`holder`)."""

    def __init__(self, path: Path, holder: Holder | None):
        self.path, self.holder = path, holder
        who = holder.describe() if holder else "another process"
        super().__init__(f"{path}: in use by {who}; wait for it to finish, or stop it first")


class RunLock:
    def __init__(self, path: str | Path, heartbeat_s: float = 5.0, stale_s: float = 60.0, label: str = "",
                 timeout: float | None = None):
        if not 0 < heartbeat_s < stale_s:
            raise ValueError(f"need 0 < heartbeat_s < stale_s, got {heartbeat_s} and {stale_s}")
        self.path = Path(path)
        self.heartbeat_s, self.stale_s, self.label, self.timeout = heartbeat_s, stale_s, label, timeout
        self.host = socket.gethostname()
        self._fd: int | None = None
        self._token: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False

    # -- reading ------------------------------------------------------------------------------------------------

    def holder(self) -> Holder | None:
        """The current holder (maybe this process), or None when the lock is free."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            mtime = os.fstat(fd).st_mtime
            with os.fdopen(os.dup(fd), "rb") as f:
                raw = f.read()
        finally:
            os.close(fd)
        try:
            info = json.loads(raw)
            return Holder(pid=int(info["pid"]), host=str(info["host"]), token=str(info["token"]),
                          label=str(info.get("label", "")), acquired=float(info["acquired"]), heartbeat=mtime,
                          pid_start=info.get("pid_start"))
        except (ValueError, KeyError, TypeError):  # not ours or damaged: judged by its age alone
            return Holder(pid=-1, host="?", token=f"unreadable-{mtime}", label="unreadable lock file",
                          acquired=mtime, heartbeat=mtime)

    def is_stale(self, holder: Holder) -> bool:
        if holder.age() > self.stale_s:
            return True
        return holder.host == self.host and holder.pid > 0 and not alive(holder.pid, holder.pid_start)

    @property
    def held(self) -> bool:
        """True while this object holds the lock and nobody has taken it over."""
        return self._fd is not None and not self._lost and self._still_ours()

    @property
    def lost(self) -> bool:
        """True once a heartbeat found the lock taken over (this holder was judged stale)."""
        return self._lost

    # -- taking and giving back ---------------------------------------------------------------------------------

    def acquire(self, blocking: bool = False, timeout: float | None = None, poll_s: float = 0.5,
                on_wait: Callable[[Holder], None] | None = None) -> bool:
        """Take the lock: True when this process now holds it. Not blocking: False when a live process holds it.
        Blocking: wait (calling `on_wait(holder)` once, e.g. to print a message) up to `timeout` seconds
        (None: forever); False if it is still held then."""
        if self._fd is not None:
            if self.held:
                return True
            self.release()  # taken over while we were stalled: start again
        deadline = None if timeout is None else time.monotonic() + timeout
        announced = False
        while True:
            if self._try_create():
                return True
            current = self.holder()
            if current is not None and self.is_stale(current):
                self._break(current)
                continue
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            if current is not None and not announced and on_wait is not None:
                on_wait(current)
                announced = True
            time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fd is not None:
            if self._still_ours():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            os.close(self._fd)
            self._fd = None
        self._token = None

    def __enter__(self) -> RunLock:
        if not self.acquire(blocking=self.timeout != 0, timeout=self.timeout):
            raise LockBusy(self.path, self.holder())
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- internals ----------------------------------------------------------------------------------------------

    def _try_create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        tmp = self.path.with_name(f".{self.path.name}.{token}.tmp")
        info = {"pid": os.getpid(), "host": self.host, "pid_start": process_start(os.getpid()), "token": token,
                "label": self.label, "acquired": time.time()}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, json.dumps(info).encode())
            os.fsync(fd)
            os.link(tmp, self.path)  # atomic, and fails if the lock exists
        except FileExistsError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._fd, self._token, self._lost = fd, token, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lock-heartbeat {self.path.name}", daemon=True)
        self._thread.start()
        return True

    def _still_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except (FileNotFoundError, OSError, TypeError):
            return False

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if not self._still_ours():
                self._lost = True
                return
            now = time.time()
            os.utime(self._fd, (now, now))  # our own inode: never refreshes a lock taken over by someone else

    def _break(self, stale: Holder) -> None:
        """Remove a stale lock, unless someone else is doing so or has already replaced it."""
        breaker = self.path.with_name(self.path.name + ".break")
        try:
            os.close(os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):  # a breaker killed halfway leaves it: old means abandoned
                if time.time() - os.stat(breaker).st_mtime > self.stale_s:
                    os.unlink(breaker)
            time.sleep(0.01)
            return
        try:
            current = self.holder()
            if current is not None and current.token == stale.token and self.is_stale(current):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(breaker)


def folder_lock(folder: str | Path, **kwargs) -> RunLock:
    """The lock of a run folder: `<folder>/.ditlaws.lock` (kwargs as for `RunLock`)."""
    return RunLock(Path(folder) / FOLDER_LOCK, **kwargs)


def file_lock(path: str | Path, **kwargs) -> RunLock:
    """The lock of one file, such as a store record `runs/<study>/<run_id>.json`: `<file>.lock`."""
    path = Path(path)
    return RunLock(path.with_name(path.name + ".lock"), **kwargs)


_process_start, _alive = process_start, alive  # the names older code and tests use
