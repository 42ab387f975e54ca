"""Pushing runs to the Hub (the test server): while training, after it, through `ditlaws push`, under faults; the
models load from the Hub with from_pretrained; the token never reaches a file or a log."""

import json
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from hub_server import TEST_TOKEN, hub_server  # noqa: F401  (the fixture)
from safetensors.torch import load_file

from ditlaws.cli import main as ditlaws_main
from ditlaws.config import HubConfig, load_config
from ditlaws.data.encoders import build_text_encoder
from ditlaws.models import InContextDiT
from ditlaws.pipeline import DiTPipeline
from ditlaws.publish import run_hooks
from ditlaws.publish.model_repo import load_kept_model
from ditlaws.publish.push import LEDGER, push_run
from ditlaws.store import HubStore
from ditlaws.store.cards import validate_card
from ditlaws.store.retry import Retry
from ditlaws.training import train

TESTS = Path(__file__).resolve().parent
FAST = Retry(base_s=0.01)
TINY = ["--model.depth", "2", "--model.width", "32", "--model.heads", "2", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--train.global_batch", "8",
        "--train.log_every", "1", "--train.mixed_precision", "no", "--train.steps", "4", "--train.study", "s"]
RUN_ID = "in_context-d2-w32-p4-steps4-s0"
RESULTS, MODEL = "org/s-results", f"org/s-{RUN_ID}"


def tiny(out: Path, *extra: str):
    return load_config(None, [*TINY, "--train.output_dir", str(out), *extra])


def train_published(cfg) -> dict:
    """Train as train_dit.py does: with the publish hooks (training alone never touches the Hub)."""
    return train(cfg, **run_hooks(cfg))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One finished run folder, trained without the Hub; tests push copies of it."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(tiny(out))
    return out


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


def settings(server, **kw) -> HubConfig:
    return HubConfig(org="org", endpoint=server.url, **kw)


def hub_records(server, study="s"):
    return HubStore("org", study, endpoint=server.url, retry=FAST).list_runs(study)


def wait_for_publishers(timeout=30.0):
    end = time.monotonic() + timeout
    while any(t.name.startswith("hub-push-") for t in threading.enumerate()) and time.monotonic() < end:
        time.sleep(0.05)


def outputs(model, pipe) -> dict:
    """Deterministic outputs of a model and its pipeline (also run in a subprocess that loads them from the Hub)."""
    c = model.config
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, c.in_channels, c.sample_size, c.sample_size, generator=g)
    states = torch.randn(2, c.text_len, c.text_dim, generator=g)
    with torch.no_grad():
        v = model(x, torch.tensor([0.3, 0.7]), states)
    images = pipe(["a red circle at the top", "a small blue square"], num_inference_steps=3, guidance_scale=2.0,
                  generator=torch.Generator().manual_seed(1), output_type="pt").images
    return {"v": v.contiguous(), "images": images.contiguous()}


FROM_HUB = """
import sys
sys.path.insert(0, sys.argv[3])
from safetensors.torch import save_file
from ditlaws import DiTPipeline, InContextDiT
from test_store_push import outputs
model = InContextDiT.from_pretrained(sys.argv[1], use_safetensors=True)
pipe = DiTPipeline.from_pretrained(sys.argv[1], use_safetensors=True)
save_file(outputs(model, pipe), sys.argv[2])
"""


