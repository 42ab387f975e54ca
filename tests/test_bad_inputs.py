"""Bad input across the command-line tools: each case exits 2 with one line `error: ...` naming the field or file,
before any work, and leaves what was already written intact (every file in the workspace byte-identical, nothing
added). The cases and what they printed go into docs/reliability.md (see reliability_report.py).

Cases call each CLI's `main(argv)` in this process (a torch start-up per case would cost minutes); one case per
command-line script also runs as its own process, to check the exit code and stderr the shell sees."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from reliability_report import record_case, record_drill

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
    (root / "adir").mkdir()
    (root / "sweep_runs_file").mkdir()
    (root / "sweep_runs_file" / "runs").write_text("not a folder\n")
    _fit_inputs(root)
    _prepare_inputs(root)
    _model_and_store_inputs(root)
    _robust_inputs(root, sweep)
    return root


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)) + "train: {steps: *i}\n"


def _robust_inputs(root: Path, sweep: dict) -> None:
    """Issue 25's inputs: YAML with a repeated key, scalar YAML, an alias bomb, an oversized file; data files that
    are empty, damaged, truncated or named twice; a store whose record is a list, a run whose id is a path, NaN
    weights; fit inputs with a repeated column or identical losses; a store with a folder named *.json."""
    import io
    import json
    import tarfile

    from datasets import Dataset, Image
    from PIL import Image as PILImage

    (root / "dup_key.yaml").write_text("train:\n  steps: 3\n  steps: 500\n")
    (root / "dup_section.yaml").write_text("train:\n  steps: 3\ntrain:\n  lr: 0.5\n")
    (root / "false.yaml").write_text("false\n")
    (root / "zero.yaml").write_text("0\n")
    (root / "text.yaml").write_text("just some words\n")
    (root / "model_false.yaml").write_text("model: false\ntrain:\n  steps: 3\n")
    (root / "bomb.yaml").write_text(ALIAS_BOMB)
    (root / "huge.yaml").write_text("# " + "x" * (1 << 20) + "\ntrain: {steps: 3}\n")
    (root / "data_dup.yaml").write_text("data:\n  resolution: 16\n  resolution: 32\n")
    (root / "data_bomb.yaml").write_text(ALIAS_BOMB.replace("train: {steps: *i}", "data: {resolution: 16}"))
    sweep_dup = yaml.safe_dump(sweep).replace("study: bad\n", "study: bad\nstudy: other\n")
    (root / "sweep_dup.yaml").write_text(sweep_dup)
    (root / "sweep_false.yaml").write_text("false\n")
    (root / "sweep_bomb.yaml").write_text(ALIAS_BOMB.replace("train: {steps: *i}", "study: bad"))
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (200, 50, 100)).save(buffer, format="PNG")
    rows = Dataset.from_dict({"image": [{"bytes": buffer.getvalue(), "path": None}] * 6,
                              "text": [f"pic {i}" for i in range(6)]})
    rows.cast_column("image", Image()).to_parquet(str(root / "six.parquet"))
    (root / "empty.parquet").write_bytes(b"")
    (root / "garbage.parquet").write_bytes(b"PAR1 this is not a parquet file at all")
    with tarfile.open(root / "whole.tar", "w") as tar:
        for i in range(3):
            for ext, data in (("png", buffer.getvalue()), ("txt", f"pic {i}".encode())):
                info = tarfile.TarInfo(f"{i:04d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    whole = (root / "whole.tar").read_bytes()
    (root / "cut.tar").write_bytes(whole[:512 * 3 + 40])  # ends inside the second member
    # a run whose summary names a path as its id; a store whose record for the finished run is a list
    shutil.copytree(root / "finished", root / "evil_run", ignore=shutil.ignore_patterns("checkpoints"))
    summary = json.loads((root / "evil_run" / "summary.json").read_text())
    (root / "evil_run" / "summary.json").write_text(json.dumps({**summary, "run_id": "../../evil"}))
    finished = json.loads((root / "finished" / "summary.json").read_text())
    for name, content in (("list_store", "[1, 2]\n"), ("garbled_store", "{not json")):
        folder = root / name / "runs" / finished["study"]
        folder.mkdir(parents=True)
        (folder / f"{finished['run_id']}.json").write_text(content)
    (root / "folder_store" / "runs" / finished["study"] / f"{finished['run_id']}.json").mkdir(parents=True)
    # NaN weights
    from safetensors.torch import load_file, save_file

    shutil.copytree(root / "finished" / "model", root / "nan_model")
    weights = root / "nan_model" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    first = sorted(tensors)[0]
    tensors[first] = tensors[first] * float("nan")
    save_file(tensors, weights)
    # fit inputs
    lines = (root / "runs.csv").read_text().splitlines()
    (root / "dup_header.csv").write_text("\n".join(["budget,N,D,loss,N", *(r + "," + r.split(",")[1]
                                                                          for r in lines[1:])]) + "\n")
    (root / "same_loss.csv").write_text("\n".join(["budget,N,D,loss", *(",".join(r.split(",")[:3] + ["0.5"])
                                                                          for r in lines[1:])]) + "\n")
    store = root / "store_a" / "runs" / "s"
    store.mkdir(parents=True)
    for i, row in enumerate(lines[1:]):
        budget, n, d, loss, _ = (float(v) for v in row.split(","))
        record = {"run_id": f"r{i}", "study": "s", "N": n, "D": d, "budget": budget, "loss_last10pct": loss}
        (store / f"r{i}.json").write_text(json.dumps(record))
    (store / "adir.json").mkdir()
    (store / "dangling.json").symlink_to(root / "nowhere.json")
    nan_store = root / "nan_store" / "runs" / "s"
    nan_store.mkdir(parents=True)
    record = {"run_id": "r0", "study": "s", "N": 1e6, "D": 1e9, "budget": 6e15, "loss_last10pct": 0.5,
              "eval": {"val_loss": None}}
    (nan_store / "r0.json").write_text(json.dumps(record))
    job = root / "bad_job"
    job.mkdir()
    (job / "sweep_job.json").write_text("[1, 2, 3]\n")
    low = {**sweep, "min_steps": 100000, "out": str(root / "low_sweep")}
    (root / "sweep_low.yaml").write_text(yaml.safe_dump(low))


def _fit_inputs(root: Path) -> None:
    """fit_laws.py: a good CSV, CSVs with one defect each, and a folder holding an earlier fit."""
    from ditlaws.laws.synthetic import isoflop_table, paper_truth

    t = isoflop_table(paper_truth(), np.random.default_rng(0), 1e-4, budgets=(1e17, 3e17, 1e18),
                      depths=(2, 3, 4, 5, 6, 7))
    rows = [f"{b!r},{n!r},{d!r},{v!r},{30 * v!r}" for b, n, d, v in
            zip(t.nominal.tolist(), t.N.tolist(), t.D.tolist(), t.loss.tolist())]
    header = "budget,N,D,loss,fid"
    (root / "runs.csv").write_text("\n".join([header, *rows]) + "\n")
    (root / "dup.csv").write_text("\n".join([header, *rows, rows[2]]) + "\n")
    (root / "fid0.csv").write_text("\n".join([header, ",".join(rows[0].split(",")[:4] + ["0"]), *rows[1:]]) + "\n")
    (root / "nocol.csv").write_text("\n".join(["budget,N,D", *(",".join(r.split(",")[:3]) for r in rows)]) + "\n")
    (root / "latin1.csv").write_bytes(("# caf\xe9\n" + header + "\n" + "\n".join(rows) + "\n").encode("latin-1"))
    (root / "fit_done").mkdir()
    from ditlaws.laws.predict import SCHEMA_VERSION

    (root / "fit_done" / "fit.json").write_text(f'{{"schema_version": {SCHEMA_VERSION}}}\n')  # current, but no study
    (root / "fit_done" / "report.md").write_text("# an earlier fit\n")


def _prepare_inputs(root: Path) -> None:
    """ditlaws-prepare: a data config, a finished cache of its val split, a cache folder whose split is a file."""
    from ditlaws.config import load_data_config
    from ditlaws.data.prepare import prepare

    (root / "data.yaml").write_text(yaml.safe_dump({"data": {"resolution": 16, "text_dim": 16, "text_len": 8,
                                                             "val_size": 8}}))
    prepare(load_data_config(root / "data.yaml"), "val", out=str(root / "cache"), batch_size=8, device="cpu")
    (root / "cache_split_file").mkdir()
    (root / "cache_split_file" / "val").write_text("not a folder\n")


def _model_and_store_inputs(root: Path) -> None:
    """evaluate_dit.py / ditlaws push: a model folder with a truncated config, a run whose push ledger path is a
    folder, a store without records."""
    shutil.copytree(root / "finished" / "model", root / "truncated_model")
    text = (root / "truncated_model" / "config.json").read_text()
    (root / "truncated_model" / "config.json").write_text(text[: len(text) // 2])
    (root / "ledger_run").mkdir()
    for name in ("summary.json", "config.yaml"):
        shutil.copyfile(root / "finished" / name, root / "ledger_run" / name)
    (root / "ledger_run" / "hub_push.json").mkdir()
    (root / "empty_store" / "runs" / "study").mkdir(parents=True)


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
    "study_long": lambda s: {**s, "study": "s" * 300},
    "study_emoji": lambda s: {**s, "study": "study-\U0001F600"},
    "hub_org": lambda s: {**s, "hub": {"org": "bad org!"}},
    "size_twice": lambda s: {**s, "sizes": [{"depth": 1, "width": 64, "heads": 1}, {"depth": 1}]},
    "base_study": lambda s: {**s, "base": {**s["base"], "train": {**s["base"]["train"], "run_id": "a/b"}}},
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
     "train.output_dir {ws}/afile: is a file, not a folder"),
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
    ("sweep", "--out is a file", "--config {ws}/sweep.yaml --out {ws}/afile", "--out {ws}/afile: is a file"),
    ("sweep", "--out under a file", "--config {ws}/sweep.yaml --out {ws}/afile/out", "{ws}/afile is a file"),
    ("sweep", "<out>/runs is a file", "--config {ws}/sweep.yaml --out {ws}/sweep_runs_file",
     "--out {ws}/sweep_runs_file/runs: is a file, not a folder"),
    ("sweep", "--out not writable", "--config {ws}/sweep.yaml --out /sys/ditlaws-sweep", "cannot write in /sys"),
    ("sweep", "next: --write is a folder", "next --from {ws}/sweep.yaml --budget 1e8 --write {ws}/adir",
     "--write {ws}/adir: is a folder"),
    ("sweep", "next: --write under a file", "next --from {ws}/sweep.yaml --budget 1e8 --write {ws}/afile/next.yaml",
     "--write {ws}/afile/next.yaml: {ws}/afile is a file"),
    ("sweep", "next: negative budget", "next --from {ws}/sweep.yaml --budget -1 --write {ws}/next.yaml",
     "--budget must be a finite number of FLOPs > 0"),
    ("sweep", "next: two sizes", "next --from {ws}/sweep.yaml --budget 1e8 --sizes 2 --write {ws}/next.yaml",
     "--sizes must be at least 3"),
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

LONG = "n" * 300
CASES += [
    ("train_dit.py", "YAML key given twice", "--config {ws}/dup_key.yaml", "key 'steps' is given twice"),
    ("train_dit.py", "YAML section given twice", "--config {ws}/dup_section.yaml", "key 'train' is given twice"),
    ("train_dit.py", "YAML whose content is false", "--config {ws}/false.yaml", "a config must be a mapping"),
    ("train_dit.py", "YAML whose content is 0", "--config {ws}/zero.yaml", "a config must be a mapping"),
    ("train_dit.py", "YAML whose content is a sentence", "--config {ws}/text.yaml", "a config must be a mapping"),
    ("train_dit.py", "a section that is false", "--config {ws}/model_false.yaml", "model: must be a mapping"),
    ("train_dit.py", "YAML alias bomb (393 bytes)", "--config {ws}/bomb.yaml", "expands to more than 100,000"),
    ("train_dit.py", "YAML file over 1 MiB", "--config {ws}/huge.yaml", "a config file is at most"),
    ("train_dit.py", "study '../x'", "--train.steps 3 --train.study ../x", "train.study '../x'"),
    ("train_dit.py", "run id 'a/b'", "--train.steps 3 --train.run_id a/b", "train.run_id 'a/b'"),
    ("train_dit.py", "run id of 300 characters", f"--train.steps 3 --train.run_id {LONG}", "(300 chars)"),
    ("train_dit.py", "study with an emoji", "--train.steps 3 --train.study caf\u00e9-\U0001F600", "train.study"),
    ("train_dit.py", "study '.hidden..'", "--train.steps 3 --train.study a..b", "train.study 'a..b'"),
    ("train_dit.py", "hub.org with a space", "--train.steps 3 --hub.org 'bad org!'", "hub.org 'bad org!'"),
    ("train_dit.py", "hub.org with '--'", "--train.steps 3 --hub.org a--b", "hub.org 'a--b'"),
    ("train_dit.py", "output folder name of 300 characters",
     f"{TINY} --train.steps 3 --train.output_dir {{ws}}/{LONG}", "a file or folder name is at most 255"),
    ("train_dit.py", "finished run, other data.num_workers (it changes the numbers of a sharded source)",
     f"{TINY} --train.steps 3 --train.output_dir {{ws}}/finished --data.num_workers 1",
     "holds a different run (data.num_workers)"),
    ("train_dit.py", "nested braces in data_files", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/nb "
     "--data.source parquet --data.data_files '{ws}/six{{,{{,}}}}.parquet'", "nested braces are not supported"),
    ("train_dit.py", "brace range of 100 million files", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/nb "
     "--data.source parquet --data.data_files '{ws}/part-{{0..99999999}}.parquet'", "expands to more than 1,000,000"),
    ("train_dit.py", "data file named twice", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/nb "
     "--data.source parquet --data.data_files '{ws}/six{{,}}.parquet'", "six.parquet' is named twice"),
    ("train_dit.py", "unbalanced brace in data_files", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/nb "
     "--data.source parquet --data.data_files '{ws}/six{{.parquet'", "unbalanced braces"),
    ("train_dit.py", "zero-byte parquet file", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/nb "
     "--data.source parquet --data.data_files [{ws}/six.parquet,{ws}/empty.parquet]", "empty.parquet is empty"),
    ("train_dit.py", "damaged parquet file", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/nb "
     "--data.source parquet --data.data_files {ws}/garbage.parquet", "garbage.parquet is not a readable parquet"),
    ("train_dit.py", "tar cut short inside a member", f"{TINY} --train.steps 3 --train.output_dir {{ws}}/nb "
     "--data.source webdataset --data.image_column png --data.caption_column txt --data.data_files {ws}/cut.tar",
     "cut.tar is truncated"),
    ("sweep", "YAML key given twice", "--config {ws}/sweep_dup.yaml", "key 'study' is given twice"),
    ("sweep", "YAML whose content is false", "--config {ws}/sweep_false.yaml", "a config must be a mapping"),
    ("sweep", "YAML alias bomb", "--config {ws}/sweep_bomb.yaml", "expands to more than 100,000"),
    ("sweep", "study of 300 characters", "--config {ws}/sweep_study_long.yaml", "study 'sss"),
    ("sweep", "study with an emoji", "--config {ws}/sweep_study_emoji.yaml", "study 'study-"),
    ("sweep", "hub.org with a space", "--config {ws}/sweep_hub_org.yaml", "hub.org 'bad org!'"),
    ("sweep", "one size spelled two ways", "--config {ws}/sweep_size_twice.yaml", "sweep.sizes[1] is sizes[0] again"),
    ("sweep", "run id in the base", "--config {ws}/sweep_base_study.yaml", "sweep.base.train.run_id"),
    ("sweep", "every run below min_steps", "--config {ws}/sweep_low.yaml", "none of its 1 runs would train"),
    ("sweep", "job file that is a JSON list", "job {ws}/bad_job", "not a valid job file"),
]

EVAL = "--checkpoint {ws}/finished --metrics loss --device cpu"
FIT = "--runs {ws}/runs.csv --bootstrap 20 --no-parametric --no-figures --holdout 0"
PREPARE = "--config {ws}/data.yaml --split val"
CASES += [
    ("evaluate_dit.py", "no --checkpoint", "--metrics loss", "eval.checkpoint is required"),
    ("evaluate_dit.py", "checkpoint folder missing", "--checkpoint {ws}/nowhere", "{ws}/nowhere: no such folder"),
    ("evaluate_dit.py", "checkpoint folder without a model", "--checkpoint {ws}/adir", "{ws}/adir"),
    ("evaluate_dit.py", "model config truncated", "--checkpoint {ws}/truncated_model --data builtin32 "
     "--data.resolution 16 --data.text_dim 16 --data.text_len 8", "truncated_model/config.json: not valid JSON"),
    ("evaluate_dit.py", "unknown metric", "--checkpoint {ws}/finished --metrics loss,sharpness",
     "eval.metrics[1]: 'sharpness' is not valid; choose one of"),
    ("evaluate_dit.py", "batch size not a number", f"{EVAL} --batch-size two", "eval.batch_size: expected an integer"),
    ("evaluate_dit.py", "NaN t_scale", f"{EVAL} --t-scale nan", "eval.t_scale must be a finite"),
    ("evaluate_dit.py", "unknown data key", f"{EVAL} --data.resolutoin 16", "data.resolutoin: unknown key"),
    ("evaluate_dit.py", "unknown split", f"{EVAL} --splits val,test", "eval.splits"),
    ("evaluate_dit.py", "--out under a file", f"{EVAL} --out {{ws}}/afile/eval.json", "--out {ws}/afile/eval.json"),
    ("evaluate_dit.py", "--fid-stats-dir is a file", "--checkpoint {ws}/finished --metrics fid --device cpu "
     "--fid-stats-dir {ws}/afile", "--fid-stats-dir {ws}/afile: is a file, not a folder"),
    ("evaluate_dit.py", "--store not writable", f"{EVAL} --store /sys/ditlaws-store", "--store /sys/ditlaws-store: "
     "cannot write in /sys"),
    ("evaluate_dit.py", "--store hub:// without a study", f"{EVAL} --store hub://only-org",
     "--store hub://only-org: a Hub store is hub://<org>/<study>"),
    ("fit_laws.py", "neither --runs nor --hub", "--out {ws}/fit", "give exactly one of --runs"),
    ("fit_laws.py", "no --out", "--runs {ws}/runs.csv", "--out is required"),
    ("fit_laws.py", "--runs missing", "--runs {ws}/nope.csv --out {ws}/fit", "--runs: {ws}/nope.csv does not exist"),
    ("fit_laws.py", "--out is a file", f"{FIT} --out {{ws}}/afile", "--out {ws}/afile: is a file, not a folder"),
    ("fit_laws.py", "--out under a file", f"{FIT} --out {{ws}}/afile/fit", "{ws}/afile is a file, not a folder"),
    ("fit_laws.py", "--out not writable", f"{FIT} --out /sys/ditlaws-fit", "--out /sys/ditlaws-fit: cannot write"),
    ("fit_laws.py", "infinite --predict", f"{FIT} --out {{ws}}/fit --predict inf", "--predict must be a finite"),
    ("fit_laws.py", "negative --predict", f"{FIT} --out {{ws}}/fit --predict=-1e20", "--predict must be > 0"),
    ("fit_laws.py", "negative --seed", f"{FIT} --out {{ws}}/fit --seed -1", "--seed must be >= 0"),
    ("fit_laws.py", "too few bootstrap draws", "--runs {ws}/runs.csv --out {ws}/fit --bootstrap 10",
     "--bootstrap must be >= 20"),
    ("fit_laws.py", "negative --holdout", "--runs {ws}/runs.csv --out {ws}/fit --holdout -1", "--holdout"),
    ("fit_laws.py", "unknown FLOP convention", f"{FIT} --out {{ws}}/fit --flops 7nd", "--flops"),
    ("fit_laws.py", "--compare missing", f"{FIT} --out {{ws}}/fit --compare {{ws}}/other.csv",
     "--compare: {ws}/other.csv does not exist"),
    ("fit_laws.py", "--revision without --hub", f"{FIT} --out {{ws}}/fit --revision main", "--revision needs --hub"),
    ("fit_laws.py", "--push without --hub", f"{FIT} --out {{ws}}/fit --push", "--push needs --hub"),
    ("fit_laws.py", "CSV not UTF-8", "--runs {ws}/latin1.csv --out {ws}/fit_done", "latin1.csv"),
    ("fit_laws.py", "CSV without a loss column", "--runs {ws}/nocol.csv --out {ws}/fit", "nocol.csv"),
    ("fit_laws.py", "duplicated rows", "--runs {ws}/dup.csv --out {ws}/fit_done --bootstrap 20 --no-figures",
     "duplicated runs"),
    ("fit_laws.py", "FID of 0", "--runs {ws}/fid0.csv --out {ws}/fit --bootstrap 20 --no-figures",
     "'fid' must be a finite number > 0"),
    ("fit_laws.py", "--runs folder without records", "--runs {ws}/adir --out {ws}/fit", "--runs"),
    ("ditlaws-prepare", "no --config", "--split val --out {ws}/new_cache", "--config"),
    ("ditlaws-prepare", "config file missing", "--config {ws}/nope.yaml --out {ws}/new_cache", "nope.yaml"),
    ("ditlaws-prepare", "config not UTF-8", "--config {ws}/latin1.yaml --out {ws}/new_cache", "latin1.yaml: not UTF-8"),
    ("ditlaws-prepare", "no output folder", PREPARE, "pass --out DIR or set data.cache_dir"),
    ("ditlaws-prepare", "--out is a file", f"{PREPARE} --out {{ws}}/afile", "--out {ws}/afile: is a file"),
    ("ditlaws-prepare", "--out under a file", f"{PREPARE} --out {{ws}}/afile/cache", "{ws}/afile is a file"),
    ("ditlaws-prepare", "--out not writable", f"{PREPARE} --out /sys/ditlaws-cache", "cannot write in /sys"),
    ("ditlaws-prepare", "the split folder is a file", f"{PREPARE} --out {{ws}}/cache_split_file",
     "--out {ws}/cache_split_file/val: is a file, not a folder"),
    ("ditlaws-prepare", "cache of a different config", f"{PREPARE} --out {{ws}}/cache --data.seed 5",
     "holds shards from a different config"),
    ("ditlaws-prepare", "unknown split", "--config {ws}/data.yaml --split test --out {ws}/new_cache",
     "--split 'test' is not valid; choose one of train, val, ood"),
    ("ditlaws-prepare", "builtin train without --num-samples", "--config {ws}/data.yaml --out {ws}/new_cache",
     "--num-samples is required"),
    ("ditlaws-prepare", "zero --num-samples", f"{PREPARE} --out {{ws}}/new_cache --num-samples 0",
     "--num-samples must be positive"),
    ("ditlaws-prepare", "--num-samples not a number", f"{PREPARE} --out {{ws}}/new_cache --num-samples ten",
     "--num-samples: invalid int value"),
    ("ditlaws-prepare", "zero --batch-size", f"{PREPARE} --out {{ws}}/new_cache --batch-size 0",
     "--batch-size must be positive"),
    ("ditlaws-prepare", "unknown device", f"{PREPARE} --out {{ws}}/new_cache --device tpu9",
     "--device: 'tpu9' is not a device; valid: cpu"),
    ("ditlaws-prepare", "unknown data key", f"{PREPARE} --out {{ws}}/new_cache --data.resolutoin 16",
     "data.resolutoin: unknown key (did you mean 'resolution'?)"),
    ("ditlaws features", "zero steps", "--steps 0 --out {ws}/features.safetensors", "features.steps must be >= 1"),
    ("ditlaws features", "NaN learning rate", "--lr nan --out {ws}/f.safetensors", "features.lr must be a finite"),
    ("ditlaws features", "resolution too small", "--resolution 4 --out {ws}/f.safetensors", "features.resolution"),
    ("ditlaws features", "--out is a folder", "--steps 1 --out {ws}/adir", "--out {ws}/adir: is a folder"),
    ("ditlaws features", "--out under a file", "--steps 1 --out {ws}/afile/f.safetensors", "{ws}/afile is a file"),
    ("ditlaws features", "--out not writable", "--steps 1 --out /sys/f.safetensors", "cannot write in /sys"),
    ("ditlaws push", "folder missing", "{ws}/nowhere --hub.org someone", "{ws}/nowhere: no such folder"),
    ("ditlaws push", "a file, not a folder", "{ws}/afile --hub.org someone", "{ws}/afile: is a file, not a folder"),
    ("ditlaws push", "not a run folder", "{ws}/adir --hub.org someone", "{ws}/adir: not a finished run folder"),
    ("ditlaws push", "no --hub.org", "{ws}/finished", "hub.org: set the Hub user or organisation"),
    ("ditlaws push", "unknown flag", "{ws}/finished --hub.orgg someone", "unrecognized arguments: --hub.orgg"),
    ("ditlaws push", "push ledger path is a folder", "{ws}/ledger_run --hub.org someone",
     "{ws}/ledger_run/hub_push.json: is a folder"),
    ("ditlaws push", "store without records", "{ws}/empty_store --hub.org someone", "no run records"),
    ("evaluate_dit.py", "--store: run id '../../evil' (refused before computing)",
     "--checkpoint {ws}/evil_run --metrics loss --device cpu --store {ws}/empty_store", "run id '../../evil'"),
    ("evaluate_dit.py", "--store: the stored record is a JSON list (refused before computing)",
     f"{EVAL} --store {{ws}}/list_store", "a run record must be a JSON object, got list"),
    ("evaluate_dit.py", "--store: the stored record is not JSON (refused before computing)",
     f"{EVAL} --store {{ws}}/garbled_store", "not valid JSON"),
    ("evaluate_dit.py", "--store: the stored record is a folder (refused before computing)",
     f"{EVAL} --store {{ws}}/folder_store", "is not a file"),
    ("evaluate_dit.py", "NaN weights", "--checkpoint {ws}/nan_model --metrics loss --device cpu --data builtin32 "
     "--data.resolution 16 --data.text_dim 16 --data.text_len 8 --out {ws}/nan_eval.json",
     "the weights hold NaN or inf values"),
    ("evaluate_dit.py", "--data YAML with a repeated key", f"{EVAL} --data {{ws}}/data_dup.yaml",
     "key 'resolution' is given twice"),
    ("evaluate_dit.py", "--out name of 300 characters", f"{EVAL} --out {{ws}}/{LONG}.json",
     "a file or folder name is at most 255"),
    ("fit_laws.py", "--bootstrap of ten million", f"{FIT} --out {{ws}}/fit --bootstrap 10000000",
     "--bootstrap must be <= 100,000"),
    ("fit_laws.py", "--parametric-bootstrap of ten million", f"{FIT} --out {{ws}}/fit --parametric-bootstrap "
     "10000000", "--parametric-bootstrap must be <= 100,000"),
    ("fit_laws.py", "--predict 1e-300", f"{FIT} --out {{ws}}/fit --predict 1e-300", "--predict 1e-300: outside"),
    ("fit_laws.py", "--predict 1e40", f"{FIT} --out {{ws}}/fit --predict 1e40", "--predict 1e+40: outside"),
    ("fit_laws.py", "--out inside a store's runs/<study>/", f"{FIT} --out {{ws}}/store_a/runs/s/fit",
     "inside the run store"),
    ("fit_laws.py", "--out inside a store's models/", f"{FIT} --out {{ws}}/store_a/models/fit",
     "inside the run store"),
    ("fit_laws.py", "CSV with the column N twice", "--runs {ws}/dup_header.csv --out {ws}/fit --bootstrap 20",
     "column 'N' appears 2 times"),
    ("fit_laws.py", "identical losses", "--runs {ws}/same_loss.csv --out {ws}/fit --bootstrap 20 --no-figures",
     "all 18 runs have the same loss"),
    ("fit_laws.py", "--strict: a folder named *.json in the store",
     "--runs {ws}/store_a --out {ws}/fit --strict --bootstrap 20 --no-figures", "adir.json: not a readable file"),
    ("fit_laws.py", "a store whose only record has eval.val_loss null (NaN weights)",
     "--runs {ws}/nan_store --out {ws}/fit --bootstrap 20 --no-figures", "eval.val_loss is null"),
    ("ditlaws-prepare", "config YAML with a repeated key", "--config {ws}/data_dup.yaml --split val --out "
     "{ws}/new_cache", "key 'resolution' is given twice"),
    ("ditlaws-prepare", "config YAML alias bomb", "--config {ws}/data_bomb.yaml --split val --out {ws}/new_cache",
     "expands to more than 100,000"),
    ("ditlaws-prepare", "config YAML whose content is 0", "--config {ws}/zero.yaml --split val --out "
     "{ws}/new_cache", "a config must be a mapping"),
    ("ditlaws-prepare", "zero-byte parquet", "--config {ws}/data.yaml --out {ws}/new_cache --data.source parquet "
     "--data.data_files [{ws}/six.parquet,{ws}/empty.parquet]", "empty.parquet is empty"),
    ("ditlaws-prepare", "truncated tar", "--config {ws}/data.yaml --out {ws}/new_cache --data.source webdataset "
     "--data.image_column png --data.caption_column txt --data.data_files {ws}/cut.tar", "is truncated"),
    ("ditlaws-prepare", "nested braces", "--config {ws}/data.yaml --out {ws}/new_cache --data.source parquet "
     "--data.data_files '{ws}/six{{,{{,}}}}.parquet'", "nested braces"),
    ("ditlaws-prepare", "small set, default val_size: the train split is empty (nothing written)",
     "--config {ws}/data.yaml --out {ws}/new_cache --data.source parquet --data.data_files {ws}/six.parquet "
     "--data.val_size 256", "no usable rows for split 'train'"),
    ("ditlaws features", "--out name of 300 characters", f"--steps 1 --out {{ws}}/{LONG}.safetensors",
     "a file or folder name is at most 255"),
    ("ditlaws push", "hub.org with a space", "{ws}/finished --hub.org 'bad org!'", "hub.org 'bad org!'"),
    ("ditlaws bench", "--out is a folder (refused before the benchmark)", "--out {ws}/adir", "--out {ws}/adir: is a "
     "folder"),
    ("ditlaws bench", "--out under a file (refused before the benchmark)", "--out {ws}/afile/bench.json",
     "{ws}/afile is a file"),
    ("ditlaws space", "no subcommand", "", "required: command"),
    ("ditlaws space", "repo not org/space", "deploy --repo nospace --fit {ws}/fit_done/fit.json",
     "--repo: 'nospace' is not <org>/<space>"),
    ("ditlaws space", "neither --fit nor --results-repo", "deploy --repo org/space", "give --fit fit.json"),
    ("ditlaws space", "fit.json missing", "deploy --repo org/space --fit {ws}/nope.json", "{ws}/nope.json"),
    ("ditlaws space", "fit.json not JSON", "deploy --repo org/space --fit {ws}/afile", "{ws}/afile: not valid JSON"),
    ("ditlaws space", "fit.json without study", "deploy --repo org/space --fit {ws}/fit_done/fit.json",
     "{ws}/fit_done/fit.json: fit.json has no 'study'"),
]


def run_cli(cli: str, argv: list[str]) -> int:
    if cli == "train_dit.py":
        import train_dit

        return train_dit.main(argv)
    if cli == "sweep":
        from ditlaws.sweep.cli import main

        return main(argv)
    if cli == "evaluate_dit.py":
        import evaluate_dit

        return evaluate_dit.main(argv)
    if cli == "fit_laws.py":
        from ditlaws.laws.cli import main

        return main(argv)
    if cli == "ditlaws-prepare":
        from ditlaws.data.prepare import main

        return main(argv)
    if cli.startswith("ditlaws "):  # through the `ditlaws` dispatcher, as typed
        from ditlaws.cli import main

        return main([cli.split()[1], *argv])
    raise AssertionError(cli)


def snapshot(root: Path) -> dict[Path, str]:
    """Every path under root: folders as "dir", files by content hash."""
    return {p: f"link {os.readlink(p)}" if p.is_symlink() else "dir" if p.is_dir() else
            hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest() for p in root.rglob("*")}


@pytest.mark.parametrize("cli, case, args, expected", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_is_one_line_and_exit_2(ws, capsys, cli, case, args, expected):
    before = snapshot(ws)
    argv = shlex.split(args.format(ws=ws))
    try:
        code = run_cli(cli, argv)
    except SystemExit as stop:  # argparse usage errors
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert expected.format(ws=ws) in err[0], err[0]
    assert "Traceback" not in err[0]
    assert snapshot(ws) == before  # nothing already written was changed, and nothing was added
    shown = args.replace("{ws}/", "").replace("{{", "{").replace("}}", "}")
    record_case(cli, case, shown if len(shown) < 200 else shown[:180] + "...", code, err[0].replace(f"{ws}/", ""))


# Cases in a process of their own: exit code and stderr as the shell sees them. The fast ones fail before the heavy
# imports; a bad output path is found after them (about 20 s of torch / diffusers start-up per process on a busy
# 2-core machine), so those run with `-m slow` (and `make reliability`).
FAST_PROCESSES = [
    ("train_dit.py", ["python", "train_dit.py", "--train.stesp", "3"], "train.stesp: unknown key"),
    ("evaluate_dit.py", ["python", "evaluate_dit.py", "--metrics", "loss"], "eval.checkpoint is required"),
    ("fit_laws.py", ["python", "fit_laws.py", *shlex.split(FIT), "--out", "/sys/ditlaws-fit"],
     "--out /sys/ditlaws-fit: cannot write in /sys"),
    ("ditlaws push", ["ditlaws", "push", "{ws}/nowhere"], "{ws}/nowhere: no such folder"),
]
OUTPUT_PATH_PROCESSES = [
    ("train_dit.py", ["python", "train_dit.py", *TINY.split(), "--train.steps", "3", "--train.output_dir",
                      "/sys/ditlaws-run"], "train.output_dir /sys/ditlaws-run: cannot write in /sys"),
    ("sweep", ["python", "-m", "ditlaws.sweep", "--config", "{ws}/sweep.yaml", "--out", "{ws}/afile/out"],
     "--out {ws}/afile/out: {ws}/afile is a file, not a folder"),
    ("evaluate_dit.py", ["python", "evaluate_dit.py", *shlex.split(EVAL), "--out", "/sys/ditlaws/eval.json"],
     "--out /sys/ditlaws/eval.json: cannot write in /sys"),
    ("fit_laws.py", ["python", "fit_laws.py", *shlex.split(FIT), "--out", "{ws}/fit_done/fit.json"],
     "--out {ws}/fit_done/fit.json: is a file, not a folder"),
    ("ditlaws-prepare", ["ditlaws-prepare", *shlex.split(PREPARE), "--out", "{ws}/cache/val/manifest.json"],
     "--out {ws}/cache/val/manifest.json: is a file, not a folder"),
]


def executable(command: list[str]) -> list[str]:
    """`python` is this interpreter; a console script is the venv's, or the module behind it where it is not
    installed."""
    modules = {"ditlaws": "ditlaws.cli", "ditlaws-prepare": "ditlaws.data.prepare"}
    if command[0] == "python":
        return [sys.executable, *command[1:]]
    script = Path(sys.executable).with_name(command[0])
    return [str(script), *command[1:]] if script.exists() else [sys.executable, "-m", modules[command[0]],
                                                                *command[1:]]


def run_processes(ws: Path, processes: list) -> None:
    """Start them all at once; each must exit 2 with one stderr line, no traceback, nothing on stdout, nothing in
    the workspace changed."""
    before = snapshot(ws)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    started = [(cli, command, expected, subprocess.Popen(executable([a.format(ws=ws) for a in command]), cwd=ROOT,
                                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                         text=True))
               for cli, command, expected in processes]
    for cli, command, expected, proc in started:
        out, err = proc.communicate(timeout=600)
        lines = err.strip().splitlines()
        assert proc.returncode == 2, (cli, err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, (cli, err)
        assert expected.format(ws=ws) in lines[0], lines[0]
        assert out == "", (cli, out)
        record_case(cli, "in a process of its own", " ".join(command).replace("{ws}/", ""), proc.returncode,
                    lines[0].replace(f"{ws}/", ""))
    assert snapshot(ws) == before


def test_bad_input_in_a_process_of_its_own(ws):
    run_processes(ws, FAST_PROCESSES)


@pytest.mark.slow
def test_bad_output_path_in_a_process_of_its_own(ws):
    run_processes(ws, OUTPUT_PATH_PROCESSES)


# ---------------------------------------------------------------------------------------------------------------
# Valid input that used to be refused or mangled, and repairs that used to be silent (issues 20 and 25)


@pytest.mark.parametrize("name", ["#x", "1.5", "12:30", "null", "yes", "1e3"])
def test_folder_names_on_the_command_line_stay_strings(name):
    from ditlaws.config import load_config

    cfg = load_config(None, ["--train.steps", "3", "--train.output_dir", name, "--train.study", "s1"])
    assert cfg.train.output_dir == name and type(cfg.train.output_dir) is str
    record_drill("train_dit.py", f"--train.output_dir {name!r} (a valid folder name that is also YAML)",
                 "kept as the string typed, not parsed as YAML")


def test_command_line_values_still_parse_for_their_fields():
    from ditlaws.config import load_config

    cfg = load_config(None, ["--train.steps", "3", "--train.lr", "1e-3", "--train.betas", "0.8,0.9",
                             "--train.trackers", "tensorboard", "--model.width", "null", "--train.fused_adamw",
                             "false", "--data.data_files", "[a.parquet,b.parquet]"])
    assert (cfg.train.steps, cfg.train.lr, cfg.train.betas, cfg.train.trackers) == (3, 1e-3, (0.8, 0.9),
                                                                                    ["tensorboard"])
    assert cfg.model.width is None and cfg.train.fused_adamw is False
    assert cfg.data.data_files == ["a.parquet", "b.parquet"]


def test_files_get_the_umask_mode(tmp_path):
    """Files written atomically used to be 0600 whatever the umask (tempfile.mkstemp); colleagues could not read."""
    from ditlaws.jsonio import write_json_atomic, write_text_atomic

    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a.json", {"x": 1})
        write_text_atomic(tmp_path / "b.md", "hi\n")
        os.umask(0o002)
        write_json_atomic(tmp_path / "c.json", {"x": 1})
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o644, "b.md": 0o644, "c.json": 0o664}
    record_drill("jsonio (every file ditlaws writes)", "umask 022, then 002", "files 0644, then 0664 (were 0600)")


def test_run_files_are_readable_by_the_group(ws):
    """summary.json, config.yaml, weights and checkpoints of a real run: the umask's mode, not 0600."""
    run = ws / "finished"
    files = [run / "summary.json", run / "config.yaml", run / "metrics.jsonl",
             *(run / "model").iterdir(), *(p for p in (run / "checkpoints").rglob("*") if p.is_file())]
    mask = os.umask(0)
    os.umask(mask)
    assert {p.name: p.stat().st_mode & 0o777 for p in files} == {p.name: 0o666 & ~mask for p in files}


