"""Issue 12.5: run-folder / record locks across real processes — a second taker is refused while the holder lives,
waits with a message, and takes over a lock whose holder was killed (-9) or stopped heartbeating; of several
processes that find one stale lock, exactly one takes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ditlaws.locks import FOLDER_LOCK, LockBusy, RunLock, file_lock, folder_lock

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ditlaws.locks import RunLock
    path, ready, hold_s, heartbeat_s, stale_s = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), \\
        float(sys.argv[4]), float(sys.argv[5])
    lock = RunLock(path, heartbeat_s=heartbeat_s, stale_s=stale_s, label="test holder")
    ok = lock.acquire(blocking=False)
    ready.write_text("acquired" if ok else "busy")
    end = time.monotonic() + hold_s
    while time.monotonic() < end and not lock.lost:
        time.sleep(0.05)
    print("lost" if lock.lost else "held", flush=True)
    lock.release()
""")

RACE = textwrap.dedent("""
    import sys, time
    from ditlaws.locks import RunLock
    path, start_at, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    lock = RunLock(path, heartbeat_s=0.2, stale_s=2.0)
    while time.time() < start_at:
        pass
    ok = lock.acquire(blocking=False)
    open(out, "w").write("1" if ok else "0")
    time.sleep(2.0)  # keep holding while the others try
    lock.release()
""")


def spawn(code: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def holder_process(lock_path: Path, tmp_path: Path, hold_s=60.0, heartbeat_s=0.2, stale_s=60.0, name="ready"):
    ready = tmp_path / name
    proc = spawn(HOLD, lock_path, ready, hold_s, heartbeat_s, stale_s)
    assert wait_for(ready) == "acquired"
    return proc


def test_second_taker_is_refused_then_takes_over_after_kill_9(tmp_path):
    lock_path = tmp_path / "run" / FOLDER_LOCK
    proc = holder_process(lock_path, tmp_path)
    lock = folder_lock(tmp_path / "run", heartbeat_s=0.2, stale_s=60.0)
    assert not lock.acquire(blocking=False)
    holder = lock.holder()
    assert (holder.pid, holder.label) == (proc.pid, "test holder") and not lock.is_stale(holder)
    assert f"pid {proc.pid} on " in holder.describe()
    with pytest.raises(LockBusy, match=rf"in use by test holder, pid {proc.pid} on "):
        with folder_lock(tmp_path / "run", timeout=0):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock.is_stale(lock.holder())  # the process is gone on this host: stale at once, heartbeat or not
    assert lock.acquire(blocking=False) and lock.held
    assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not lock_path.exists()


def test_waiting_taker_gets_the_lock_when_the_holder_finishes(tmp_path):
    lock_path = tmp_path / "record.json.lock"
    proc = holder_process(lock_path, tmp_path, hold_s=1.5)
    messages = []
    lock = file_lock(tmp_path / "record.json")
    started = time.monotonic()
    assert lock.acquire(blocking=True, timeout=60, poll_s=0.05, on_wait=lambda h: messages.append(h.describe()))
    assert time.monotonic() - started > 0.3 and proc.wait() == 0
    assert len(messages) == 1 and f"pid {proc.pid}" in messages[0]
    lock.release()
    again = RunLock(lock_path)
    assert again.acquire(blocking=False)  # free again
    again.release()


def test_a_stopped_holder_goes_stale_by_heartbeat_and_learns_it_lost(tmp_path):
    lock_path = tmp_path / "lock"
    proc = holder_process(lock_path, tmp_path, hold_s=30, heartbeat_s=0.1, stale_s=1.0)
    lock = RunLock(lock_path, heartbeat_s=0.1, stale_s=1.0)
    time.sleep(1.5)
    assert not lock.acquire(blocking=False)  # alive and heartbeating: not stale however long it holds
    assert lock.holder().age() < 1.0
    proc.send_signal(signal.SIGSTOP)  # hung: alive, but its heartbeat stops
    try:
        assert lock.acquire(blocking=True, timeout=30, poll_s=0.1)
    finally:
        proc.send_signal(signal.SIGCONT)
    assert proc.communicate(timeout=60)[0].strip() == "lost"  # it noticed at its next heartbeat
    assert lock.held and json.loads(lock_path.read_text())["pid"] == os.getpid()  # and left our lock alone
    lock.release()


def test_lock_of_another_host_is_stale_only_by_heartbeat(tmp_path):
    lock_path = tmp_path / "lock"
    lock_path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "token": "t", "acquired": time.time()}))
    lock = RunLock(lock_path, heartbeat_s=0.1, stale_s=5.0)
    assert not lock.acquire(blocking=False)  # pid 1 may well live on that host: trust its heartbeat
    old = time.time() - 10
    os.utime(lock_path, (old, old))
    assert lock.acquire(blocking=False)
    lock.release()


@pytest.mark.parametrize("attempt", range(3))
def test_exactly_one_of_several_takes_over_a_stale_lock(tmp_path, attempt):
    lock_path = tmp_path / "lock"
    dead = spawn("import os; print(os.getpid())")
    pid = int(dead.communicate()[0])
    lock_path.write_text(json.dumps({"pid": pid, "host": RunLock(lock_path).host, "token": "dead",
                                     "acquired": time.time()}))
    start_at = time.time() + 3.0  # all four try at the same moment
    outs = [tmp_path / f"out{i}" for i in range(4)]
    procs = [spawn(RACE, lock_path, start_at, out) for out in outs]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    assert sorted(out.read_text() for out in outs) == ["0", "0", "0", "1"]
    assert not lock_path.exists() and not list(tmp_path.glob("*.break")) and not list(tmp_path.glob(".*tmp"))
