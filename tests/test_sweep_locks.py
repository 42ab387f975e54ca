"""One runner per run: two sweep runners on one folder train each run once; a run folder in use is refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from reliability_report import record_drill
from tiny_sweep import tiny_sweep

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SWEEP = tiny_sweep("twice")


def env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_two_runners_on_one_folder_train_each_run_once(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / "out")}))
    cmd = [sys.executable, "-m", "ditlaws.sweep", "--config", str(config)]
    procs = [subprocess.Popen(cmd, env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    trained = [line.split()[1] for out in outputs for line in out.splitlines() if "trained + evaluated" in line]
    runs = sorted((tmp_path / "out" / "runs").iterdir())
    assert len(runs) == 4
    assert sorted(trained) == sorted(set(trained))  # nothing trained twice
    again = subprocess.run(cmd, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    trained += [line.split()[1] for line in again.stdout.splitlines() if "trained + evaluated" in line]
    assert sorted(trained) == sorted(r.name for r in runs)  # every run trained exactly once over all three
    for run in runs:  # one writer per metrics.jsonl: steps 1, 2, ... once each
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, len(steps) + 1))
    records = sorted((tmp_path / "out" / "store" / "runs" / "twice").glob("*.json"))
    assert [p.stem for p in records] == sorted(r.name for r in runs)
    skipped = sum(out.count("in progress elsewhere") for out in outputs)
    record_drill("python -m ditlaws.sweep (two at once on one folder)", f"both started together; {skipped} "
                 "run(s) seen in progress by the other runner and skipped",
                 "each of the 4 runs trained exactly once; clean metrics.jsonl; a third run collects the rest")


def test_train_into_a_folder_in_use_is_refused(tmp_path):
    from ditlaws.locks import folder_lock

    out = tmp_path / "run"
    with folder_lock(out, label="another trainer"):
        proc = subprocess.run([sys.executable, str(ROOT / "train_dit.py"), "--train.steps", "2",
                               "--train.output_dir", str(out)], env=env(), cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another trainer" in lines[0]
