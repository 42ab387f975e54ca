"""An endpoint that accepts connections and never answers (a hung Hub or proxy) never stalls a study.

Every Hub request has a time limit (hub.timeout_s) and every push a budget (hub.wait_s): a sweep trains and records
every run, exits 0 and lists what did not land; `ditlaws push` gives up within its budget with one line; a bad
endpoint is refused before anything is tried or written.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hub_server import TEST_TOKEN, silent_hub  # noqa: F401
from reliability_report import record_drill
from test_store_push import tiny
from tiny_sweep import tiny_sweep

from ditlaws.training import train

ROOT = Path(__file__).resolve().parents[1]
WAIT_S, TIMEOUT_S = 2.0, 1.0


def online_env(tmp_path: Path) -> dict:
    """huggingface_hub online (HF_HUB_OFFLINE=1 would fail every call at once and prove nothing)."""
    return {**os.environ, "HF_HUB_OFFLINE": "0", "HF_TOKEN": TEST_TOKEN, "HF_HUB_CACHE": str(tmp_path / "hf"),
            "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hang") / "run"
    train(tiny(out))
    return out


def push(run_dir: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ditlaws.cli", "push", str(run_dir), "--hub.org", "org", *args],
                          env=online_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_push_to_a_silent_endpoint_gives_up_within_its_budget_with_one_line(finished, silent_hub, tmp_path):  # noqa: F811
    started = time.monotonic()
    done = push(finished, tmp_path, "--hub.endpoint", silent_hub.url, "--hub.wait_s", str(WAIT_S),
                "--hub.timeout_s", str(TIMEOUT_S))
    wall = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"error: model, record, metrics did not reach {silent_hub.url} (gave up after ")
    assert lines[0].endswith("; run the same command again")
    gave_up = float(re.search(r"gave up after ([0-9.]+) s", lines[0]).group(1))
    # the budget: hub.wait_s, then the requests under way end within hub.timeout_s (create repo, preupload, commit)
    assert gave_up <= WAIT_S + 3 * TIMEOUT_S + 1.0, lines[0]
    assert wall < 120, f"{wall:.0f} s"  # start-up (torch, the model repo's staging) included; it was 15 minutes
    assert silent_hub.connections, "the push never reached the endpoint"
    ledger = json.loads((finished / "hub_push.json").read_text())
    assert ledger["endpoint"] == silent_hub.url and ledger["pending"] == ["model", "record", "metrics"]
    record_drill("ditlaws push", "a Hub endpoint that accepts connections and never answers",
                 f"exit 1 after {wall:.0f} s with one line naming what did not land; hub_push.json lists it pending")


@pytest.mark.parametrize("endpoint", ["notaurl", "ftp://host", "http://", "https://host:99999"])
def test_a_bad_endpoint_is_refused_at_once_and_never_saved(finished, tmp_path, endpoint):
    ledger = finished / "hub_push.json"
    before = ledger.read_bytes() if ledger.exists() else None
    started = time.monotonic()
    done = push(finished, tmp_path, "--hub.endpoint", endpoint)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == [f"error: hub.endpoint {endpoint!r}: give an http(s) URL such as "
                                                "https://huggingface.co"]
    assert time.monotonic() - started < 60
    assert (ledger.read_bytes() if ledger.exists() else None) == before


def test_a_sweep_with_a_silent_hub_finishes_every_run_and_lists_what_is_pending(silent_hub, tmp_path):  # noqa: F811
    hub = {"org": "lab", "endpoint": silent_hub.url, "wait_s": WAIT_S, "timeout_s": TIMEOUT_S, "push_every_s": 0.5}
    raw = tiny_sweep("hang", out=str(tmp_path / "out"), hub=hub)
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "ditlaws.sweep", "--config", str(config)], env=online_env(tmp_path),
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    records = sorted((tmp_path / "out" / "store" / "runs" / "hang").glob("*.json"))
    assert len(records) == 4, out[-3000:]  # every run trained, evaluated and recorded
    line = next(x for x in out.splitlines() if x.startswith("hub: pending for "))
    assert line.startswith("hub: pending for 4 run(s) after waiting "), line
    assert all(p.stem in line for p in records), line
    waited = float(re.search(r"after waiting ([0-9.]+) s", line).group(1))
    assert waited <= WAIT_S + 0.5, line  # the study waited on the Hub once, at most hub.wait_s
    assert f"`ditlaws push {tmp_path / 'out' / 'store'}` completes them" in line
    assert silent_hub.connections, "nothing was ever sent to the endpoint"
    record_drill("python -m ditlaws.sweep", "a Hub endpoint that accepts connections and never answers (4 runs)",
                 f"every run trained and recorded, exit 0; waited {waited:.1f} s (<= hub.wait_s) and listed the 4 "
                 "pending runs")
