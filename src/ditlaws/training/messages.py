"""What `train_dit.py` says at the end of a run: trained, already done, or interrupted (and what to do next)."""

from __future__ import annotations

from ditlaws.training import checkpoint as ckpt


class AlreadyFinished(dict):
    """The record of a run that was finished before this call (returned by `train`, which trained nothing)."""


def data_passes(summary: dict) -> str:
    """ ", 2.0 epochs of 1,600 rows (1,600 unique)" for a finite source; "" for the built-in (infinite) set."""
    passes = summary.get("data_passes")
    if not passes:
        return ""
    return (f"; {passes['epochs']:.2f} epochs of a {passes['source_rows']:,}-row source "
            f"({passes['unique_rows_seen']:,} unique rows seen)")


def finished(cfg, summary: dict) -> str:
    out = cfg.train.output_dir
    numbers = (f"final loss EMA {summary['final_loss_ema']:.4f}, C = {summary['C']:.3g} FLOPs (6ND), "
               f"N = {summary['N']:,}, D = {summary['D']:,} image tokens{data_passes(summary)}")
    if isinstance(summary, AlreadyFinished):
        return (f"already done: {out} holds this run, finished earlier ({summary['steps']} steps, {numbers}); "
                f"nothing was trained. To train it again pass --train.overwrite true or another "
                f"--train.output_dir")
    return (f"done: trained {summary['steps']} steps, {numbers}\n"
            f"outputs in {out}/: model/ (diffusers format), summary.json, metrics.jsonl, config.yaml, checkpoints/")


def interrupted(cfg, reason: str) -> str:
    reason = reason or "keyboard interrupt"
    found = ckpt.complete_checkpoints(cfg.train.output_dir)
    if not found:
        every = cfg.train.checkpoint_every
        when = f"every {every} steps" if every else "only at the end (train.checkpoint_every 0)"
        return (f"interrupted ({reason}) before the first checkpoint (written {when}): there is nothing to "
                f"resume; --train.resume latest starts the run again from step 0")
    step, folder = found[-1]
    return (f"interrupted ({reason}); the latest checkpoint is {folder} (step {step}): run the same command with "
            f"--train.resume latest to continue from it")
