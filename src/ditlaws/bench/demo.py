"""Demo scale: the models of `configs/sweeps/demo.yaml` stepped bare, and trained by the real loop.

The bare loop is forward + backward + AdamW of the same model on one batch drawn once (no data, no per-step
random draws, no LR schedule, no clipping, no logging); the real loop is `ditlaws.training.train` on a short
run, timed by its own metrics (samples/s between log records, the first records left out as warm-up). Their
ratio is the training loop's own overhead.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import torch

from ditlaws.bench.architectures import Size
from ditlaws.bench.step import make_optimizer, train_step
from ditlaws.bench.timing import median_seconds
from ditlaws.flow import flow_loss


def demo_runs(sweep_path: str | Path, quick: bool) -> list:
    """One run config per size of the demo sweep (its first budget and seed); two sizes with `quick`."""
    from ditlaws.sweep.plan import load_sweep, run_config

    with tempfile.TemporaryDirectory() as out:
        sweep = load_sweep(sweep_path, out=out)
        sizes = sweep.size_list
        if quick:
            sizes = [sizes[0], sizes[-1]]
        return [run_config(sweep, sweep.budgets[0], size, sweep.seeds[0]) for size in sizes]


def geometry_size(cfg, plan) -> Size:
    k = plan.model_kwargs
    model = plan.build_model()
    return Size(width=model.dims.width, depth=model.dims.depth, heads=model.dims.heads, sample_size=k["sample_size"],
                in_channels=k["in_channels"], patch_size=k["patch_size"], text_len=k["text_len"],
                text_dim=k["text_dim"], batch=cfg.train.global_batch)


def real_batch(cfg) -> dict:
    """The first training batch of the run's data, with step 0's draws (what the loop would feed)."""
    from ditlaws.data.loader import make_dataloader
    from ditlaws.training.rng import draw_step

    t = cfg.train
    batch = next(iter(make_dataloader(cfg.data, "train", batch_size=t.global_batch)))
    draws = draw_step(t.seed, 0, t.global_batch, tuple(batch["latent"].shape[1:]), sampler=t.t_sampler, loc=t.t_loc,
                      scale=t.t_scale, caption_drop=t.caption_drop)
    return {**batch, **draws}


def _loss(model, batch):
    return flow_loss(model, batch["latent"], batch["text_states"], batch["text_mask"], batch["pooled"],
                     t=batch["t"], noise=batch["noise"], drop_text=batch["drop"]).mean()


def bare_loop(cfg, plan, repeats: int) -> dict:
    torch.manual_seed(cfg.train.seed)
    model = plan.build_model().train()
    step = train_step(model, _loss, real_batch(cfg), make_optimizer(model), cfg.train.mixed_precision)
    timing = median_seconds(step, repeats)
    return {**timing, "samples_per_s": cfg.train.global_batch / timing["median_s"]}


def training_loop(cfg, steps: int, log_every: int, skip_records: int) -> dict:
    """samples/s of `train()` itself: the median over its metrics records after the first `skip_records`."""
    from ditlaws.training import train

    with tempfile.TemporaryDirectory() as out:
        t = cfg.train
        t.budget, t.steps, t.output_dir, t.resume, t.overwrite = None, steps, out, None, True
        t.log_every, t.checkpoint_every = log_every, 0
        t.warmup_steps = min(t.warmup_steps, steps - 1)
        cfg.hub.org = None
        train(cfg)
        records = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records[skip_records:]]
    return {"steps": steps, "log_every": log_every, "records": len(rates), "samples_per_s": statistics.median(rates),
            "samples_per_s_all": rates}


def demo_scale(sweep_path, quick: bool, repeats: int) -> list[dict]:
    """Per demo size: the bare loop, the real loop and their ratio."""
    from ditlaws.training.plan import plan_run

    rows = []
    steps, log_every, skip = (30, 5, 2) if quick else (60, 5, 2)
    for cfg in demo_runs(sweep_path, quick):
        plan = plan_run(cfg)
        size = geometry_size(cfg, plan)
        bare = bare_loop(cfg, plan, repeats)
        loop = training_loop(cfg, steps, log_every, skip)
        rows.append({"model": f"ditlaws {cfg.model.family}", "size": size.label, "width": size.width,
                     "depth": size.depth, "image_tokens": size.image_tokens, "batch": size.batch,
                     "precision": cfg.train.mixed_precision, "params": plan.compute.N,
                     "bare_step_s": bare["median_s"], "bare_samples_per_s": bare["samples_per_s"],
                     "loop_samples_per_s": loop["samples_per_s"], "loop_rates": loop["samples_per_s_all"],
                     "loop_vs_bare": loop["samples_per_s"] / bare["samples_per_s"]})
    return rows
