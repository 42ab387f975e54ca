"""Drive the Space in a real headless Chromium (Debian's ``chromium`` through Playwright's Python API), for the
tests and the README screenshot: start ``app.py`` on 127.0.0.1, open it, type a budget, read the page.

    with served_app(["--fit", "fit.json"]) as app, chromium_page() as page:
        open_app(page, app.url); ask_budget(page, "1.5e21"); read_box(page, "n_opt")
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
APP = Path(__file__).resolve().parents[3] / "hub_cards" / "space" / "app.py"


def find_chromium() -> str | None:
    """Debian's chromium (DITLAWS_CHROMIUM overrides), or None when it is not installed."""
    return os.environ.get("DITLAWS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Served:
    url: str
    pid: int

    def loaded_libraries(self) -> str | None:
        """The shared objects mapped into the app's process (Linux), e.g. to check that torch never loaded."""
        maps = Path(f"/proc/{self.pid}/maps")
        return maps.read_text() if maps.exists() else None


@contextlib.contextmanager
def served_app(args: list[str], *, app: Path = APP, cwd: Path | None = None, port: int | None = None,
               timeout: float = 120.0, env: dict | None = None):
    """``python <app> ARGS --host 127.0.0.1 --port P`` in a child process (``env`` replaces the environment when
    given); yields a ``Served`` once the page answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, str(app), *args, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{app} exited with {proc.returncode}:\n{log.read().decode()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{app} did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.25)
        yield Served(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900):
    """A page of a fresh headless Chromium (its own temporary user-data-dir)."""
    from playwright.sync_api import sync_playwright

    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="ditlaws-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=exe, headless=True, args=FLAGS,
                                                    viewport={"width": width, "height": height})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


def _field(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def read_box(page, elem_id: str) -> str:
    """The text a read-out box (a gr.Textbox with that elem_id) shows."""
    return _field(page, elem_id).input_value()


def open_app(page, url: str, timeout_ms: int = 60_000) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    _field(page, "n_opt").wait_for(timeout=timeout_ms)


def ask_budget(page, flops: str, timeout_ms: int = 30_000) -> None:
    """Type a budget in FLOPs, press Predict, and wait until the N_opt read-out shows the new answer (so the budget
    must give another N_opt than the one shown: the page opens at 10x the largest fitted budget)."""
    before = read_box(page, "n_opt")
    _field(page, "budget_flops").fill(flops)
    page.click("#predict")
    page.wait_for_function("([sel, b]) => { const e = document.querySelector(sel); return e && e.value !== b; }",
                           arg=["#n_opt textarea, #n_opt input", before], timeout=timeout_ms)


def wait_for_plot(page, elem_id: str, timeout_ms: int = 30_000) -> None:
    """Until the gr.Plot's image has loaded (matplotlib figures arrive as an <img>)."""
    page.wait_for_function("sel => { const i = document.querySelector(sel); return i && i.complete && "
                           "i.naturalWidth > 0; }", arg=f"#{elem_id} img", timeout=timeout_ms)
