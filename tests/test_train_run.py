"""End-to-end CPU runs of tiny models: outputs, budget accounting, exact resume, NaN stop, bad configs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ditlaws.config import load_config
from ditlaws.errors import UserError
from ditlaws.models import InContextDiT
from ditlaws.training import NonFiniteLossError, TrainingInterrupted, train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model.depth", "2", "--model.width", "32", "--model.heads", "2", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8",
        "--train.global_batch", "8", "--train.log_every", "1"]


def tiny(out: Path, *extra: str):
    return load_config(None, [*TINY, "--train.output_dir", str(out), *extra])


def weights(out: Path) -> dict:
    return load_file(out / "model" / "diffusion_pytorch_model.safetensors")


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_budget_run_records_consistent_compute_and_saves_a_diffusers_model(tmp_path):
    n_params, tokens, batch = 38496, 16, 8  # the tiny in-context model above: checked against the model below
    budget = 6 * n_params * tokens * batch * 3.4
    summary = train(tiny(tmp_path, "--train.budget", str(budget), "--train.mixed_precision", "no"))
    model = InContextDiT.from_pretrained(tmp_path / "model")
    counts = model.parameter_counts()
    assert summary["N"] == counts["total"] == n_params and summary["N_non_embedding"] == counts["non_embedding"]
    assert summary["tokens_per_sample"] == model.tokens_per_sample == tokens
    assert summary["steps"] == 3 and summary["budget"] == budget
    assert summary["D"] == 3 * batch * tokens
    assert summary["C"] == 6 * summary["N"] * summary["D"]
    assert summary["C_closed_form"] == 3 * model.flops_per_sample() * 3 * batch
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    rows = metrics(tmp_path)
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["flops"] == summary["C"]
    assert rows[-1]["loss"] == summary["final_loss"] and rows[-1]["loss_ema"] == summary["final_loss_ema"]
    saved = load_config(tmp_path / "config.yaml")
    assert saved.train.budget == budget and saved.data.text_encoder == "builtin" and saved.model.width == 32
    assert set(summary["versions"]) >= {"torch", "diffusers", "accelerate", "ditlaws"}


def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, monkeypatch):
    # bf16 autocast and gradient accumulation (2 micro-batches of 4), as the paper recipe would run on CPU.
    args = ["--train.steps", "6", "--train.micro_batch", "4", "--train.checkpoint_every", "2",
            "--train.schedule", "step", "--train.keep_checkpoints", "1"]
    straight = train(tiny(tmp_path / "a", *args))
    monkeypatch.setenv("DITLAWS_STOP_AFTER_STEP", "5")  # dies after step 5; the newest checkpoint is step 4
    with pytest.raises(TrainingInterrupted):
        train(tiny(tmp_path / "b", *args))
    monkeypatch.delenv("DITLAWS_STOP_AFTER_STEP")
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step_4"]
    resumed = train(tiny(tmp_path / "b", *args, "--train.resume", "latest"))
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("final_loss", "final_loss_ema", "loss_last10pct", "C"):
        assert resumed[key] == straight[key]
    assert [r["loss"] for r in metrics(tmp_path / "a")] == [r["loss"] for r in metrics(tmp_path / "b")]
    with pytest.raises(UserError, match="different run.*train.seed"):  # another run's folder is refused
        train(tiny(tmp_path / "b", *args, "--train.resume", "latest", "--train.seed", "1"))
    with pytest.raises(UserError, match="train.resume.*train.seed"):  # and so is another run's checkpoint
        train(tiny(tmp_path / "c", *args, "--train.resume", str(tmp_path / "b" / "checkpoints" / "step_6"),
                   "--train.seed", "1"))


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("DITLAWS_INJECT_NAN_AT_STEP", "3")
    with pytest.raises(NonFiniteLossError, match="step 3"):
        train(tiny(tmp_path, "--train.steps", "5", "--train.checkpoint_every", "2", "--train.mixed_precision", "no"))
    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert folders == ["step_2"] and (tmp_path / "checkpoints" / "step_2" / "training_state.json").is_file()
    assert [r["step"] for r in metrics(tmp_path)] == [1, 2] and not (tmp_path / "summary.json").exists()


def run_script(*args, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, str(ROOT / "train_dit.py"), *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)


def test_script_exit_code_3_on_nan(tmp_path):
    proc = run_script(*TINY, "--train.output_dir", str(tmp_path), "--train.steps", "3", "--train.mixed_precision",
                      "no", env_extra={"DITLAWS_INJECT_NAN_AT_STEP": "2"})
    assert proc.returncode == 3, proc.stderr
    assert "non-finite loss" in proc.stderr and "step 2" in proc.stderr


@pytest.mark.parametrize("args, key", [
    (["--train.steps", "3", "--train.lr", "fast"], "train.lr"),
    (["--train.steps", "3", "--model.depht", "3"], "model.depht"),
    (["--train.steps", "3", "--train.global_batch", "8", "--train.micro_batch", "3"], "train.micro_batch"),
])
def test_script_bad_config_exit_code_2(tmp_path, args, key):
    proc = run_script(*args, "--train.output_dir", str(tmp_path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0]


def test_script_missing_config_file(tmp_path):
    proc = run_script("--config", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "nope.yaml" in proc.stderr
