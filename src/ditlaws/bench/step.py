"""One training step (forward, backward, fused AdamW) of a model: its counted FLOPs and its median time."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ditlaws.bench.architectures import ARCHITECTURES, REFERENCE, Size, make_batch
from ditlaws.bench.timing import median_seconds


def autocast_for(precision: str, device: str = "cpu"):
    """The autocast context of a precision ("bf16" or "no"/"fp32"), as the training loop would enter it."""
    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return nullcontext()


def make_optimizer(model) -> torch.optim.Optimizer:
    """Fused AdamW with the paper's settings; ours get the training loop's own parameter groups."""
    if hasattr(model, "parameter_counts"):
        from ditlaws.training.optim import build_optimizer

        return build_optimizer(model, lr=1e-4, weight_decay=0.01, betas=(0.9, 0.95), eps=1e-15, fused=True)
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, betas=(0.9, 0.95), eps=1e-15,
                             fused=True)


def train_step(model, loss_fn, batch: dict, optimizer, precision: str, device: str = "cpu"):
    """A closure running one plain step: the reference every faster loop is compared with."""

    def step():
        with autocast_for(precision, device):
            loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


def counted_flops(model, loss_fn, batch: dict, precision: str, device: str = "cpu") -> int:
    """FLOPs of forward + backward as `FlopCounterMode` counts them; under the MATH SDPA backend, because the
    counter sees no FLOPs in the fused CPU attention kernels."""
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter, autocast_for(precision, device):
        loss = loss_fn(model, batch)
    with sdpa_kernel(SDPBackend.MATH), counter:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def measure(name: str, size: Size, precision: str, repeats: int, padded_text: bool = False, device: str = "cpu",
            compile_blocks: bool = False, warmup: int = 3) -> dict:
    """Counted FLOPs, median step time and the rates derived from them, for architecture `name` at `size`.
    `compile_blocks`: `torch.compile` each transformer block (regional compilation; GPU)."""
    build, loss_fn = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = build(size).to(device).train()
    batch = make_batch(size, padded_text=padded_text, device=device)
    flops = counted_flops(model, loss_fn, batch, precision, device)
    if compile_blocks:
        for block in blocks_of(model):
            block.compile()
    optimizer = make_optimizer(model)
    step = train_step(model, loss_fn, batch, optimizer, precision, device)
    synced = step if device == "cpu" else (lambda: (step(), torch.cuda.synchronize()))
    timing = median_seconds(synced, repeats, warmup=warmup)
    step_s = timing["median_s"]
    return {
        "model": name + (" (compiled blocks)" if compile_blocks else ""), "size": size.label, "width": size.width,
        "depth": size.depth, "heads": size.heads, "image_tokens": size.image_tokens, "text_len": size.text_len,
        "batch": size.batch, "precision": precision, "params": sum(p.numel() for p in model.parameters()),
        "flops_per_step": flops, **timing, "samples_per_s": size.batch / step_s,
        "tokens_per_s": size.batch * size.image_tokens / step_s, "flops_per_s": flops / step_s,
    }


def blocks_of(model) -> list:
    """The repeated transformer blocks (ours: `blocks`; diffusers: `transformer_blocks`)."""
    return list(getattr(model, "blocks", None) or model.transformer_blocks)


def compare(size: Size, precision: str, repeats: int, bf16_peak: float, names=None, padded_text=False) -> list[dict]:
    """`measure` for each architecture at one size, with % of the bf16 peak and the ratio to diffusers' DiT."""
    rows = [measure(name, size, precision, repeats, padded_text) for name in (names or ARCHITECTURES)]
    reference = next((r for r in rows if r["model"] == REFERENCE), None)
    for row in rows:
        row["pct_bf16_peak"] = 100.0 * row["flops_per_s"] / bf16_peak
        row["vs_diffusers_dit"] = row["flops_per_s"] / reference["flops_per_s"] if reference else None
    return rows
