"""What train_dit.py says: trained, already done (nothing trained), interrupted with and without a checkpoint, and
how often a finite source's rows were seen."""

import sys
from pathlib import Path

from ditlaws.config import DataConfig, load_config
from ditlaws.data import prepare
from ditlaws.training.messages import interrupted

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train_dit  # noqa: E402

TINY = ["--model.depth", "2", "--model.width", "32", "--model.heads", "2", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--train.global_batch", "8",
        "--train.mixed_precision", "no"]


def test_interrupt_then_resume_then_rerun_say_what_happened(tmp_path, capsys, monkeypatch):
    args = [*TINY, "--train.output_dir", str(tmp_path), "--train.steps", "4", "--train.checkpoint_every", "2"]
    monkeypatch.setenv("DITLAWS_STOP_AFTER_STEP", "1")
    assert train_dit.main(args) == 130
    err = capsys.readouterr().err
    assert "before the first checkpoint" in err and "nothing to resume" in err and "interrupted ()" not in err
    monkeypatch.setenv("DITLAWS_STOP_AFTER_STEP", "3")
    assert train_dit.main([*args, "--train.resume", "latest"]) == 130
    err = capsys.readouterr().err
    assert "latest checkpoint is" in err and "(step 2)" in err and "--train.resume latest" in err
    monkeypatch.delenv("DITLAWS_STOP_AFTER_STEP")
    assert train_dit.main([*args, "--train.resume", "latest"]) == 0
    assert capsys.readouterr().out.startswith("done: trained 4 steps")
    assert train_dit.main(args) == 0  # the same command again: nothing to do, and it says so
    out = capsys.readouterr().out
    assert out.startswith("already done:") and "nothing was trained" in out and "done: trained" not in out


def test_an_empty_interrupt_reason_reads_keyboard_interrupt(tmp_path):
    cfg = load_config(None, [*TINY, "--train.output_dir", str(tmp_path), "--train.steps", "2"])
    assert interrupted(cfg, "").startswith("interrupted (keyboard interrupt) before the first checkpoint")


def test_a_cached_source_reports_epochs_and_unique_rows(tmp_path, capsys):
    data = DataConfig(resolution=16, text_len=8, text_dim=16, num_shards=1, val_size=4, cache_dir=str(tmp_path / "c"))
    prepare.prepare(data, "train", num_samples=20)
    args = [*TINY, "--train.output_dir", str(tmp_path / "run"), "--train.steps", "5", "--data.cache_dir",
            str(tmp_path / "c"), "--data.num_shards", "1", "--data.val_size", "4"]
    assert train_dit.main(args) == 0
    captured = capsys.readouterr()
    assert "40 samples from a 20-row source" in captured.err and "~2.0 times" in captured.err
    assert "2.00 epochs of a 20-row source (20 unique rows seen)" in captured.out
