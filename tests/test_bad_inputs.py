"""Bad input across the command-line tools: each case exits 2 with one line `error: ...` naming the field or file,
before any work, and leaves what was already written intact. The cases and what they printed go into
docs/reliability.md (see reliability_report.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import yaml
from reliability_report import record_case

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = ("--model.depth 1 --model.width 16 --model.heads 1 --model.patch_size 4 --data.resolution 16 "
        "--data.text_dim 16 --data.text_len 8 --data.val_size 8 --train.global_batch 4 --train.mixed_precision no")


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """Files the cases point at: configs that are not UTF-8 / not YAML / not a mapping, a plain file, a finished run."""
    from ditlaws.config import load_config
    from ditlaws.training import train

    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "latin1.yaml").write_bytes("train:\n  study: caf\xe9\n".encode("latin-1"))
    (root / "broken.yaml").write_text("train: [steps: 3\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "afile").write_text("not a folder\n")
    train(load_config(None, [*TINY.split(), "--train.steps", "3", "--train.output_dir", str(root / "finished")]))
    sweep = {"study": "bad", "budgets": [3e7], "min_steps": 2, "sizes": [{"depth": 1, "width": 16, "heads": 1}],
             "base": {"model": {"patch_size": 4}, "data": {"resolution": 16, "text_dim": 16, "text_len": 8,
                                                            "val_size": 8},
                      "train": {"global_batch": 4, "mixed_precision": "no"}},
             "eval": {"max_samples": 8, "loss_timesteps": 2}, "out": str(root / "sweep")}
    (root / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    for name, change in SWEEP_VARIANTS.items():
        (root / f"sweep_{name}.yaml").write_text(yaml.safe_dump(change({**sweep, "base": dict(sweep["base"])})))
    return root


SWEEP_VARIANTS = {
    "unknown_key": lambda s: {**s, "budget": [1e7]},
    "budget_text": lambda s: {**s, "budgets": ["lots"]},
    "budget_negative": lambda s: {**s, "budgets": [-1.0]},
    "budget_nan": lambda s: {**s, "budgets": [float("nan")]},
    "budget_repeat": lambda s: {**s, "budgets": [3e7, 3e7]},
    "sizes_and_depths": lambda s: {**s, "depths": [2]},
    "size_typo": lambda s: {**s, "sizes": [{"depth": 1, "widht": 16}]},
    "size_zero": lambda s: {**s, "sizes": [{"depth": 0}]},
    "seeds_repeat": lambda s: {**s, "seeds": [0, 0]},
    "base_steps": lambda s: {**s, "base": {**s["base"], "train": {**s["base"]["train"], "steps": 5}}},
    "base_key": lambda s: {**s, "base": {**s["base"], "model": {"depht": 2}}},
    "base_lr_nan": lambda s: {**s, "base": {**s["base"], "train": {**s["base"]["train"], "lr": float("nan")}}},
    "base_config_missing": lambda s: {**s, "base_config": "nowhere.yaml"},
    "study_slash": lambda s: {**s, "study": "a/b"},
    "eval_zero": lambda s: {**s, "eval": {"loss_timesteps": 0}},
    "eval_metric": lambda s: {**s, "eval": {"metrics": ["sharpness"]}},
    "executor_kind": lambda s: {**s, "executor": {"kind": "kubernetes"}},
    "executor_parallel": lambda s: {**s, "executor": {"max_parallel": 0}},
    "hub_push_every": lambda s: {**s, "hub": {"push_every_s": -5}},
}

# (cli, case, arguments with {ws} for the workspace folder, text the one-line message must contain)
CASES = [
    ("train_dit.py", "unknown key, with a suggestion", "--train.stesp 3", "did you mean 'steps'"),
    ("train_dit.py", "unknown section", "--optim.lr 1 --train.steps 3", "unknown section 'optim'"),
    ("train_dit.py", "not a number", "--train.steps 3 --train.lr fast", "train.lr"),
    ("train_dit.py", "NaN learning rate", "--train.steps 3 --train.lr .nan", "train.lr must be a finite number"),
    ("train_dit.py", "infinite learning rate", "--train.steps 3 --train.lr .inf", "train.lr must be a finite"),
    ("train_dit.py", "NaN t_scale", "--train.steps 3 --train.t_scale .nan", "train.t_scale must be a finite"),
    ("train_dit.py", "NaN mlp_ratio", "--train.steps 3 --model.mlp_ratio .nan", "model.mlp_ratio must be a finite"),
    ("train_dit.py", "NaN grad_clip (used to turn clipping off)", "--train.steps 3 --train.grad_clip .nan",
     "train.grad_clip must be a finite"),
    ("train_dit.py", "negative budget", "--train.budget -1e12", "train.budget must be > 0"),
    ("train_dit.py", "budget and steps", "--train.budget 1e12 --train.steps 3", "exactly one of train.budget"),
    ("train_dit.py", "neither budget nor steps", "", "exactly one of train.budget"),
    ("train_dit.py", "fractional steps", "--train.steps 2.5", "train.steps: expected an integer"),
    ("train_dit.py", "caption_drop out of range", "--train.steps 3 --train.caption_drop 1.5", "train.caption_drop"),
    ("train_dit.py", "unknown family", "--train.steps 3 --model.family unet", "model.family"),
    ("train_dit.py", "unknown precision", "--train.steps 3 --train.mixed_precision fp8", "train.mixed_precision"),
    ("train_dit.py", "betas out of range", "--train.steps 3 --train.betas [0.9,1.5]", "train.betas[1]"),
    ("train_dit.py", "width not divisible by heads", "--train.steps 3 --model.width 30 --model.heads 4",
     "model.width"),
    ("train_dit.py", "micro batch does not divide", "--train.steps 3 --train.global_batch 8 --train.micro_batch 3",
     "train.micro_batch"),
    ("train_dit.py", "resolution too small", "--train.steps 3 --data.resolution 8", "data.resolution"),
    ("train_dit.py", "odd builtin text width", "--train.steps 3 --data.text_dim 15", "data.text_dim"),
    ("train_dit.py", "unknown tracker", "--train.steps 3 --train.trackers [mlflow]", "train.trackers"),
    ("train_dit.py", "override without --", "train.lr=3", "unexpected argument"),
    ("train_dit.py", "override without value", "--train.steps", "--train.steps: missing value"),
    ("train_dit.py", "config file missing", "--config {ws}/nope.yaml", "nope.yaml: config file not found"),
    ("train_dit.py", "config not UTF-8", "--config {ws}/latin1.yaml", "latin1.yaml: not UTF-8"),
    ("train_dit.py", "config not YAML", "--config {ws}/broken.yaml", "broken.yaml: not valid YAML"),
    ("train_dit.py", "config not a mapping", "--config {ws}/list.yaml", "list.yaml: a config must be a mapping"),
    ("train_dit.py", "output folder is a file", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/afile",
     "afile is a file"),
    ("train_dit.py", "output folder under a file", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/afile/run",
     "is a file"),
    ("train_dit.py", "folder holds a different run", f"{TINY} --train.steps 4 --train.output_dir {{ws}}/finished",
     "holds a different run (train.steps)"),
    ("train_dit.py", "resume folder without a checkpoint",
     f"{TINY} --train.steps 3 --train.output_dir {{ws}}/new --train.resume {{ws}}/afile", "train.resume"),
    ("train_dit.py", "fp16 without a GPU",
     f"{TINY} --train.steps 3 --train.output_dir {{ws}}/fp16 --train.mixed_precision fp16 --train.cpu true",
     "train.mixed_precision: fp16 needs a GPU"),
    ("train_dit.py", "warmup longer than the budget's steps",
     f"{TINY} --train.budget 1e6 --train.warmup_steps 2 --train.output_dir {{ws}}/warm", "train.warmup_steps"),
    ("sweep", "no --config", "", "--config"),
    ("sweep", "config file missing", "--config {ws}/nope.yaml", "nope.yaml"),
    ("sweep", "config not UTF-8", "--config {ws}/latin1.yaml", "not UTF-8"),
    ("sweep", "--out is a file", "--config {ws}/sweep.yaml --out {ws}/afile", "afile is a file"),
    ("sweep", "unknown key", "--config {ws}/sweep_unknown_key.yaml", "sweep.budget: unknown key"),
    ("sweep", "budget not a number", "--config {ws}/sweep_budget_text.yaml", "sweep.budgets[0]"),
    ("sweep", "negative budget", "--config {ws}/sweep_budget_negative.yaml", "sweep.budgets[0] must be > 0"),
    ("sweep", "NaN budget", "--config {ws}/sweep_budget_nan.yaml", "sweep.budgets[0] must be a finite"),
    ("sweep", "repeated budget", "--config {ws}/sweep_budget_repeat.yaml", "sweep.budgets must not repeat"),
    ("sweep", "sizes and depths", "--config {ws}/sweep_sizes_and_depths.yaml", "exactly one of sizes"),
    ("sweep", "size key typo", "--config {ws}/sweep_size_typo.yaml", "sweep.sizes[0].widht: unknown key"),
    ("sweep", "zero depth", "--config {ws}/sweep_size_zero.yaml", "sweep.sizes[0].depth must be >= 1"),
    ("sweep", "repeated seeds", "--config {ws}/sweep_seeds_repeat.yaml", "sweep.seeds must not repeat"),
    ("sweep", "per-run key in the base", "--config {ws}/sweep_base_steps.yaml", "sweep.base.train.steps"),
    ("sweep", "unknown key in the base", "--config {ws}/sweep_base_key.yaml", "model.depht: unknown key"),
    ("sweep", "NaN in the base", "--config {ws}/sweep_base_lr_nan.yaml", "train.lr must be a finite"),
    ("sweep", "base_config missing", "--config {ws}/sweep_base_config_missing.yaml", "nowhere.yaml"),
    ("sweep", "study not a name", "--config {ws}/sweep_study_slash.yaml", "study 'a/b'"),
    ("sweep", "zero loss timesteps", "--config {ws}/sweep_eval_zero.yaml", "sweep.eval.loss_timesteps"),
    ("sweep", "unknown metric", "--config {ws}/sweep_eval_metric.yaml", "sweep.eval.metrics"),
    ("sweep", "unknown executor", "--config {ws}/sweep_executor_kind.yaml", "sweep.executor.kind"),
    ("sweep", "zero parallel runs", "--config {ws}/sweep_executor_parallel.yaml", "sweep.executor.max_parallel"),
    ("sweep", "negative push interval", "--config {ws}/sweep_hub_push_every.yaml", "sweep.hub.push_every_s"),
    ("sweep", "job folder without a job file", "job {ws}/afile_dir", "sweep_job.json"),
]


def run_cli(cli: str, argv: list[str]) -> int:
    if cli == "train_dit.py":
        import train_dit

        return train_dit.main(argv)
    if cli == "sweep":
        from ditlaws.sweep.cli import main

        return main(argv)
    raise AssertionError(cli)


@pytest.mark.parametrize("cli, case, args, expected", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_is_one_line_and_exit_2(ws, capsys, cli, case, args, expected):
    before = {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file()}
    argv = shlex.split(args.format(ws=ws))
    try:
        code = run_cli(cli, argv)
    except SystemExit as stop:  # argparse usage errors
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert expected in err[0], err[0]
    after = {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file()}
    assert {p: t for p, t in after.items() if p in before} == before  # nothing already written was touched
    record_case(cli, case, args.replace("{ws}/", ""), code, err[0])
