"""isoFLOP sweep: planning arithmetic, config validation, and the idempotent, resumable local runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ditlaws.errors import UserError
from ditlaws.models import build_model
from ditlaws.sweep import load_sweep, main, run_sweep, sweep_from_dict
from ditlaws.sweep import plan_sweep as plan
from ditlaws.training.budget import steps_for_budget

BASE = {
    "model": {"family": "in_context", "patch_size": 4},
    "data": {"source": "builtin", "resolution": 16, "complexity": 1, "text_len": 8, "text_dim": 16, "val_size": 8},
    "train": {"global_batch": 4, "lr": 1e-3, "mixed_precision": "no", "log_every": 1, "caption_drop": 0.1},
}


def micro(tmp_path, **extra) -> dict:
    raw = {"study": "micro", "base": BASE, "budgets": [3e7], "min_steps": 2,
           "sizes": [{"depth": 1, "width": 16, "heads": 1}, {"depth": 1, "width": 32, "heads": 2}],
           "eval": {"max_samples": 8, "loss_timesteps": 2, "batch_size": 8}, "out": str(tmp_path / "sweep")}
    raw.update(extra)
    return raw


def store_snapshot(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_steps_and_compute_follow_the_training_budget(tmp_path):
    sweep = sweep_from_dict(micro(tmp_path, budgets=[3e7, 1e8]))
    runs = plan(sweep)
    assert [(r.budget, r.size["width"]) for r in runs] == [(3e7, 16), (3e7, 32), (1e8, 16), (1e8, 32)]
    for r in runs:
        model = build_model("in_context", sample_size=16, in_channels=3, text_dim=16, text_len=8, patch_size=4,
                            **r.size)  # a real (not meta) model: the plan's N is the trained model's N
        n = model.parameter_counts()["total"]
        assert r.N == n and r.tokens_per_sample == 16
        assert r.steps == steps_for_budget(r.budget, n, 16, 4)
        assert r.D == r.steps * 4 * 16 and r.C == pytest.approx(6 * n * r.D)
        assert abs(r.C - r.budget) <= 6 * n * 16 * 4 / 2  # within half a step of the nominal budget
        assert r.config.train.budget == r.budget and r.config.train.run_id == r.run_id
        assert r.config.train.output_dir.endswith(f"runs/{r.run_id}")
    assert len({r.run_id for r in runs}) == 4


def test_plan_flags_runs_below_min_steps(tmp_path):
    runs = plan(sweep_from_dict(micro(tmp_path, min_steps=10)))
    small, large = runs
    assert large.steps < 10 and "min_steps 10" in large.skip_reason
    assert (small.skip_reason is None) == (small.steps >= 10)


def test_depths_use_the_paper_presets(tmp_path):
    raw = micro(tmp_path, depths=[2, 3])
    del raw["sizes"]
    sweep = sweep_from_dict(raw)
    assert sweep.size_list == [{"depth": 2, "width": 128, "heads": 2}, {"depth": 3, "width": 192, "heads": 3}]


@pytest.mark.parametrize("change, key", [
    ({"budget": [1e7]}, "budget"),
    ({"budgets": [1e7, -1.0]}, "budgets[1]"),
    ({"budgets": []}, "budgets"),
    ({"sizes": [{"depth": 1, "widht": 16}]}, "sizes[0].widht"),
    ({"sizes": [{"depth": 0}]}, "sizes[0].depth"),
    ({"depths": [2]}, "depths"),
    ({"eval": {"samples": 3}}, "eval.samples"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"base": {**BASE, "train": {**BASE["train"], "steps": 5}}}, "base.train.steps"),
    ({"base": {**BASE, "model": {"depht": 2}}}, "model.depht"),
    ({"base": {**BASE, "train": {**BASE["train"], "lr": "fast"}}}, "train.lr"),
    ({"base_config": "nowhere.yaml"}, "nowhere.yaml"),
])
def test_bad_sweep_config_names_the_key(tmp_path, change, key):
    with pytest.raises(UserError, match=key.replace("[", r"\[").replace("]", r"\]")):
        sweep_from_dict(micro(tmp_path, **change))


def test_cli_exit_2_on_bad_config_and_dry_run_prints_the_plan(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**micro(tmp_path), "budgets": ["lots"]}))
    assert main(["--config", str(bad)]) == 2
    assert "budgets[0]" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(micro(tmp_path)))
    assert main(["--config", str(good), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "in_context-d1-w16-p4-C3e07-s0" in out and "2 of 2 runs to train" in out
    assert not (tmp_path / "sweep").exists()  # a dry run writes nothing


def test_base_config_file_and_out_override(tmp_path):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({**BASE, "train": {**BASE["train"], "budget": 1e9,
                                                                           "study": "other", "output_dir": "x"}}))
    raw = micro(tmp_path, base_config="run.yaml")
    del raw["base"]
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(raw))
    sweep = load_sweep(tmp_path / "sweep.yaml", out=str(tmp_path / "elsewhere"))
    runs = plan(sweep)
    assert all(r.config.train.study == "micro" and r.config.train.budget == 3e7 for r in runs)
    assert sweep.store_dir == tmp_path / "elsewhere" / "store"


def test_runner_stores_records_with_val_loss_and_is_idempotent(tmp_path, monkeypatch):
    sweep = sweep_from_dict(micro(tmp_path))
    lines = []
    records = run_sweep(sweep, log=lines.append)
    store = tmp_path / "sweep" / "store"
    files = sorted(p.name for p in (store / "runs" / "micro").glob("*.json"))
    assert files == sorted(f"{r.run_id}.json" for r in plan(sweep))
    for record in records:
        saved = json.loads((store / "runs" / "micro" / f"{record['run_id']}.json").read_text())
        assert saved["eval"]["val_loss"]["mean"] > 0 and saved["eval"]["val_loss"]["n_samples"] == 8
        assert saved["budget"] == 3e7 and saved["C"] == pytest.approx(6 * saved["N"] * saved["D"])
        assert (store / "models" / record["run_id"] / "config.json").is_file()
    assert lines[0].startswith("[1/2] ") and "val_loss" in lines[0]

    before = store_snapshot(store)

    def no_training(cfg):
        raise AssertionError("a run already in the store was trained again")

    monkeypatch.setattr("ditlaws.training.train", no_training)
    lines.clear()
    again = run_sweep(sweep, log=lines.append)
    assert [r["run_id"] for r in again] == [r["run_id"] for r in records]
    assert all("in store, skipped" in line for line in lines[:2])
    assert store_snapshot(store) == before

    changed = sweep_from_dict(micro(tmp_path, eval={"max_samples": 4, "loss_timesteps": 2}))
    with pytest.raises(UserError, match="different configuration"):
        run_sweep(changed, log=lines.append)


def test_interrupted_run_resumes_to_the_same_record(tmp_path, monkeypatch):
    one_size = {"sizes": [{"depth": 1, "width": 16, "heads": 1}], "keep_models": False}
    reference = run_sweep(sweep_from_dict(micro(tmp_path / "a", **one_size)), log=lambda _: None)[0]

    sweep = sweep_from_dict(micro(tmp_path / "b", **one_size, base={
        **BASE, "train": {**BASE["train"], "checkpoint_every": 2}}))
    monkeypatch.setenv("DITLAWS_STOP_AFTER_STEP", "2")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, log=lambda _: None)
    assert not list((tmp_path / "b").rglob("runs/micro/*.json"))  # nothing in the store yet
    monkeypatch.delenv("DITLAWS_STOP_AFTER_STEP")
    lines = []
    resumed = run_sweep(sweep, log=lines.append)[0]
    assert "resumed" in lines[0]
    assert resumed["final_loss"] == reference["final_loss"]
    assert resumed["eval"]["val_loss"] == reference["eval"]["val_loss"]


def test_runs_in_one_process_do_not_leak_state(tmp_path):
    """A run trained after another one in the same process equals the same run trained alone."""
    w16 = {"depth": 1, "width": 16, "heads": 1}
    alone = run_sweep(sweep_from_dict(micro(tmp_path / "a", sizes=[w16], keep_models=False)), log=lambda _: None)
    after = run_sweep(sweep_from_dict(micro(tmp_path / "b", sizes=[{"depth": 1, "width": 32, "heads": 2}, w16],
                                            keep_models=False)), log=lambda _: None)
    assert after[1]["run_id"] == alone[0]["run_id"]
    for key in ("final_loss", "loss_last10pct", "eval"):
        assert after[1][key] == alone[0][key]


def test_plan_of_the_paper_grid():
    """84 runs, N up to ~1.7e8, planned on the meta device; the steps are the training module's."""
    sweep = load_sweep(Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "paper_in_context.yaml")
    runs = plan(sweep)
    assert len(runs) == 6 * 14 and max(r.N for r in runs) > 1e8
    assert all(r.config.model.width == 64 * r.config.model.depth for r in runs)
    d2 = runs[0]
    model = build_model("in_context", sample_size=32, in_channels=3, text_dim=64, text_len=20, patch_size=2,
                        depth=2, width=128, heads=2)
    assert d2.N == model.parameter_counts()["total"] and d2.tokens_per_sample == 256
    assert d2.steps == steps_for_budget(1e17, d2.N, 256, 1024)


