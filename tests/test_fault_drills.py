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
    return {**result_of(out), "folder": out}


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
    assert got == {k: v for k, v in reference.items() if k != "folder"}
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


# ---------------------------------------------------------------------------------------------------------------
# SIGTERM (Slurm preemption, docker stop): a graceful stop at the next step with a checkpoint of it


def test_sigterm_stops_after_the_step_with_a_checkpoint_and_resumes_bit_identically(tmp_path, reference):
    out = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(out), env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    while proc.poll() is None and lines_in(out / "metrics.jsonl") < 7:  # between checkpoints (every 3 steps)
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.startswith(("interrupted", "error"))]
    assert len(lines) == 1 and lines[0].startswith("interrupted (SIGTERM: stopped after step "), err[-2000:]
    stopped = int(lines[0].split("after step ")[1].split()[0])
    assert (out / "checkpoints" / f"step_{stopped}" / "training_state.json").is_file()
    assert lines_in(out / "metrics.jsonl") == stopped  # every step up to the stop logged, none after
    finish(out)
    assert {**result_of(out), "folder": reference["folder"]} == reference
    record_drill("train_dit.py", f"SIGTERM after {lines_in(out / 'metrics.jsonl') and stopped} logged steps "
                 "(between checkpoints)", f"stopped after step {stopped} with a checkpoint of it, exit 130 and one "
                 "line; resumed: bit-identical to an uninterrupted run")


# ---------------------------------------------------------------------------------------------------------------
# A full disk: a small tmpfs, filled to a few bytes at different points; what was complete stays complete


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (needs root / CAP_SYS_ADMIN; skipped elsewhere) and a function leaving `free` bytes on it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:80]})")
    filler = disk / "filler"

    def leave(free: int | None) -> None:
        filler.unlink(missing_ok=True)
        if free is None:
            return
        st = os.statvfs(disk)
        fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            size = st.f_bavail * st.f_frsize - free
            if size > 0:
                os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)

    yield disk, leave
    subprocess.run(["umount", str(disk)], check=False)


def intact_run(out: Path) -> str:
    """What a run folder holds after a failure must be whole: config.yaml parses, every finished checkpoint
    verifies, metrics.jsonl is complete lines 1..k with k >= the newest finished checkpoint. Returns a summary."""
    import yaml

    from ditlaws.training import checkpoint as ckpt

    if (out / "config.yaml").exists():
        assert isinstance(yaml.safe_load((out / "config.yaml").read_text()), dict)
    finished = ckpt.complete_checkpoints(out)
    for _, folder in finished:
        assert ckpt.verify(folder) is None, ckpt.verify(folder)
    text = (out / "metrics.jsonl").read_text() if (out / "metrics.jsonl").exists() else ""
    assert text == "" or text.endswith("\n") or finished == [], text[-200:]
    steps = [json.loads(line)["step"] for line in text.splitlines() if line.strip()]
    newest = finished[-1][0] if finished else 0
    assert steps[:newest] == list(range(1, newest + 1)), (steps, newest)
    return f"{len(steps)} steps logged, checkpoints {[s for s, _ in finished]}"


