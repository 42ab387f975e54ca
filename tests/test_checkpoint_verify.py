"""Issue 12.7 (checkpoints): a corrupt checkpoint on resume is named, `resume: latest` falls back to the previous
complete one with a warning, and an explicitly named corrupt checkpoint is a one-line error (exit 2)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from ditlaws.config import load_config
from ditlaws.errors import UserError
from ditlaws.training import checkpoint as ckpt
from ditlaws.training import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model.depth", "1", "--model.width", "16", "--model.heads", "1", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--data.val_size", "8",
        "--train.global_batch", "4", "--train.mixed_precision", "no", "--train.steps", "6",
        "--train.checkpoint_every", "2", "--train.keep_checkpoints", "3"]


def run_cfg(out: Path, *extra: str):
    return load_config(None, [*TINY, "--train.output_dir", str(out), *extra])


def weights(out: Path) -> str:
    return hashlib.sha256((out / "model" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and one stopped after step 4 (checkpoints step_2 and step_4, no model yet)."""
    root = tmp_path_factory.mktemp("ckpt")
    train(run_cfg(root / "full"))
    os.environ["DITLAWS_FAULT"] = "stop:4"
    try:
        with pytest.raises(KeyboardInterrupt):
            train(run_cfg(root / "stopped"))
    finally:
        del os.environ["DITLAWS_FAULT"]
    return root


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


CORRUPTIONS = {
    "truncated model.safetensors": ("model.safetensors", lambda p: truncate(p), "truncated"),
    "model.safetensors header cut": ("model.safetensors", lambda p: truncate(p, 0.001), "truncated"),
    "truncated training_state.json": ("training_state.json", lambda p: truncate(p), "not valid JSON"),
    "training_state.json without a step": ("training_state.json", lambda p: p.write_text('{"losses": {}}'), "step"),
    "garbage optimizer.bin": ("optimizer.bin", lambda p: p.write_bytes(os.urandom(p.stat().st_size)),
                              "not a complete torch file"),
    "truncated optimizer.bin": ("optimizer.bin", lambda p: truncate(p, 0.9), "not a complete torch file"),
    "optimizer.bin holding something else": ("optimizer.bin", lambda p: shutil.copy(p.with_name(
        "random_states_0.pkl"), p), "does not hold an optimizer state"),
    "truncated random states": ("random_states_0.pkl", lambda p: truncate(p), "not a complete torch file"),
    "optimizer.bin missing": ("optimizer.bin", lambda p: p.unlink(), "no optimizer state"),
}


def test_complete_checkpoints_verify_clean(runs):
    assert [ckpt.verify(p) for _, p in ckpt.complete_checkpoints(runs / "stopped")] == [None, None]


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_checkpoint_names_the_file_and_latest_falls_back(runs, tmp_path, case):
    name, damage, expected = CORRUPTIONS[case]
    out = tmp_path / "run"
    shutil.copytree(runs / "stopped", out)
    bad = out / "checkpoints" / "step_4"
    damage(bad / name)
    problem = ckpt.verify(bad)
    assert problem is not None and expected in problem and "\n" not in problem
    assert str(bad / name) in problem or (str(bad) in problem and name.split(".")[0] in problem)
    warnings = []
    assert ckpt.resolve_resume("latest", out, warn=warnings.append) == out / "checkpoints" / "step_2"
    assert len(warnings) == 1 and "step_4 is unusable, falling back to an older checkpoint" in warnings[0]
    with pytest.raises(UserError) as err:
        ckpt.resolve_resume(str(bad), out)
    assert str(err.value).startswith(f"train.resume: {bad}") and "\n" not in str(err.value)


def test_only_corrupt_checkpoints_start_fresh_with_a_warning(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs / "stopped", out)
    for step in (2, 4):
        truncate(out / "checkpoints" / f"step_{step}" / "model.safetensors")
    warnings = []
    assert ckpt.resolve_resume("latest", out, warn=warnings.append) is None
    assert len(warnings) == 2 and "starting from step 0" in warnings[1]


def test_resume_latest_past_a_corrupt_checkpoint_gives_the_uninterrupted_result(runs, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(runs / "stopped", out)
    truncate(out / "checkpoints" / "step_4" / "model.safetensors")
    train(run_cfg(out, "--train.resume", "latest"))  # resumes from step_2 (it used to die loading step_4)
    assert "step_4 is unusable" in capsys.readouterr().err  # one line, from the main process
    assert weights(out) == weights(runs / "full")


def test_resume_named_corrupt_checkpoint_cli_exits_2(runs, tmp_path, capsys):
    sys.path.insert(0, str(ROOT))
    import train_dit

    out = tmp_path / "run"
    shutil.copytree(runs / "stopped", out)
    bad = out / "checkpoints" / "step_4"
    truncate(bad / "training_state.json")
    code = train_dit.main([*TINY, "--train.output_dir", str(out), "--train.resume", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"error: train.resume: {bad / 'training_state.json'}: not valid JSON")
