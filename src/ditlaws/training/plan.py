"""A run config -> its plan: input geometry, the model's size, N, D, steps and FLOPs. The one place this is computed.

The sweep planner calls `plan_run` for every (budget, size, seed) on the meta device (no memory, no init time);
`train()` calls it too, or takes the sweep's plan, so what a sweep lists is what training does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ditlaws.errors import UserError
from ditlaws.training.budget import ComputePlan, plan_compute
from ditlaws.training.record import default_run_id


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    family: str
    model_kwargs: dict  # everything `build_model(family, **model_kwargs)` needs, geometry included
    compute: ComputePlan

    @property
    def geometry(self) -> dict:
        return {k: self.model_kwargs[k] for k in ("sample_size", "in_channels", "text_len", "text_dim")}

    def build_model(self):
        from ditlaws.models import build_model

        return build_model(self.family, **self.model_kwargs)


def data_geometry(data_cfg) -> dict:
    """The DiT's input geometry for a data config: read off the config for pixels + the built-in text encoder,
    else off the first encoded training sample (as training itself does)."""
    if data_cfg.image_encoder == "identity" and data_cfg.text_encoder == "builtin" and not data_cfg.cache_dir:
        return {"sample_size": data_cfg.resolution, "in_channels": 3, "text_len": data_cfg.text_len,
                "text_dim": data_cfg.text_dim}
    from ditlaws.training.data import open_train_data
    from ditlaws.training.layout import BatchLayout

    return open_train_data(data_cfg, BatchLayout(1, 1, 1, 0)).geometry


def model_kwargs(cfg, geometry: dict) -> dict:
    m = cfg.model
    kwargs = dict(sample_size=geometry["sample_size"], in_channels=geometry["in_channels"],
                  text_dim=geometry["text_dim"], text_len=geometry["text_len"], patch_size=m.patch_size,
                  depth=m.depth, width=m.width, heads=m.heads, mlp_ratio=m.mlp_ratio)
    if m.parametrization != "sp":  # an SP plan stays what it was
        kwargs.update(parametrization=m.parametrization, base_width=m.base_width, base_heads=m.base_heads)
    return kwargs


def plan_run(cfg, geometry: dict | None = None, *, check_warmup: bool = True) -> RunPlan:
    """The plan of one run config (its geometry from `geometry`, or from the data config)."""
    import torch

    from ditlaws.models import build_model

    t = cfg.train
    kwargs = model_kwargs(cfg, geometry if geometry is not None else data_geometry(cfg.data))
    with torch.device("meta"):  # counts and closed forms only
        model = build_model(cfg.model.family, **kwargs)
    compute = plan_compute(budget=t.budget, steps=t.steps, global_batch=t.global_batch,
                           counts=model.parameter_counts(), forward_flops=model.flops_per_sample(),
                           tokens=model.tokens_per_sample)
    if check_warmup and t.warmup_steps >= compute.steps:
        raise UserError(f"train.warmup_steps ({t.warmup_steps}) must be below the run's {compute.steps} steps")
    return RunPlan(run_id=t.run_id or default_run_id(cfg), family=cfg.model.family, model_kwargs=kwargs,
                   compute=compute)