def test_a_fit_ignores_a_folder_or_dangling_link_named_json_with_a_note(ws, capsys):
    from ditlaws.laws.cli import main

    out = ws.parent / "fit_store_a"
    assert main(["--runs", str(ws / "store_a"), "--out", str(out), "--bootstrap", "20", "--no-figures",
                 "--no-parametric", "--holdout", "0"]) in (0,)
    err = capsys.readouterr().err
    assert "adir.json: not a readable file" in err and "dangling.json: not a readable file" in err
    record_drill("fit_laws.py", "a folder and a dangling symlink named *.json in the store (no --strict)",
                 "fitted from the good records; both listed as skipped with a note (was a traceback)")


def test_refused_prepare_leaves_nothing_and_the_corrected_rerun_works(ws, tmp_path):
    from ditlaws.data.prepare import main

    out = tmp_path / "cache"
    args = ["--config", str(ws / "data.yaml"), "--out", str(out), "--data.source", "parquet", "--data.data_files",
            str(ws / "six.parquet")]
    assert main(args) == 2 and not out.exists()  # the default val_size holds out every row: nothing written
    assert main([*args, "--data.val_size", "2"]) == 0
    assert json.loads((out / "train" / "manifest.json").read_text())["rows"] == 4
    record_drill("ditlaws-prepare", "a small set with the default val_size (train split empty), then corrected",
                 "refused with nothing written (was: 8 empty shards left, and the corrected rerun refused); the "
                 "corrected rerun writes 4 rows")


