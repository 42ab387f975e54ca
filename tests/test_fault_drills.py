"""Fault drills: kill -9 a training run (at random steps, halfway through a checkpoint save, halfway through the
final model save) and a sweep runner, restart them, and check the results are bit-identical to an uninterrupted
run, with no record lost or duplicated. Real processes, real SIGKILL.

Results are collected for docs/reliability.md (tests/reliability_report.py writes it)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_report import record_drill
from tiny_sweep import tiny_sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model.depth", "2", "--model.width", "32", "--model.heads", "2", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--train.global_batch", "8",
        "--train.steps", "24", "--train.checkpoint_every", "3", "--train.keep_checkpoints", "2",
        "--train.mixed_precision", "no", "--train.log_every", "1", "--train.lr", "1e-3"]
pytestmark = pytest.mark.slow


def env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


def train_cmd(out: Path, *extra) -> list[str]:
    return [sys.executable, str(ROOT / "train_dit.py"), *TINY, "--train.output_dir", str(out), *extra]


def result_of(out: Path) -> dict:
    """What must not depend on interruptions: the final weights, every logged loss, the summary's numbers."""
    weights = hashlib.sha256((out / "model" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    return {"weights": weights, "losses": [(r["step"], r["loss"], r["grad_norm"]) for r in rows],
            **{k: summary[k] for k in ("final_loss", "final_loss_ema", "loss_last10pct", "steps", "C")}}


def lines_in(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


def kill_at_step(cmd: list[str], metrics: Path, step: int, timeout: float = 120) -> int:
    """Start `cmd` and SIGKILL it once metrics.jsonl has `step` records (or return its exit code if it ends)."""
    proc = subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if lines_in(metrics) >= step:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return -9
        time.sleep(0.01)
    if proc.poll() is None:
        proc.kill()
        raise AssertionError(f"{cmd} did not reach step {step} in {timeout} s")
    return proc.returncode


def finish(out: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(train_cmd(out, "--train.resume", "latest"), env=env(), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(train_cmd(out), env=env(), cwd=ROOT, check=True, capture_output=True, timeout=300)
    return result_of(out)


@pytest.mark.parametrize("drill", ["random_steps", "kill_save", "kill_model"])
def test_training_killed_and_resumed_is_bit_identical(tmp_path, reference, drill):
    out = tmp_path / "run"
    rng = random.Random(f"drill-{drill}")
    if drill == "random_steps":  # three kill -9 at random steps, each followed by a restart that is killed again
        points = sorted(rng.sample(range(2, 23), 3))
        for step in points:
            cmd = train_cmd(out, "--train.resume", "latest") if (out / "config.yaml").exists() else train_cmd(out)
            kill_at_step(cmd, out / "metrics.jsonl", step)
        where = f"SIGKILL at steps {points}"
    elif drill == "kill_save":  # dies after the weights of checkpoint 9 are written, before its state file
        proc = subprocess.run(train_cmd(out), env=env(DITLAWS_FAULT="kill_save:9"), cwd=ROOT, capture_output=True)
        assert proc.returncode == 137 and (out / "checkpoints" / "step_9").is_dir()
        assert not (out / "checkpoints" / "step_9" / "training_state.json").exists()
        where = "killed halfway through the checkpoint save of step 9"
    else:  # dies halfway through writing the final model
        proc = subprocess.run(train_cmd(out), env=env(DITLAWS_FAULT="kill_model:24"), cwd=ROOT, capture_output=True)
        assert proc.returncode == 137 and not (out / "model").exists() and not (out / "summary.json").exists()
        where = "killed halfway through the final model save"
    finish(out)
    got = result_of(out)
    assert got == reference
    record_drill("train_dit.py", where, "resumed with --train.resume latest: weights, every logged loss and the "
                 "summary bit-identical to an uninterrupted run")


SWEEP = tiny_sweep("drill", budgets=[1.2e8, 2.4e8], keep_models=True, train={"checkpoint_every": 2})  # 132 steps in all
STABLE = ("run_id", "N", "D", "C", "steps", "final_loss", "final_loss_ema", "loss_last10pct", "budget")


def sweep_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "ditlaws.sweep", "--config", str(config)]


def store_state(out: Path) -> dict:
    files = sorted((out / "store" / "runs" / "drill").glob("*.json"))
    records = [json.loads(p.read_text()) for p in files]
    return {r["run_id"]: ({k: r[k] for k in STABLE}, r["eval"]["val_loss"]) for r in records}


def steps_logged(out: Path) -> int:
    """Training steps logged so far over all of a sweep's runs (each run logs every step)."""
    return sum(len(p.read_bytes().splitlines()) for p in (out / "runs").glob("*/metrics.jsonl"))


def kill_point(proc: subprocess.Popen, out: Path, rng: random.Random) -> str | None:
    """SIGKILL the runner a random 1..8 training steps (+ 0..0.3 s) after it started training, wherever that is:
    mid-run, mid-checkpoint, mid-evaluation or between runs. None when the runner ended first."""
    start, wait = steps_logged(out), rng.randint(1, 8)
    while proc.poll() is None and steps_logged(out) < start + wait:
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 0.3))
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return f"SIGKILL {wait} steps after a restart ({len(store_state(out))} of 4 records stored)"


def test_sweep_runner_killed_at_random_points_ends_with_the_same_records(tmp_path):
    import yaml

    def config(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / name)}))
        return path

    subprocess.run(sweep_cmd(config("reference")), env=env(), cwd=ROOT, check=True, capture_output=True, timeout=600)
    reference = store_state(tmp_path / "reference")
    assert len(reference) == 4

    drill = config("drill")
    rng = random.Random("sweep-drill")
    kills, attempts = [], 0
    while len(kills) < 5 and attempts < 12:  # a restart that finishes before its kill point is not a drill
        attempts += 1
        proc = subprocess.Popen(sweep_cmd(drill), env=env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        point = kill_point(proc, tmp_path / "drill", rng)
        if point is not None:
            kills.append(point)
    assert len(kills) >= 5, kills
    done = subprocess.run(sweep_cmd(drill), env=env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert store_state(tmp_path / "drill") == reference  # same records, none lost, none twice (one file per run)
    record_drill("python -m ditlaws.sweep", "; ".join(kills), "restarted: the same 4 records as an uninterrupted "
                 "sweep (numbers and validation losses bit-identical), none lost or duplicated")
