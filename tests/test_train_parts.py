"""Pure pieces of training: budget arithmetic, LR schedules, weight-decay groups, layout, checkpoints, metrics."""

import json
import math

import pytest
import torch

from ditlaws.errors import UserError
from ditlaws.models import build_model
from ditlaws.training import checkpoint as ckpt
from ditlaws.training.budget import plan_compute, steps_for_budget
from ditlaws.training.layout import BatchLayout
from ditlaws.training.metrics import LossTracker, MetricsWriter
from ditlaws.training.optim import build_optimizer, param_groups
from ditlaws.training.rng import draw_step, step_seed
from ditlaws.training.schedule import lr_at


def test_steps_for_budget_rounds_to_nearest_and_at_least_one():
    per_step = 6 * 1000 * 64 * 8  # 6 N tokens G
    assert steps_for_budget(10 * per_step, 1000, 64, 8) == 10
    assert steps_for_budget(10.4 * per_step, 1000, 64, 8) == 10
    assert steps_for_budget(10.6 * per_step, 1000, 64, 8) == 11
    assert steps_for_budget(0.01 * per_step, 1000, 64, 8) == 1


def test_plan_records_achieved_compute():
    plan = plan_compute(budget=1e9, steps=None, global_batch=8, counts={"total": 1000, "non_embedding": 600},
                        forward_flops=5000, tokens=64)
    assert plan.steps == round(1e9 / (6 * 1000 * 64 * 8))
    rec = plan.record()
    assert rec["D"] == plan.steps * 8 * 64
    assert rec["C"] == 6 * 1000 * rec["D"]
    assert rec["C_closed_form"] == 3 * 5000 * plan.steps * 8
    assert abs(rec["C"] / 1e9 - 1) < 0.5 / plan.steps + 1e-12  # rounding error at most half a step
    explicit = plan_compute(budget=None, steps=7, global_batch=8, counts={"total": 10, "non_embedding": 5},
                            forward_flops=1, tokens=4)
    assert explicit.steps == 7 and explicit.record()["budget"] is None


def test_constant_and_paper_step_decay():
    total, lr = 100, 1e-4
    assert all(lr_at(s, total, lr, "constant") == lr for s in range(total))
    lrs = [lr_at(s, total, lr, "step") for s in range(total)]
    assert lrs.count(lr) == 80
    assert sum(math.isclose(x, lr / math.sqrt(10)) for x in lrs) == 10
    assert sum(math.isclose(x, lr / 10) for x in lrs) == 10
    assert lrs == sorted(lrs, reverse=True)