@pytest.mark.slow  # a subprocess (huggingface_hub reads HF_ENDPOINT at import): ~20 s of imports on a busy machine
def test_a_pushed_run_loads_from_the_hub_with_identical_outputs(hub_server, run_dir, tmp_path):  # noqa: F811
    report = push_run(run_dir, settings(hub_server), retry=FAST)
    assert report.ok and set(report.landed) == {"model", "record", "metrics"}
    assert hub_records(hub_server) == [json.loads((run_dir / "summary.json").read_text())]
    files = hub_server.files("model", MODEL)
    assert {"config.json", "diffusion_pytorch_model.safetensors", "model_index.json", "scheduler/scheduler_config.json",
            "text_encoder/config.json", "README.md", "train_config.yaml"} <= set(files)
    assert not any(name.endswith((".bin", ".pkl", ".pt")) for name in files)
    meta = validate_card(files["README.md"].decode(), "model", study="s")
    assert meta["library_name"] == "diffusers" and meta["ditlaws"]["run_id"] == RUN_ID
    shipped = files["train_config.yaml"].decode()
    assert "hub:" not in shipped and f"outputs/{RUN_ID}" in shipped
    cfg = load_config(run_dir / "config.yaml")
    local_model = InContextDiT.from_pretrained(run_dir / "model")
    local = outputs(local_model, DiTPipeline(transformer=local_model, text_encoder=build_text_encoder(cfg.data),
                                             scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0)))
    env = {**os.environ, **hub_server.env(tmp_path / "sub_cache")}
    done = subprocess.run([sys.executable, "-c", FROM_HUB, MODEL, str(tmp_path / "hub.safetensors"), str(TESTS)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = load_file(tmp_path / "hub.safetensors")
    assert torch.equal(remote["v"], local["v"]) and torch.equal(remote["images"], local["images"])
    assert hub_server.count("GET", f"/{MODEL}/resolve/") >= 2  # it really came over HTTP
    assert torch.equal(load_kept_model(HubStore("org", "s", endpoint=hub_server.url), RUN_ID)(
        torch.zeros(1, 3, 16, 16), torch.tensor([0.5]), torch.zeros(1, 8, 16)),
        local_model(torch.zeros(1, 3, 16, 16), torch.tensor([0.5]), torch.zeros(1, 8, 16)))


def test_training_pushes_metrics_as_it_goes_and_everything_at_the_end(hub_server, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    summary = train_published(tiny(out, "--hub.org", "org", "--hub.endpoint", hub_server.url,
                                   "--hub.push_every_s", "0.001"))
    metric_commits = [c for c in hub_server.commits("dataset", RESULTS) if c.title.startswith("ditlaws: metrics")]
    assert metric_commits, "no metrics push during training"
    assert hub_records(hub_server) == [summary]
    pushed = hub_server.files("dataset", RESULTS)[f"runs/s/{RUN_ID}/metrics.jsonl"]
    assert pushed == (out / "metrics.jsonl").read_bytes()
    ledger = json.loads((out / LEDGER).read_text())
    assert ledger["pending"] == [] and set(ledger["landed"]) == {"metrics", "model", "record"}
    counts = (len(hub_server.commits("dataset", RESULTS)), len(hub_server.commits("model", MODEL)))
    assert ditlaws_main(["push", str(out)]) == 0  # settings from the run's config.yaml; nothing left to push
    assert (len(hub_server.commits("dataset", RESULTS)), len(hub_server.commits("model", MODEL))) == counts


def test_a_run_with_the_hub_down_finishes_and_a_later_push_lands_it(hub_server, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    hub_server.down()
    started = time.monotonic()
    summary = train_published(tiny(out, "--hub.org", "org", "--hub.endpoint", hub_server.url,
                                   "--hub.push_every_s", "0.001", "--hub.wait_s", "0.5"))
    assert time.monotonic() - started < 30
    wait_for_publishers()
    assert json.loads((out / "summary.json").read_text()) == summary
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 4
    assert InContextDiT.from_pretrained(out / "model").parameter_counts()["total"] == summary["N"]
    ledger = json.loads((out / LEDGER).read_text())
    assert set(ledger["pending"]) == {"model", "record", "metrics"} and "onnect" in ledger["error"]
    hub_server.up()
    assert ditlaws_main(["push", str(out)]) == 0
    assert hub_records(hub_server) == [summary]
    assert "config.json" in hub_server.files("model", MODEL)
    assert json.loads((out / LEDGER).read_text())["pending"] == []


def test_pushes_survive_server_errors(hub_server, run_dir):  # noqa: F811
    hub_server.fail_next(2, 500)  # the first requests, whatever they are
    hub_server.fail_next(2, 429, path="/commit/")
    hub_server.fail_next(1, 502, path="/tree/")
    report = push_run(run_dir, settings(hub_server), retry=FAST)
    assert report.ok, report.failed
    assert [r["run_id"] for r in hub_records(hub_server)] == [RUN_ID]
    assert sum(1 for _, _, status in hub_server.log if status in (429, 500, 502)) == 5


def test_a_push_killed_midway_leaves_the_hub_consistent_and_a_repush_completes(hub_server, run_dir):  # noqa: F811
    held = hub_server.hold(lambda method, path: method == "POST" and path == f"/api/datasets/{RESULTS}/commit/main")
    child = multiprocessing.get_context("fork").Process(target=push_run, args=(run_dir, settings(hub_server)),
                                                         kwargs={"retry": FAST})
    child.start()
    try:
        assert held.reached.wait(60), "the push never reached the results commit"
        os.kill(child.pid, signal.SIGKILL)  # kill -9 while its results commit is in flight
        child.join(30)
    finally:
        held.release(drop=True)
        child.kill()
    assert child.exitcode == -signal.SIGKILL
    # the model repo is complete (one atomic commit), the results repo holds no half record
    assert "diffusion_pytorch_model.safetensors" in hub_server.files("model", MODEL)
    assert set(hub_server.files("dataset", RESULTS)) == {".gitattributes"}
    assert set(json.loads((run_dir / LEDGER).read_text())["pending"]) == {"model", "record", "metrics"}
    model_commits = len(hub_server.commits("model", MODEL))
    report = push_run(run_dir, settings(hub_server), retry=FAST)
    assert report.ok
    files = hub_server.files("dataset", RESULTS)
    assert [p for p in files if p.endswith(".json")] == [f"runs/s/{RUN_ID}.json"]
    assert len(hub_server.commits("model", MODEL)) == model_commits  # the model was not pushed again
    assert push_run(run_dir, settings(hub_server), retry=FAST).ok
    assert len(hub_server.commits("dataset", RESULTS)) == 2  # initial + the one record commit: no duplicate
    assert json.loads((run_dir / LEDGER).read_text())["pending"] == []


def test_the_token_never_appears_in_files_pushes_or_logs(hub_server, run_dir, tmp_path, caplog,  # noqa: F811
                                                          capfd):
    caplog.set_level(logging.DEBUG, logger="ditlaws")
    caplog.set_level(logging.INFO)
    hub_server.fail_next(1, 500, path="/commit/")
    hub_server.fail_next(6, 401, path=f"/api/models/{MODEL}/preupload")  # the model push fails for good
    report = push_run(run_dir, settings(hub_server), retry=FAST)
    assert set(report.failed) == {"model"} and "record" in report.landed
    out = tmp_path / "trained_with_hub"
    train(tiny(out, "--hub.org", "org", "--hub.endpoint", hub_server.url, "--hub.push_every_s", "0.001"))
    hub_server.fail_next(100, 403)
    assert ditlaws_main(["push", str(out)]) == 1  # a failed push: one line per item, exit 1
    hub_server.heal()
    assert f"Bearer {TEST_TOKEN}" in hub_server.authorizations  # it was used...
    written = [p for folder in (run_dir, out, hub_server.cache_dir) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == LEDGER for p in written)
    leaks = [str(p) for p in written if TEST_TOKEN.encode() in p.read_bytes()]
    pushed = [(repo.repo_id, path) for repo in hub_server.repos.values() for c in repo.commits
              for path, data in c.files.items() if TEST_TOKEN.encode() in data]
    captured = capfd.readouterr()
    assert not leaks and not pushed  # ...and never written
    assert TEST_TOKEN not in caplog.text + captured.out + captured.err


def test_push_command_errors_are_one_line(tmp_path, capsys, hub_server, run_dir):  # noqa: F811
    for argv, message in [([str(tmp_path / "nope")], "no such folder"),
                          ([str(run_dir)], "hub.org: set the Hub user or organisation"),
                          ([str(tmp_path), "--hub.org", "org"], "not a finished run folder"),
                          ([str(run_dir), "--hub.org", "org", "--hub.push_every_s", "-1"], "hub.push_every_s")]:
        with pytest.raises(SystemExit) as exit_:
            ditlaws_main(["push", *argv])
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1, err


def test_push_store_pushes_kept_models_with_cards(hub_server, run_dir, tmp_path):  # noqa: F811
    from ditlaws.store import LocalStore

    local = LocalStore(tmp_path / "store")
    summary = json.loads((run_dir / "summary.json").read_text())
    record = {**summary, "eval": {"val_loss": {"mean": 0.9, "sem": 0.01}},
              "sweep": {"study": "s", "output_dir": str(run_dir)}}
    local.put_run(record)
    local.put_model(RUN_ID, run_dir / "model")
    assert ditlaws_main(["push", str(local.root), "--hub.org", "org", "--hub.endpoint", hub_server.url]) == 0
    assert hub_records(hub_server) == [record]
    card = hub_server.files("model", MODEL)["README.md"].decode()
    validate_card(card, "model", study="s")
    assert "val_loss | 0.9 ± 0.01" in card and "| 2 |" in card and "python train_dit.py --config" in card
    results = hub_server.files("dataset", RESULTS)
    assert results[f"runs/s/{RUN_ID}/metrics.jsonl"] == (run_dir / "metrics.jsonl").read_bytes()
