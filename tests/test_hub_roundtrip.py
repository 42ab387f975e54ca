"""A study shared on the Hub and fitted from it: a tiny sweep pushes every run to the Hub-API test server, and
`fit_laws.py --hub` (one pinned snapshot) gives the same fit as the local store; an older revision fits the older
set of runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_server import hub_server  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SIZES = [{"depth": 1, "width": w, "heads": 1} for w in (8, 16, 32)]
BASE = {"model": {"family": "in_context", "patch_size": 4},
        "data": {"source": "builtin", "resolution": 16, "complexity": 1, "text_len": 8, "text_dim": 16,
                 "val_size": 8},
        "train": {"global_batch": 4, "lr": 1e-3, "mixed_precision": "no", "log_every": 5}}
# Fields of fit.json that say where the runs came from (a path or a repo) rather than what was fitted.
WHERE = ("inputs", "provenance", "options", "versions", "source", "skipped")


def numbers(doc):
    if isinstance(doc, dict):
        return {k: numbers(v) for k, v in doc.items() if k not in WHERE}
    if isinstance(doc, list):
        return [numbers(v) for v in doc]
    return doc


def fit(args, out: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "fit_laws.py"), *args, "--out", str(out), "--bootstrap", "50",
                           "--no-figures"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "fit.json").read_text())


def test_sweep_to_hub_then_fit_from_hub_equals_the_local_fit(hub_server, tmp_path):  # noqa: F811
    from ditlaws.sweep import run_sweep, sweep_from_dict

    hub = {"org": "lab", "endpoint": hub_server.url, "push_every_s": 1}
    common = {"study": "share", "sizes": SIZES, "min_steps": 2, "base": BASE, "hub": hub,
              "eval": {"max_samples": 8, "loss_timesteps": 2, "batch_size": 8}, "out": str(tmp_path / "out")}
    run_sweep(sweep_from_dict({**common, "budgets": [3e7, 6e7]}), log=lambda _: None)
    first = hub_server.commits("dataset", "lab/share-results")[-1].oid  # the newest commit
    run_sweep(sweep_from_dict({**common, "budgets": [1.2e8]}), log=lambda _: None)  # the study grows

    env = {**os.environ, **hub_server.env(tmp_path / "fit_cache"), "OMP_NUM_THREADS": "1"}
    local = fit(["--runs", str(tmp_path / "out" / "store")], tmp_path / "local", env)
    shared = fit(["--hub", "lab/share-results"], tmp_path / "hub", env)
    assert numbers(shared) == numbers(local)  # every fitted number, prediction and interval equal
    head = hub_server.commits("dataset", "lab/share-results")[-1].oid
    assert shared["inputs"][0]["revision"] == head
    assert head in (tmp_path / "hub" / "report.md").read_text()

    older = fit(["--hub", "lab/share-results", "--revision", first], tmp_path / "older", env)
    assert older["inputs"][0]["revision"] == first
    assert older["inputs"][0]["n_runs"] == 6 and shared["inputs"][0]["n_runs"] == 9

    fit(["--hub", "lab/share-results", "--push"], tmp_path / "pushed", env)  # where the Space reads it
    assert "fit/fit.json" in hub_server.files("dataset", "lab/share-results")

    run_ids = [p.stem for p in sorted((tmp_path / "out" / "store" / "runs" / "share").glob("*.json"))]
    for run_id in run_ids:  # one model repo per kept run, in diffusers format with its card
        files = hub_server.files("model", f"lab/share-{run_id}")
        assert "diffusion_pytorch_model.safetensors" in files and "README.md" in files


def test_evaluate_dit_merges_its_metrics_into_the_hub_record(hub_server, tmp_path):  # noqa: F811
    from ditlaws.config import load_config
    from ditlaws.store import HubStore
    from ditlaws.training import train

    run = tmp_path / "run"
    summary = train(load_config(None, [
        "--model.depth", "1", "--model.width", "16", "--model.heads", "1", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--data.val_size", "8",
        "--train.global_batch", "4", "--train.steps", "3", "--train.mixed_precision", "no", "--train.study", "ev",
        "--train.output_dir", str(run)]))
    env = {**os.environ, **hub_server.env(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate_dit.py"), "--checkpoint", str(run), "--metrics",
                           "loss", "--loss-timesteps", "2", "--batch-size", "8", "--device", "cpu",
                           "--store", "hub://lab/ev"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from huggingface_hub import HfApi

    stored = HubStore("lab", "ev", HfApi(endpoint=hub_server.url)).get_run("ev", summary["run_id"])
    assert stored["eval"]["val_loss"]["mean"] > 0 and stored["N"] == summary["N"]
    wrong = subprocess.run([sys.executable, str(ROOT / "evaluate_dit.py"), "--checkpoint", str(run), "--metrics",
                            "loss", "--store", "hub://lab/other"], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert wrong.returncode == 2 and "study 'ev'" in wrong.stderr
