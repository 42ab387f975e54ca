"""AdamW with the paper's settings, weight decay only where it belongs, and the parametrization's learning rates.

No decay on biases and norm scales (every parameter with fewer than 2 dimensions), on nn.Embedding tables,
or on learned null / positional embeddings (parameter names containing "null" or "pos"): decaying those
pulls them towards zero, which has no regularising meaning.

Each group carries `lr_scale`, the multiplier of the scheduled learning rate (`set_lr`): 1.0 for every parameter of
an SP model (two groups, as always), base_width/width for a μP model's matrices (`model.lr_scales()`, from
`ditlaws.models.parametrization`); a μP group's weight decay is divided by its scale, so lr·wd stays the base's.
The scales are a function of the model's config: `restore_lr_scales` puts them back after a checkpoint's optimizer
state is loaded, so a resumed run uses the config's rules, never numbers read from the checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

NO_DECAY_NAME_PARTS = ("null", "pos_embed", "position")


def decays(name: str, param: nn.Parameter, embedding_params: set[int]) -> bool:
    if param.ndim < 2 or id(param) in embedding_params:
        return False
    leaf = name.lower()
    return not any(part in leaf for part in NO_DECAY_NAME_PARTS)


def _lr_scales(model: nn.Module) -> dict[str, float]:
    scales = getattr(model, "lr_scales", None)
    return scales() if callable(scales) else {}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups {"params", "weight_decay", "lr_scale", "names"}: decayed matrices, then everything else (the two
    groups of an SP model, in this order even when one is empty), then one group per other (decay, lr_scale) pair of
    a μP model, in order of first appearance."""
    embedding_params = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    scales = _lr_scales(model)

    def group(decay: bool, scale: float) -> dict:
        return {"params": [], "names": [], "lr_scale": scale, "weight_decay": weight_decay / scale if decay else 0.0}

    groups = {(True, 1.0): group(True, 1.0), (False, 1.0): group(False, 1.0)}
    for name, param in model.named_parameters():
        if param.requires_grad:
            key = (decays(name, param, embedding_params), scales.get(name, 1.0))
            chosen = groups.setdefault(key, group(*key))
            chosen["params"].append(param)
            chosen["names"].append(name)
    return list(groups.values())


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float, betas, eps: float, fused: bool):
    """torch AdamW; `fused` uses the single-kernel implementation (CPU and CUDA), about 3.5x faster on CPU here."""
    groups = param_groups(model, weight_decay)
    for group in groups:
        group.pop("names")
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, fused=fused)


def set_lr(optimizer, lr: float) -> None:
    """The scheduled learning rate `lr` times each group's `lr_scale`."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def restore_lr_scales(optimizer, model: nn.Module, weight_decay: float) -> None:
    """After loading a checkpoint's optimizer state: each group's `lr_scale` and weight decay from the config."""
    fresh = param_groups(model, weight_decay)
    if len(fresh) != len(optimizer.param_groups):
        raise ValueError(f"the optimizer has {len(optimizer.param_groups)} groups, the config gives {len(fresh)}")
    for group, ours in zip(optimizer.param_groups, fresh):
        group["lr_scale"] = ours["lr_scale"]
        group["weight_decay"] = ours["weight_decay"]