def test_training_on_a_full_disk_keeps_what_was_written_and_completes_after_space_is_freed(small_disk, reference):
    disk, leave = small_disk
    out = disk / "run"
    seen = []
    for free in (0, 3_000, 12_000, 200_000, 450_000, 700_000, 950_000):  # fails at different write points
        leave(free)
        cmd = train_cmd(out, *(("--train.resume", "latest") if (out / "config.yaml").exists() else ()))
        proc = subprocess.run(cmd, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
        errors = [line[line.index("error: "):] for line in proc.stderr.replace("\r", "\n").splitlines()
                  if "error: " in line]
        assert proc.returncode in (0, 4), proc.stderr[-3000:]
        leave(None)
        state = intact_run(out)
        if proc.returncode == 4:
            assert len(errors) == 1 and errors[0].startswith("error: no space left") and \
                "Traceback" not in proc.stderr, proc.stderr[-3000:]
            seen.append(f"{free} B free: exit 4 ({state})")
        if proc.returncode == 0:
            break
    finish(out)
    assert {**result_of(out), "folder": reference["folder"]} == reference
    assert any(s.split(": ")[1].startswith("exit 4") for s in seen)
    record_drill("train_dit.py (4 MiB tmpfs)", "disk full: " + "; ".join(seen),
                 "each: one line, exit 4, config / finished checkpoints / metrics.jsonl up to the newest checkpoint "
                 "intact; space freed, resumed: bit-identical to an uninterrupted run")


def test_fitting_and_evaluation_on_a_full_disk_keep_the_earlier_results(small_disk, reference, tmp_path, capsys):
    import hashlib as _h
    import shutil

    import numpy as np

    from ditlaws.laws.cli import main as fit_main
    from ditlaws.laws.synthetic import isoflop_table, paper_truth

    disk, leave = small_disk
    t = isoflop_table(paper_truth(), np.random.default_rng(0), 1e-4, budgets=(1e17, 3e17, 1e18),
                      depths=(2, 3, 4, 5, 6, 7))
    csv = tmp_path / "runs.csv"
    csv.write_text("budget,N,D,loss\n" + "".join(f"{b!r},{n!r},{d!r},{v!r}\n" for b, n, d, v in
                                                   zip(t.nominal.tolist(), t.N.tolist(), t.D.tolist(),
                                                       t.loss.tolist())))
    out = disk / "fit"
    argv = ["--runs", str(csv), "--out", str(out), "--bootstrap", "20", "--no-parametric", "--holdout", "0"]
    assert fit_main(argv) == 0

    def digest(folder):
        return {p.name: _h.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    before = digest(out)
    outcomes = []
    for free in (0, 8_000, 60_000, 150_000):
        leave(free)
        code = fit_main([*argv, "--seed", "1"])
        leave(None)
        err = capsys.readouterr().err.strip().splitlines()
        assert code in (0, 4), err
        if code == 4:
            assert err[-1].startswith("error: no space left"), err
            assert digest(out) == before  # the earlier fit.json, report.md and figures, byte for byte
            outcomes.append(f"{free} B free: exit 4")
        else:
            break
    assert outcomes
    assert fit_main([*argv, "--seed", "1"]) == 0 and digest(out) != before
    record_drill("fit_laws.py (4 MiB tmpfs)", "disk full while writing fit.json, figures and report.md: "
                 + "; ".join(outcomes), "each: one line, exit 4, the earlier fit.json / report.md / figures "
                 "byte-identical (all outputs are staged and renamed together); space freed: the rerun completes")

    # evaluation: an earlier eval.json stays whole when the new one cannot be written
    import evaluate_dit

    run = disk / "evalrun"
    shutil.copytree(reference["folder"], run, ignore=shutil.ignore_patterns("checkpoints"))
    ev = ["--checkpoint", str(run), "--metrics", "loss", "--device", "cpu", "--max-samples", "8",
          "--loss-timesteps", "2"]
    assert evaluate_dit.main(ev) == 0
    first = (run / "eval.json").read_bytes()
    leave(0)
    code = evaluate_dit.main([*ev, "--seed", "3"])
    leave(None)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4 and err[-1].startswith("error: no space left"), err
    assert (run / "eval.json").read_bytes() == first
    assert evaluate_dit.main([*ev, "--seed", "3"]) == 0 and (run / "eval.json").read_bytes() != first
    record_drill("evaluate_dit.py (4 MiB tmpfs)", "disk full when eval.json is written",
                 "one line, exit 4, the earlier eval.json byte-identical; space freed: the rerun completes")


def test_two_sweeps_sharing_one_store_train_each_run_once(tmp_path):
    """Two sweeps with different `out:` and one `store:`, started together: each run is trained by one of them
    (the store's claim on the run), and both end with the same records."""
    import yaml

    store = tmp_path / "store"
    configs = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**tiny_sweep("shared"), "out": str(tmp_path / name), "store": str(store)}))
        configs.append(path)
    procs = [subprocess.Popen(sweep_cmd(c), env=env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for c in configs]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    trained = sorted(p.parent.name for name in ("a", "b") for p in (tmp_path / name / "runs").glob("*/summary.json"))
    records = sorted(p.stem for p in (store / "runs" / "shared").glob("*.json"))
    assert len(records) == 4 and trained == records  # every run trained exactly once, across both sweeps
    record_drill("python -m ditlaws.sweep (two at once)", "two sweeps, different out:, one store:, started together",
                 "each of the 4 runs trained once (the store claims a run while it trains; the other sweep waits "
                 "and takes its record); both exit 0")