def test_warmup_wsd_and_cosine():
    assert [lr_at(s, 100, 1.0, "constant", warmup_steps=4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    wsd = [lr_at(s, 100, 1.0, "wsd", cooldown_frac=0.2) for s in range(100)]
    assert wsd[:80] == [1.0] * 80 and wsd[80] == 1.0 and wsd[99] == pytest.approx(1 / 20)
    assert all(a > b for a, b in zip(wsd[80:], wsd[81:]))
    cos = [lr_at(s, 100, 1.0, "cosine", warmup_steps=10) for s in range(100)]
    assert cos[9] == 1.0 and cos[-1] < 0.01 and all(a >= b for a, b in zip(cos[9:], cos[10:]))


def test_weight_decay_skips_norms_biases_and_null_embeddings():
    model = build_model("cross_attn", sample_size=8, in_channels=3, patch_size=2, depth=2, width=32, heads=2,
                        text_dim=16, text_len=4)
    decay, no_decay = param_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert not any(n.endswith(".bias") or "norm" in n or "null" in n for n in decay["names"])
    assert any("null" in n for n in no_decay["names"]) and any(n.endswith(".bias") for n in no_decay["names"])
    assert any("to_qkv.weight" in n for n in decay["names"])
    n_params = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == n_params
    opt = build_optimizer(model, lr=1e-4, weight_decay=0.01, betas=(0.9, 0.95), eps=1e-15, fused=True)
    assert opt.defaults["eps"] == 1e-15 and opt.defaults["betas"] == (0.9, 0.95)


def test_layout_rows_cover_the_global_batch_once():
    seen = []
    for rank in range(2):
        lay = BatchLayout.resolve(24, 4, processes=2, rank=rank)
        assert lay.accumulation == 3
        seen += [i for m in range(3) for i in range(24)[lay.rows(m)]]
    assert sorted(seen) == list(range(24))
    assert BatchLayout.resolve(8, None, 2, 0).micro_batch == 4
    with pytest.raises(UserError, match="train.global_batch"):
        BatchLayout.resolve(8, 3, 1, 0)
    with pytest.raises(UserError, match="train.global_batch"):
        BatchLayout.resolve(9, None, 2, 0)


def test_step_draws_are_a_pure_function_of_seed_and_step():
    kw = dict(sampler="logit_normal", loc=0.0, scale=1.0, caption_drop=0.5)
    a, b = draw_step(0, 3, 8, (3, 4, 4), **kw), draw_step(0, 3, 8, (3, 4, 4), **kw)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["noise"], draw_step(0, 4, 8, (3, 4, 4), **kw)["noise"])
    assert len({step_seed(0, s) for s in range(1000)}) == 1000
    assert ((a["t"] > 0) & (a["t"] < 1)).all() and a["drop"].dtype == torch.bool


def test_loss_tracker_ema_and_tail_mean_survive_a_round_trip():
    tracker = LossTracker(0.9, total_steps=20)
    for s in range(10):
        tracker.update(s, float(s))
    clone = LossTracker(0.9, total_steps=20)
    clone.load_state_dict(json.loads(json.dumps(tracker.state_dict())))
    for s in range(10, 20):
        tracker.update(s, float(s))
        clone.update(s, float(s))
    assert clone.state_dict() == tracker.state_dict()
    assert tracker.tail_mean == (18 + 19) / 2
    ema = 0.0
    for s in range(1, 20):
        ema = 0.9 * ema + 0.1 * s
    assert tracker.ema == pytest.approx(ema)


def test_metrics_writer_drops_records_after_the_resumed_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    writer = MetricsWriter(path)
    for step in (1, 2, 3, 4):
        writer.write({"step": step, "loss": float("nan") if step == 4 else 1.0})
    MetricsWriter(path, resume_step=2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_checkpoints_latest_prune_and_unfinished(tmp_path):
    for step in (2, 4, 6):
        folder = ckpt.checkpoint_dir(tmp_path, step)
        folder.mkdir(parents=True)
        ckpt.write_state(folder, {"step": step})
    ckpt.checkpoint_dir(tmp_path, 5).mkdir()  # an interrupted save: no training_state.json
    ckpt.checkpoint_dir(tmp_path, 8).mkdir()
    assert ckpt.complete_checkpoints(tmp_path)[-1][1].name == "step_6"  # (fakes: resolve_resume verifies files)
    ckpt.prune(tmp_path, keep=2)
    left = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert left == ["step_4", "step_6", "step_8"]  # step_8 may still be being written
    assert ckpt.resolve_resume(None, tmp_path) is None
    assert ckpt.resolve_resume("latest", tmp_path / "empty") is None
    with pytest.raises(UserError, match="train.resume"):
        ckpt.resolve_resume(str(tmp_path / "checkpoints" / "step_8"), tmp_path)


@pytest.mark.parametrize("budget", [1.9e12, 1e17, 6e18, 1.5e21])
def test_default_run_ids_are_valid_store_names(budget):
    from ditlaws.config import load_config
    from ditlaws.store import check_name
    from ditlaws.training.record import default_run_id

    cfg = load_config(None, ["--train.budget", str(budget), "--model.width", "96"])
    run_id = default_run_id(cfg)
    assert check_name("run id", run_id) == run_id
    assert "+" not in run_id and f"C{budget:.3g}".replace("+", "") in run_id
