"""The run record (`summary.json`): identity, model, compute (N, D, C), losses, time, code versions."""

from __future__ import annotations

from ditlaws.versions import git_commit, versions


def default_run_id(cfg) -> str:
    """`<family>-d<depth>[-w<width>][-mup<base_width>]-p<patch>-<budget or steps>-s<seed>`,
    e.g. `in_context-d4-p2-C1e15-s0`.

    The exponent's '+' is dropped: run ids are store file names and Hub paths (see ditlaws.store.check_name)."""
    m, t = cfg.model, cfg.train
    amount = f"C{t.budget:.3g}".replace("+", "") if t.budget is not None else f"steps{t.steps}"
    width = f"-w{m.width}" if m.width is not None else ""
    mup = f"-mup{m.base_width}" if getattr(m, "parametrization", "sp") == "mup" else ""
    return f"{m.family}-d{m.depth}{width}{mup}-p{m.patch_size}-{amount}-s{t.seed}"


def run_record(cfg, run_id: str, plan, model_config: dict, losses, wall_time_s: float) -> dict:
    return {
        "run_id": run_id,
        "study": cfg.train.study,
        "family": cfg.model.family,
        "model_config": model_config,
        **plan.record(),
        "final_loss": losses.last,
        "final_loss_ema": losses.ema,
        "loss_last10pct": losses.tail_mean,
        "wall_time_s": wall_time_s,
        "text_encoder": cfg.data.text_encoder,
        "image_encoder": cfg.data.image_encoder,
        "versions": versions(),
        "git_commit": git_commit(),
    }
