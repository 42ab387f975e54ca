"""Data parallelism on CPU: 2 processes (accelerate launch, gloo) train like 1 process with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ditlaws.config import load_config
from ditlaws.models import InContextDiT
from ditlaws.training import train
from ditlaws.training.loop import parameter_hash

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model.depth", "2", "--model.width", "32", "--model.heads", "2", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--train.global_batch", "8",
        "--train.log_every", "1", "--train.steps", "4", "--train.mixed_precision", "no"]


def losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def weights(out: Path) -> dict:
    return load_file(out / "model" / "diffusion_pytorch_model.safetensors")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    train(load_config(None, [*TINY, "--train.output_dir", str(tmp_path / "big")]))
    train(load_config(None, [*TINY, "--train.output_dir", str(tmp_path / "acc"), "--train.micro_batch", "2"]))
    assert losses(tmp_path / "acc") == pytest.approx(losses(tmp_path / "big"), rel=1e-5)
    big, acc = weights(tmp_path / "big"), weights(tmp_path / "acc")
    assert all(torch.allclose(big[k], acc[k], atol=1e-6) for k in big)


def test_two_processes_match_one_process(tmp_path):
    one = train(load_config(None, [*TINY, "--train.output_dir", str(tmp_path / "one")]))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), str(ROOT / "train_dit.py"), *TINY,
           "--train.output_dir", str(tmp_path / "two")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["processes"] == 2 and one["processes"] == 1
    rank0, rank1 = two["replica_param_sha256"]
    assert rank0 == rank1  # both ranks hold bit-identical parameters
    assert rank0 == parameter_hash(InContextDiT.from_pretrained(tmp_path / "two" / "model"))
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-5)
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # Exactly (bit for bit) what 1 process computes with the same half-batch split as gradient accumulation; against
    # the whole batch in one pass only float rounding differs (the README's claim).
    train(load_config(None, [*TINY, "--train.output_dir", str(tmp_path / "halves"), "--train.micro_batch", "4"]))
    assert losses(tmp_path / "two") == losses(tmp_path / "halves")
    halves = weights(tmp_path / "halves")
    assert all(torch.equal(halves[k], b[k]) for k in halves)
