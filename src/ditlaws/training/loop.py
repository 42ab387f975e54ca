"""One training run under Accelerate: `train(cfg)` runs on every process (`accelerate launch` or plain `python`).

Everything random in step s comes from (seed, s) (rng.py), the data stream skips the batches already consumed and
the optimizer and model come back from the checkpoint, so a resumed run equals an uninterrupted one bit for bit
on CPU. The step never waits for the device: losses and gradient norms are read back at sync points (logging,
checkpoints, the end), and a non-finite update is skipped on the device and stops the run at the next sync point.
Fault injection for tests goes through `faults.py` only.
"""

from __future__ import annotations

import hashlib
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from ditlaws.config import RunConfig, identity, identity_diff, save_config
from ditlaws.cpu_allocator import keep_freed_memory
from ditlaws.errors import UserError
from ditlaws.flow import flow_loss
from ditlaws.jsonio import as_no_space, no_space, read_json, umask_modes, write_json_atomic
from ditlaws.training import checkpoint as ckpt
from ditlaws.training import run_dir
from ditlaws.training.data import open_train_data
from ditlaws.training.direct import direct_step
from ditlaws.training.faults import Faults, TrainingInterrupted
from ditlaws.training.layout import BatchLayout
from ditlaws.training.messages import AlreadyFinished
from ditlaws.training.metrics import LossTracker, MetricsWriter, PendingSteps
from ditlaws.training.optim import build_optimizer, restore_lr_scales, set_lr
from ditlaws.training.plan import RunPlan, plan_run
from ditlaws.training.record import run_record
from ditlaws.training.rng import draw_step
from ditlaws.training.schedule import lr_at
from ditlaws.training.signals import graceful_sigterm
from ditlaws.training.trackers import available_trackers