def test_sixteen_bit_png_is_scaled_not_white():
    import io

    from PIL import Image

    from ditlaws.data.sources import resize_center_crop

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        assert image.mode.startswith("I")
        pixels = resize_center_crop(image, 16)
    expected = ramp.astype(float).mean() / 257  # the ramp's mean on an 8-bit scale
    assert abs(pixels.mean() - expected) < 3 and pixels.max() < 255  # was: 255 everywhere
    record_drill("data sources", "a 16-bit greyscale PNG", f"scaled to 8 bits (mean {pixels.mean():.1f}, expected "
                 f"{expected:.1f}; was pure white)")


def test_metrics_log_is_repaired_from_the_checkpoint_copy(tmp_path):
    """Records lost from metrics.jsonl (a full disk during an old in-place rewrite) come back from the checkpoint's
    copy; records after the checkpoint and a torn last line go."""
    from ditlaws.training.metrics import MetricsWriter

    log = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(log)
    for step in range(1, 7):
        writer.write({"step": step, "loss": 1.0 / step})
    (tmp_path / "ckpt").mkdir()
    writer.snapshot(tmp_path / "ckpt", 4)
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 5, "lo')  # lost records and a torn line
    MetricsWriter(log, resume_step=4, checkpoint=tmp_path / "ckpt")
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]
    record_drill("train_dit.py --train.resume", "metrics.jsonl lost records 2-6 and ends in a torn line",
                 "rebuilt from the checkpoint's own copy of the log: steps 1-4, complete lines")