def test_both_families_have_the_paper_grid():
    root = Path(__file__).resolve().parents[1] / "configs" / "sweeps"
    plans = {name: plan(load_sweep(root / f"paper_{name}.yaml")) for name in ("in_context", "cross_attn")}
    for name, runs in plans.items():
        assert len(runs) == 84 and {r.config.model.family for r in runs} == {name}
        assert {r.config.train.study for r in runs} == {f"paper_{name}"}
    # the cross-attention blocks carry an extra attention layer: more parameters at the same depth
    assert all(c.N > i.N for c, i in zip(plans["cross_attn"], plans["in_context"]))


def test_generation_metrics_for_the_best_runs_of_each_budget(tmp_path, monkeypatch):
    import torch

    from ditlaws.evaluation.features import BuiltinFeatureNet

    monkeypatch.setenv("DITLAWS_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    weights = tmp_path / "features.safetensors"
    BuiltinFeatureNet(resolution=16, width=8, feature_dim=16).save(weights)
    generation = {"max_samples": 8, "loss_timesteps": 2, "batch_size": 8, "generation": True, "generation_runs": 2,
                  "metrics": ["fid", "samples"], "fid_samples": 8, "sample_steps": 2, "grid_samples": 4,
                  "fid_weights": str(weights)}
    sizes = [{"depth": 1, "width": w, "heads": 1} for w in (8, 16, 32)]
    lines = []
    records = run_sweep(sweep_from_dict(micro(tmp_path, sizes=sizes, eval=generation, keep_models=False)),
                        log=lines.append)
    with_fid = [r for r in records if "fid" in r["eval"]]
    best_two = sorted(records, key=lambda r: r["eval"]["val_loss"]["mean"])[:2]
    assert {r["run_id"] for r in with_fid} == {r["run_id"] for r in best_two}
    assert all(r["eval"]["fid"] > 0 and r["eval"]["generation"]["metrics"] == ["fid", "samples"] for r in with_fid)
    assert all((Path(r["sweep"]["output_dir"]) / "samples_val.png").is_file() for r in with_fid)
    stored = {r["run_id"]: r for r in json_records(tmp_path / "sweep" / "store")}
    assert {k for k, r in stored.items() if "fid" in r["eval"]} == {r["run_id"] for r in best_two}

    lines.clear()
    run_sweep(sweep_from_dict(micro(tmp_path, sizes=sizes, eval=generation, keep_models=False)), log=lines.append)
    assert sum("done, skipped" in line for line in lines) == 2


def json_records(store) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "runs").glob("*/*.json"))]