__all__ = ["NonFiniteLossError", "TrainingInterrupted", "parameter_hash", "train"]


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient norm) became NaN / inf; the run stops and keeps its last good checkpoint."""


@dataclass
class Run:
    """What the loop works with, set up by `start_run`."""

    cfg: RunConfig
    plan: RunPlan
    accelerator: Accelerator
    layout: BatchLayout
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    data: object
    losses: LossTracker
    metrics: MetricsWriter
    output: Path
    start_step: int
    wall_before: float
    faults: Faults
    publisher: object | None = None
    end: object | None = None  # the end-of-run call: end(summary, model_dir, publisher), main process
    lock: object | None = None  # the run folder's lock (main process), checked at checkpoints
    started: float = 0.0

    @property
    def total(self) -> int:
        return self.plan.compute.steps

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.started


def train(cfg: RunConfig, plan: RunPlan | None = None, lock=None, end=None, *, start_from: Path | None = None,
          stop_at: int | None = None, publisher=None) -> dict | None:
    """Run (or resume) one training run; returns the run record that is also written to summary.json.

    `plan` is the run's precomputed plan (`ditlaws.training.plan.plan_run`, as the sweep makes it and checked
    against the data's geometry here); without it the plan is made here from the data stream's geometry. The run
    folder is locked for the run (`ditlaws.locks`; a folder another process is training in is refused, naming it);
    a caller that holds the lock passes it in. What happens to a run after training is the caller's, injected
    (training never imports `ditlaws.publish`, which sits above it): `publisher(cfg, run_id, output)` makes the
    background publisher of its metrics while it trains (None: nothing leaves the machine), and at the end the
    main process calls `end(summary, model_dir, publisher)` (None: nothing but summary.json and the model).
    `ditlaws.publish.run_hooks(cfg)` gives both as train_dit.py uses them (record -> Hub when `hub.org` is set);
    a sweep job records the run itself and passes its own `end`.
    Trunks (`ditlaws.training.branch`): `start_from` is a checkpoint of another run (a trunk's branch point) to
    start from when this run has none of its own; `stop_at` ends the run after that step's checkpoint, unfinished
    (returns None, and `end` is not called)."""
    output = Path(cfg.train.output_dir)
    run_dir.check_folder(output)
    with run_dir.locked(output, lock) as held:
        state = run_dir.claim(cfg, output)
        if state.status == "finished":
            summary = read_json(state.summary_path)
            if held is not None and end is not None:  # what did not reach the Hub yet goes now (idempotent)
                end(summary, output / "model", None)
            return AlreadyFinished(summary)
        run = start_run(cfg, plan, output, start_from, publisher)
        run.lock, run.end = held, end
        with graceful_sigterm() as stop:
            return _steps(run, stop, stop_at)


def _steps(run: Run, stop, stop_at: int | None = None) -> dict | None:
    cfg = run.cfg
    t, acc = cfg.train, run.accelerator
    params = [p for p in run.model.parameters() if p.requires_grad]
    clip = t.grad_clip if t.grad_clip > 0 else math.inf
    defer_checks = getattr(run.optimizer.optimizer, "defaults", {}).get("fused", False)  # device-side skip
    optimizer, clip_gradients = direct_step(acc, run.optimizer)
    pending = PendingSteps()
    batches = run.data.batches(skip=run.start_step * run.layout.accumulation)
    last_step = run.total if stop_at is None else min(stop_at, run.total)
    bar = tqdm(total=last_step, initial=run.start_step, disable=not run.main, desc=run.plan.run_id,
               dynamic_ncols=True, mininterval=1.0)
    last_log = (time.perf_counter(), run.start_step)
    run.model.train()
    for step in range(run.start_step, last_step):
        lr = lr_at(step, run.total, t.lr, t.schedule, t.warmup_steps, t.cooldown_frac)
        set_lr(run.optimizer, lr)
        draws = draw_step(t.seed, step, t.global_batch, run.data.latent_shape, sampler=t.t_sampler, loc=t.t_loc,
                          scale=t.t_scale, caption_drop=t.caption_drop, device=acc.device)
        loss = accumulate_gradients(run, batches, draws, step)
        grad_norm = as_tensor(clip_gradients(params, clip))
        skip_if_non_finite(run.optimizer, loss, grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        pending.add(step, loss, grad_norm)
        done = step + 1
        bar.update(1)
        checkpoint_due = done == last_step or (t.checkpoint_every and done % t.checkpoint_every == 0)
        if not defer_checks or checkpoint_due or done % t.log_every == 0:
            last = sync_point(run, pending)
            if done % t.log_every == 0 or done == last_step:
                last_log = log_metrics(run, done, lr, last, last_log)
                bar.set_postfix(loss=f"{last[1]:.4f}", ema=f"{run.losses.ema:.4f}", lr=f"{lr:.2e}")
        stopping = done < run.total and stop.requested(acc if acc.num_processes > 1 else None)
        if checkpoint_due or stopping:
            if stopping and pending.steps:
                sync_point(run, pending)
            save_checkpoint(run, done)
        if stopping:
            bar.close()
            raise TrainingInterrupted(f"{stop.signal or 'SIGTERM'}: stopped after step {done} of {run.total}, "
                                      f"checkpoint saved in {ckpt.checkpoint_dir(run.output, done)}")
        run.faults.after_step(done)
    bar.close()
    return finish_run(run) if last_step == run.total else None


def accumulate_gradients(run: Run, batches, draws: dict, step: int) -> torch.Tensor:
    """Forward and backward over this step's micro-batches; returns the global mean loss (on the device)."""
    acc, layout = run.accelerator, run.layout
    step_loss = torch.zeros((), device=acc.device)
    for micro in range(layout.accumulation):
        batch = next(batches, None)
        if batch is None:
            raise UserError(f"data: the training stream ended at step {step + 1} of {run.total}; the source holds "
                            "fewer samples than the run needs (lower train.budget / train.steps)")
        rows = layout.rows(micro)
        with nullcontext() if micro == layout.accumulation - 1 else acc.no_sync(run.model):
            loss = flow_loss(run.model, *(batch[k].to(acc.device) for k in ("latent", "text_states", "text_mask",
                                                                              "pooled")),
                             t=draws["t"][rows], noise=draws["noise"][rows], drop_text=draws["drop"][rows]).mean()
            loss = run.faults.loss(loss, step + 1)
            acc.backward(loss / layout.accumulation)
        step_loss += loss.detach() / layout.accumulation
    return acc.reduce(step_loss, reduction="mean")


def as_tensor(grad_norm) -> torch.Tensor:
    if hasattr(grad_norm, "full_tensor"):  # FSDP2 returns a DTensor
        grad_norm = grad_norm.full_tensor()
    return torch.as_tensor(grad_norm, dtype=torch.float32)


def skip_if_non_finite(optimizer, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
    """Tell the fused AdamW kernel to skip this update on the device when the loss or gradient is not finite."""
    inner = getattr(optimizer, "optimizer", optimizer)
    if inner.defaults.get("fused"):
        bad = ~(torch.isfinite(loss) & torch.isfinite(grad_norm.to(loss.device)))
        inner.found_inf = bad.to(torch.float32)


def sync_point(run: Run, pending: PendingSteps) -> tuple[int, float, float]:
    """Read back the pending steps; stop at the first non-finite one; returns the newest (step, loss, grad_norm)."""
    rows = pending.flush()
    for step, loss, grad_norm in rows:
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise NonFiniteLossError(
                f"non-finite loss ({loss}) or gradient norm ({grad_norm}) at step {step + 1}; stopped without "
                f"applying it. Last good checkpoint: {latest_checkpoint_name(run.output)}")
        run.losses.update(step, loss)
    return rows[-1]


def log_metrics(run: Run, done: int, lr: float, last: tuple, last_log: tuple) -> tuple[float, int]:
    compute, t = run.plan.compute, run.cfg.train
    now = time.perf_counter()
    samples_per_s = (done - last_log[1]) * t.global_batch / max(now - last_log[0], 1e-9)
    flops, flops_closed = compute.flops_after(done)
    record = {"step": done, "samples": done * t.global_batch, "image_tokens": done * t.global_batch
              * compute.tokens_per_sample, "flops": flops, "flops_closed_form": flops_closed, "loss": last[1],
              "loss_ema": run.losses.ema, "lr": lr, "grad_norm": last[2], "samples_per_s": samples_per_s,
              "tokens_per_s": samples_per_s * compute.tokens_per_sample}
    if t.peak_flops > 0:
        flops_per_s = 3.0 * compute.forward_flops_per_sample * samples_per_s
        record["mfu"] = flops_per_s / (t.peak_flops * run.accelerator.num_processes)
    record["wall_time_s"] = run.wall_time()
    run.metrics.write(record)
    if run.accelerator.trackers:
        run.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=done)
    if run.publisher is not None:
        run.publisher.on_log(record)
    return now, done


def save_checkpoint(run: Run, step: int) -> None:
    """Every process writes its part; the main one writes training_state.json last (what marks it complete)."""
    acc = run.accelerator
    folder = ckpt.checkpoint_dir(run.output, step)
    if run.lock is not None and run.lock.lost:
        raise UserError(f"{run.output}: another process took over this run folder's lock (this one stalled past "
                        "the lock's stale time); stopped before writing a checkpoint")
    if run.main:
        ckpt.begin_save(folder)
    acc.wait_for_everyone()
    try:
        try:
            acc.save_state(str(folder))
        except RuntimeError as err:  # torch.save reports a full disk as a RuntimeError from its zip writer
            raise as_no_space(err, folder) from err
        acc.wait_for_everyone()
        run.faults.during_save("kill_save", step)
        if run.main:
            umask_modes(folder)
            run.metrics.snapshot(folder, step)
            ckpt.write_state(folder, {"step": step, "losses": run.losses.state_dict(),
                                      "wall_time_s": run.wall_time(), "fingerprint": fingerprint(run.cfg, run.plan)})
    except OSError as err:
        if run.main and no_space(err):  # a half-written checkpoint is never resumed from; give its space back
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        raise
    if run.main:
        ckpt.prune(run.output, run.cfg.train.keep_checkpoints)
    acc.wait_for_everyone()


def finish_run(run: Run) -> dict:
    acc = run.accelerator
    summary = run_record(run.cfg, run.plan.run_id, run.plan.compute, model_config(run.model, acc), run.losses,
                         run.wall_time())
    summary["processes"] = acc.num_processes
    rows = run.data.source_rows()
    if rows:  # a finite source (a prepared cache): how often each row was seen, which matters for D-scaling
        samples = run.plan.compute.steps * run.cfg.train.global_batch
        summary["data_passes"] = {"source_rows": rows, "samples_seen": samples, "epochs": samples / rows,
                                  "unique_rows_seen": min(rows, samples)}
    summary["replica_param_sha256"] = gather_object([parameter_hash(acc.unwrap_model(run.model))])
    save_model(run, run.output / "model")
    if run.main:
        write_json_atomic(run.output / "summary.json", summary)
        if run.end is not None:
            run.end(summary, run.output / "model", run.publisher)
    acc.wait_for_everyone()
    acc.end_training()
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Setting a run up


def start_run(cfg: RunConfig, plan: RunPlan | None, output: Path, start_from: Path | None = None,
              publisher=None) -> Run:
    """Accelerator, batch layout, data, model, optimizer, resume state and outputs of one run, checked up front."""
    t = cfg.train
    accelerator = make_accelerator(cfg)
    accelerator.wait_for_everyone()  # every process has checked the run folder before any of them writes to it
    layout = BatchLayout.resolve(t.global_batch, t.micro_batch, accelerator.num_processes, accelerator.process_index)
    resume_dir = ckpt.resolve_resume(t.resume, output, warn=print_main(accelerator))
    faults = Faults.from_env()
    data = open_train_data(cfg.data, layout, device=accelerator.device)
    if plan is None:
        plan = plan_run(cfg, data.geometry)
    elif plan.geometry != data.geometry:
        raise UserError(f"the run's plan was made for input geometry {plan.geometry}, but the data gives "
                        f"{data.geometry}")
    torch.manual_seed(t.seed)
    model = plan.build_model()
    if cfg.model.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = build_optimizer(model, lr=t.lr, weight_decay=t.weight_decay, betas=t.betas, eps=t.eps,
                                fused=t.fused_adamw)
    model, optimizer = accelerator.prepare(model, optimizer)
    losses = LossTracker(t.loss_ema, plan.compute.steps)
    start_step, wall_before = 0, 0.0
    if resume_dir is not None:
        state = ckpt.read_state(resume_dir)
        check_resumable(resume_dir, state, cfg, plan)
        accelerator.load_state(str(resume_dir))
        restore_lr_scales(optimizer, accelerator.unwrap_model(model), t.weight_decay)
        losses.load_state_dict(state["losses"])
        start_step, wall_before = state["step"], state["wall_time_s"]
    elif start_from is not None:  # a branch's first start: its trunk's state at the branch point
        from ditlaws.training.branch import load_branch_point

        start_step = load_branch_point(accelerator, losses, Path(start_from), output)
        restore_lr_scales(optimizer, accelerator.unwrap_model(model), t.weight_decay)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        save_config(cfg, output / "config.yaml")
    metrics = MetricsWriter(output / "metrics.jsonl", resume_step=start_step if resume_dir or start_from else None,
                            enabled=accelerator.is_main_process, checkpoint=resume_dir)
    if accelerator.trackers:
        accelerator.init_trackers(t.study, config=_flat(cfg.to_dict()))
    publisher = publisher(cfg, plan.run_id, output) if publisher is not None and accelerator.is_main_process else None
    rows = data.source_rows()
    if rows and plan.compute.steps * t.global_batch > rows:
        print_main(accelerator)(f"data: {plan.compute.steps * t.global_batch:,} samples from a {rows:,}-row source "
                                f"({data.data_cfg.cache_dir}): each row is seen "
                                f"~{plan.compute.steps * t.global_batch / rows:.1f} times")
    run = Run(cfg=cfg, plan=plan, accelerator=accelerator, layout=layout, model=model, optimizer=optimizer,
              data=data, losses=losses, metrics=metrics, output=output, start_step=start_step,
              wall_before=wall_before, faults=faults, publisher=publisher)
    run.started = time.perf_counter()
    return run


def print_main(accelerator: Accelerator):
    """A one-line printer (stderr) that only the main process uses."""
    import sys

    return lambda line: print(line, file=sys.stderr) if accelerator.is_main_process else None


def make_accelerator(cfg: RunConfig) -> Accelerator:
    t = cfg.train
    cpu = t.cpu or not torch.cuda.is_available()
    if cpu and t.mixed_precision == "fp16":
        raise UserError("train.mixed_precision: fp16 needs a GPU; use bf16 or no on CPU")
    log_with = available_trackers(t.trackers)
    if cpu:
        keep_freed_memory()
    # A process may train several runs (tests, an in-process sweep): keep the distributed setup (PartialState)
    # but let each run choose its own mixed precision.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=t.mixed_precision, log_with=log_with or None,
                       project_dir=t.output_dir)