def test_resume_latest_without_a_usable_checkpoint_says_so(tmp_path):
    from ditlaws.training.checkpoint import resolve_resume

    (tmp_path / "checkpoints" / "step_3").mkdir(parents=True)  # emptied
    said = []
    assert resolve_resume("latest", tmp_path, warn=said.append) is None
    assert len(said) == 1 and "no finished checkpoint" in said[0] and "starting from step 0" in said[0]
    record_drill("train_dit.py --train.resume latest", "checkpoint folders emptied", "starts from step 0 with a "
                 "warning naming the folder (was silent)")


def test_tar_checks_accept_whole_tars_and_find_cuts_anywhere(tmp_path):
    """A tar cut inside a member's data or inside a member's header is refused (tarfile alone stops quietly at a
    cut header: the rows after it were dropped, counted nowhere); whole tars, with or without end blocks, pass."""
    import io
    import tarfile

    from ditlaws.data.files import check_local_files
    from ditlaws.errors import UserError

    with tarfile.open(tmp_path / "whole.tar", "w") as tar:
        for i in range(3):
            data = bytes(range(256)) * 3
            info = tarfile.TarInfo(f"{i}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = (tmp_path / "whole.tar").read_bytes()
    cuts = {"in_data": data[:512 * 2 + 300], "in_header": data[:512 * 3 + 40], "no_end_blocks": data[:512 * 6]}
    for name, content in cuts.items():
        (tmp_path / f"{name}.tar").write_bytes(content)
    check_local_files([str(tmp_path / "whole.tar"), str(tmp_path / "no_end_blocks.tar")])
    for name in ("in_data", "in_header"):
        with pytest.raises(UserError, match="is truncated"):
            check_local_files(str(tmp_path / f"{name}.tar"))
    record_drill("data sources (webdataset)", "tars cut inside a member's data, inside a member's header; a whole tar "
                 "without end blocks", "both cuts refused before reading, naming the tar (a cut header used to "
                 "drop the rest silently); the whole tar accepted")
