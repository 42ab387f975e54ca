"""One training run under Accelerate: budget -> steps, AdamW, LR schedule, caption drop, clip, EMA, checkpoints.

`train(cfg)` runs on every process (`accelerate launch` or plain `python`) and returns the run record.
Everything random in step s comes from (seed, s) (see rng.py), the data loader skips the batches already
consumed, and the optimizer and model come back from the checkpoint, so a resumed run equals an
uninterrupted one bit for bit on CPU.

Test hooks (environment variables, for tests and fault drills only):
  DITLAWS_INJECT_NAN_AT_STEP=k   the loss of update k (1-based) becomes NaN -> the run stops with exit code 3
  DITLAWS_STOP_AFTER_STEP=k      raise TrainingInterrupted after update k (and its checkpoint, if one is due)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from ditlaws.config import RunConfig, save_config
from ditlaws.errors import UserError
from ditlaws.flow import flow_loss
from ditlaws.jsonio import write_json_atomic
from ditlaws.models import build_model
from ditlaws.training import checkpoint as ckpt
from ditlaws.training.budget import plan_compute
from ditlaws.training.data import open_train_data
from ditlaws.training.layout import BatchLayout
from ditlaws.training.metrics import LossTracker, MetricsWriter
from ditlaws.training.optim import build_optimizer
from ditlaws.training.record import default_run_id, run_record
from ditlaws.training.rng import draw_step
from ditlaws.training.schedule import lr_at
from ditlaws.training.trackers import available_trackers


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient norm) became NaN / inf; the run stops and keeps its last good checkpoint."""


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by the DITLAWS_STOP_AFTER_STEP test hook, as if the run had been killed."""


def _env_step(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def make_accelerator(cfg: RunConfig) -> Accelerator:
    t = cfg.train
    cpu = t.cpu or not torch.cuda.is_available()
    if cpu and t.mixed_precision == "fp16":
        raise UserError("train.mixed_precision: fp16 needs a GPU; use bf16 or no on CPU")
    log_with = available_trackers(t.trackers)
    # A process may train several runs (tests, an in-process sweep): keep the distributed setup (PartialState)
    # but let each run choose its own mixed precision.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=t.mixed_precision, log_with=log_with or None,
                       project_dir=t.output_dir)


def _model_kwargs(cfg: RunConfig, geometry: dict) -> dict:
    m = cfg.model
    return dict(sample_size=geometry["sample_size"], in_channels=geometry["in_channels"],
                text_dim=geometry["text_dim"], text_len=geometry["text_len"], patch_size=m.patch_size,
                depth=m.depth, width=m.width, heads=m.heads, mlp_ratio=m.mlp_ratio)


def train(cfg: RunConfig) -> dict:
    """Run (or resume) one training run; returns the run record that is also written to summary.json."""
    t = cfg.train
    output = Path(t.output_dir)
    accelerator = make_accelerator(cfg)
    main = accelerator.is_main_process
    layout = BatchLayout.resolve(t.global_batch, t.micro_batch, accelerator.num_processes, accelerator.process_index)
    resume_dir = ckpt.resolve_resume(t.resume, output)
    inject_nan_at, stop_after = _env_step("DITLAWS_INJECT_NAN_AT_STEP"), _env_step("DITLAWS_STOP_AFTER_STEP")

    data = open_train_data(cfg.data, layout, device=accelerator.device)
    torch.manual_seed(t.seed)
    model = build_model(cfg.model.family, **_model_kwargs(cfg, data.geometry))
    if cfg.model.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model_config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    plan = plan_compute(budget=t.budget, steps=t.steps, global_batch=t.global_batch, counts=model.parameter_counts(),
                        forward_flops=model.flops_per_sample(), tokens=model.tokens_per_sample)
    total = plan.steps
    if t.warmup_steps >= total:
        raise UserError(f"train.warmup_steps ({t.warmup_steps}) must be below the run's {total} steps")
    run_id = t.run_id or default_run_id(cfg)
    fingerprint = {"run_id": run_id, "steps": total, "global_batch": t.global_batch, "seed": t.seed,
                   "model_config": model_config}

    optimizer = build_optimizer(model, lr=t.lr, weight_decay=t.weight_decay, betas=t.betas, eps=t.eps,
                                fused=t.fused_adamw)
    model, optimizer = accelerator.prepare(model, optimizer)
    losses = LossTracker(t.loss_ema, total)
    start_step, wall_before = 0, 0.0
    if resume_dir is not None:
        state = ckpt.read_state(resume_dir)
        mismatched = [k for k, v in fingerprint.items() if json.loads(json.dumps(v)) != state["fingerprint"].get(k)]
        if mismatched:
            raise UserError(f"train.resume: {resume_dir} belongs to a different run ({', '.join(mismatched)} differ)")
        accelerator.load_state(str(resume_dir))
        losses.load_state_dict(state["losses"])
        start_step, wall_before = state["step"], state["wall_time_s"]

    if main:
        output.mkdir(parents=True, exist_ok=True)
        save_config(cfg, output / "config.yaml")
    metrics = MetricsWriter(output / "metrics.jsonl", resume_step=start_step if resume_dir else None, enabled=main)
    if accelerator.trackers:
        accelerator.init_trackers(t.study, config=_flat(cfg.to_dict()))

    batches = data.batches(skip=start_step * layout.accumulation)
    latent_shape = data.latent_shape
    device = accelerator.device
    params = [p for p in model.parameters() if p.requires_grad]
    clip = t.grad_clip if t.grad_clip > 0 else math.inf
    train_flops_per_step = 3.0 * plan.forward_flops_per_sample * t.global_batch

    def save_checkpoint(step: int) -> None:
        folder = ckpt.checkpoint_dir(output, step)
        accelerator.save_state(str(folder))
        accelerator.wait_for_everyone()
        if main:
            ckpt.write_state(folder, {"step": step, "losses": losses.state_dict(), "wall_time_s": wall_before + (
                time.perf_counter() - started), "fingerprint": json.loads(json.dumps(fingerprint))})
            ckpt.prune(output, t.keep_checkpoints)
        accelerator.wait_for_everyone()

    started = time.perf_counter()
    last_log_time, last_log_step = started, start_step
    bar = tqdm(total=total, initial=start_step, disable=not main, desc=run_id, dynamic_ncols=True, mininterval=1.0)
    model.train()
    for step in range(start_step, total):
        lr = lr_at(step, total, t.lr, t.schedule, t.warmup_steps, t.cooldown_frac)
        for group in optimizer.param_groups:
            group["lr"] = lr
        draws = draw_step(t.seed, step, t.global_batch, latent_shape, sampler=t.t_sampler, loc=t.t_loc,
                          scale=t.t_scale, caption_drop=t.caption_drop, device=device)
        step_loss = torch.zeros((), device=device)
        for micro in range(layout.accumulation):
            batch = next(batches, None)
            if batch is None:
                raise UserError(f"data: the training stream ended at step {step + 1} of {total}; the source holds "
                                "fewer samples than the run needs (lower train.budget / train.steps)")
            rows = layout.rows(micro)
            last_micro = micro == layout.accumulation - 1
            with nullcontext() if last_micro else accelerator.no_sync(model):
                loss = flow_loss(model, batch["latent"].to(device), batch["text_states"].to(device),
                                 batch["text_mask"].to(device), batch["pooled"].to(device), t=draws["t"][rows],
                                 noise=draws["noise"][rows], drop_text=draws["drop"][rows]).mean()
                if inject_nan_at == step + 1:
                    loss = loss + float("nan")
                accelerator.backward(loss / layout.accumulation)
            step_loss += loss.detach() / layout.accumulation
        global_loss = accelerator.reduce(step_loss, reduction="mean").item()
        grad_norm = float(accelerator.clip_grad_norm_(params, clip))
        if not (math.isfinite(global_loss) and math.isfinite(grad_norm)):
            raise NonFiniteLossError(
                f"non-finite loss ({global_loss}) or gradient norm ({grad_norm}) at step {step + 1}; stopped without "
                f"applying it. Last good checkpoint: {_latest_name(output)}")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.update(step, global_loss)
        done = step + 1
        bar.update(1)

        if done % t.log_every == 0 or done == total:
            now = time.perf_counter()
            samples_per_s = (done - last_log_step) * t.global_batch / max(now - last_log_time, 1e-9)
            flops, flops_closed = plan.flops_after(done)
            record = {"step": done, "samples": done * t.global_batch, "image_tokens": done * t.global_batch
                      * plan.tokens_per_sample, "flops": flops, "flops_closed_form": flops_closed,
                      "loss": global_loss, "loss_ema": losses.ema, "lr": lr, "grad_norm": grad_norm,
                      "samples_per_s": samples_per_s, "tokens_per_s": samples_per_s * plan.tokens_per_sample}
            if t.peak_flops > 0:
                flops_per_s = train_flops_per_step * samples_per_s / t.global_batch
                record["mfu"] = flops_per_s / (t.peak_flops * accelerator.num_processes)
            record["wall_time_s"] = wall_before + now - started
            metrics.write(record)
            if accelerator.trackers:
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=done)
            bar.set_postfix(loss=f"{global_loss:.4f}", ema=f"{losses.ema:.4f}", lr=f"{lr:.2e}")
            last_log_time, last_log_step = now, done

        if done == total or (t.checkpoint_every and done % t.checkpoint_every == 0):
            save_checkpoint(done)
        if stop_after == done:
            bar.close()
            raise TrainingInterrupted(f"stopped after step {done} (DITLAWS_STOP_AFTER_STEP)")
    bar.close()

    wall = wall_before + time.perf_counter() - started
    summary = run_record(cfg, run_id, plan, model_config, losses, wall)
    summary["processes"] = accelerator.num_processes
    summary["replica_param_sha256"] = gather_object([parameter_hash(accelerator.unwrap_model(model))])
    _save_model(accelerator, model, output / "model")
    if main:
        write_json_atomic(output / "summary.json", summary)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def parameter_hash(model) -> str:
    """sha256 over every parameter's bytes in name order: equal on all processes iff the replicas are identical."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _save_model(accelerator: Accelerator, model, folder: Path) -> None:
    """The trained DiT in diffusers format; under FSDP the full weights are gathered first (on every rank)."""
    state = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.distributed_type.value == "FSDP":
        copy = type(unwrapped).from_config(unwrapped.config)
        copy.load_state_dict(state)
        unwrapped = copy
    unwrapped.save_pretrained(folder, safe_serialization=True)


def _latest_name(output: Path) -> str:
    found = ckpt.complete_checkpoints(output)
    return str(found[-1][1]) if found else "none (no checkpoint was saved yet)"


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out