def fingerprint(cfg: RunConfig, plan: RunPlan) -> dict:
    """What a checkpoint must match to be resumed: the run's identity (everything that changes its numbers)."""
    return {"run_id": plan.run_id, "steps": plan.compute.steps, "identity": identity(cfg)}


def check_resumable(folder: Path, state: dict, cfg: RunConfig, plan: RunPlan) -> None:
    ours, theirs = fingerprint(cfg, plan), state.get("fingerprint") or {}
    if "identity" not in theirs:
        raise UserError(f"train.resume: {folder} was written by an older ditlaws without a full config "
                        "fingerprint; start the run again (--train.overwrite true)")
    keys = identity_diff(theirs["identity"], ours["identity"])
    keys += [k for k in ("run_id", "steps") if theirs.get(k) != ours[k] and f"train.{k}" not in keys]
    if keys:
        raise UserError(f"train.resume: {folder} belongs to a different run configuration ({', '.join(keys)} "
                        "differ)")


# ---------------------------------------------------------------------------------------------------------------
# Model files


def model_config(model, accelerator: Accelerator) -> dict:
    config = accelerator.unwrap_model(model).config
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def parameter_hash(model) -> str:
    """sha256 over every parameter's bytes in name order: equal on all processes iff the replicas are identical."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(run: Run, folder: Path) -> None:
    """The trained DiT in diffusers format, written to a temporary folder and renamed (a crash leaves no half
    model); under FSDP the full weights are gathered first (on every rank)."""
    import shutil

    acc = run.accelerator
    state = acc.get_state_dict(run.model)
    if not acc.is_main_process:
        return
    unwrapped = acc.unwrap_model(run.model)
    if acc.distributed_type.value == "FSDP":
        copy = type(unwrapped).from_config(unwrapped.config)
        copy.load_state_dict(state)
        unwrapped = copy
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        unwrapped.save_pretrained(tmp, safe_serialization=True)
    except Exception as err:  # e.g. a full disk: the half-written copy goes, the checkpoints stay
        shutil.rmtree(tmp, ignore_errors=True)
        raise as_no_space(err, folder) from err
    umask_modes(tmp)
    run.faults.during_save("kill_model", run.total)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def latest_checkpoint_name(output: Path) -> str:
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
