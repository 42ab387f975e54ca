"""Fault drills for trunk sweeps: SIGKILL the runner during a trunk, halfway through the checkpoint at a branch
point, and in the middle of a branch's cooldown; restart; the store ends with the same records as an uninterrupted
trunk sweep, none lost or duplicated. Real processes, real SIGKILL (the style of tests/test_fault_drills.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_report import record_drill
from tiny_sweep import tiny_sweep

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# 2 sizes x 3 budgets; the 16-wide trunk branches at steps 9, 17 and 26 (runs of 11, 21 and 32 steps)
SWEEP = tiny_sweep("trunkdrill", budgets=[4e7, 8e7, 1.2e8], trunks=True, keep_models=True,
                   train={"schedule": "wsd", "cooldown_frac": 0.2, "warmup_steps": 2, "checkpoint_every": 2})
TRUNK = "in_context-d1-w16-p4-trunk-s0"
BRANCH = "in_context-d1-w16-p4-C8e07-s0"  # 21 steps, from the trunk's step 17
STABLE = ("run_id", "N", "D", "C", "steps", "final_loss", "final_loss_ema", "loss_last10pct", "budget", "trunk")


def env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def store_state(out: Path) -> dict:
    records = [json.loads(p.read_text()) for p in sorted((out / "store" / "runs" / "trunkdrill").glob("*.json"))]
    return {r["run_id"]: ({k: r.get(k) for k in STABLE}, r["eval"]["val_loss"]) for r in records}


def lines_in(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def kill_when(cmd: list[str], metrics: Path, lines: int, timeout: float = 300) -> None:
    """Start the runner and SIGKILL it once `metrics` has `lines` records."""
    proc = subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and lines_in(metrics) < lines and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the runner ended (exit {proc.returncode}) before {metrics} had {lines} lines"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_trunk_sweep_killed_in_a_trunk_at_a_branch_point_and_mid_cooldown(tmp_path):
    import yaml

    def config(name: str) -> list[str]:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / name)}))
        return [sys.executable, "-m", "ditlaws.sweep", "--config", str(path)]

    subprocess.run(config("reference"), env=env(), cwd=ROOT, check=True, capture_output=True, timeout=600)
    reference = store_state(tmp_path / "reference")
    assert len(reference) == 6 and all(rec["trunk"] for rec, _ in reference.values())

    cmd, runs = config("drill"), tmp_path / "drill" / "runs"
    kill_when(cmd, runs / TRUNK / "metrics.jsonl", 13)  # the trunk between its branch points 9 and 17
    assert len(store_state(tmp_path / "drill")) == 1  # the branch at step 9 was done

    killed = subprocess.run(cmd, env=env(DITLAWS_FAULT="kill_save:17"), cwd=ROOT, capture_output=True, timeout=600)
    assert killed.returncode == 137  # halfway through the trunk's checkpoint at branch point 17
    assert not (runs / TRUNK / "checkpoints" / "step_17" / "training_state.json").exists()

    kill_when(cmd, runs / BRANCH / "metrics.jsonl", 19)  # the branch 2 steps into its cooldown (17 -> 21)
    assert BRANCH not in store_state(tmp_path / "drill")

    done = subprocess.run(cmd, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert store_state(tmp_path / "drill") == reference  # same records, none lost, none twice (one file per run)
    kept = sorted(int(p.name.split("_")[1]) for p in (runs / TRUNK / "checkpoints").iterdir())
    assert {9, 17, 26} <= set(kept)  # the branch points stay for later branches (sweep next)
    record_drill("python -m ditlaws.sweep (trunks: true)", "SIGKILL in a trunk between branch points; kill -9 "
                 "halfway through the checkpoint at a branch point; SIGKILL 2 steps into a branch's cooldown",
                 "restarted: the same 6 branch records as an uninterrupted trunk sweep (numbers and validation "
                 "losses bit-identical), none lost or duplicated")
