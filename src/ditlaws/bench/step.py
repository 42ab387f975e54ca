"""One training step (forward, backward, fused AdamW) of a model: its counted FLOPs and its median time."""

from __future__ import annotations

import statistics
from contextlib import nullcontext

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ditlaws.bench.architectures import ARCHITECTURES, REFERENCE, Size, make_batch
from ditlaws.bench.timing import summary, timed_calls


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


# --sdpa: the attention kernel of the timed steps ("default": torch's choice per call; FLOPs are always counted under
# MATH, whose matmuls the counter sees).
SDPA_BACKENDS = {"default": None, "math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}


def prepare(name: str, size: Size, precision: str, padded_text: bool = False, device: str = "cpu",
            compile_blocks: bool = False, sdpa: str = "default") -> tuple[dict, object]:
    """Architecture `name` at `size`, built and ready: (its description with counted FLOPs, a closure running one
    timed step). `compile_blocks`: `torch.compile` each transformer block (regional compilation; GPU)."""
    build, loss_fn = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = build(size).to(device).train()
    batch = make_batch(size, padded_text=padded_text, device=device)
    flops = counted_flops(model, loss_fn, batch, precision, device)
    if compile_blocks:
        for block in blocks_of(model):
            block.compile()
    step = train_step(model, loss_fn, batch, make_optimizer(model), precision, device)
    backend = SDPA_BACKENDS[sdpa]

    def timed():
        with nullcontext() if backend is None else sdpa_kernel(backend):
            step()
        if device != "cpu":
            torch.cuda.synchronize()

    info = {"model": name + (" (compiled blocks)" if compile_blocks else ""), "size": size.label,
            "width": size.width, "depth": size.depth, "heads": size.heads, "image_tokens": size.image_tokens,
            "text_len": size.text_len, "batch": size.batch, "precision": precision, "sdpa": sdpa,
            "params": sum(p.numel() for p in model.parameters()), "flops_per_step": flops}
    return info, timed


def rates(info: dict, times: list[float], cpu_times: list[float] | None = None) -> dict:
    """The description plus the step times' summary and the rates at the median (and, `_best`, the fastest) step;
    with `cpu_times`, the median CPU seconds per step and FLOPs per CPU second too."""
    timing = summary(times)
    step_s = timing["median_s"]
    if cpu_times:
        cpu_s = statistics.median(cpu_times)
        timing.update(cpu_median_s=cpu_s, flops_per_cpu_s=info["flops_per_step"] / cpu_s)
    return {**info, **timing, "samples_per_s": info["batch"] / step_s,
            "tokens_per_s": info["batch"] * info["image_tokens"] / step_s,
            "flops_per_s": info["flops_per_step"] / step_s,
            "flops_per_s_best": info["flops_per_step"] / timing["min_s"]}


def measure(name: str, size: Size, precision: str, repeats: int, padded_text: bool = False, device: str = "cpu",
            compile_blocks: bool = False, warmup: int = 3, sdpa: str = "default") -> dict:
    """Counted FLOPs, median step time and the rates derived from them, for architecture `name` at `size`."""
    info, step = prepare(name, size, precision, padded_text, device, compile_blocks, sdpa)
    for _ in range(warmup):
        step()
    return rates(info, timed_calls(step, repeats))


def blocks_of(model) -> list:
    """The repeated transformer blocks (ours: `blocks`; diffusers: `transformer_blocks`)."""
    return list(getattr(model, "blocks", None) or model.transformer_blocks)


def compare(size: Size, precision: str, repeats: int, bf16_peak: float, names=None, padded_text=False,
            rounds: int = 1, sdpa: str = "default", warmup: int = 3) -> list[dict]:
    """Each architecture at one size, with % of the bf16 peak and the ratio to diffusers' DiT (at the median step;
    `_best`: at the fastest; `_cpu`: per CPU second of this process). Every model is built and warmed up first;
    then `rounds` rounds time `repeats` steps of each model in turn, so that a change of the machine's load during
    the run falls on all of them."""
    prepared = [prepare(name, size, precision, padded_text, sdpa=sdpa) for name in (names or ARCHITECTURES)]
    for _, step in prepared:
        for _ in range(warmup):
            step()
    times, cpu_times = [[] for _ in prepared], [[] for _ in prepared]
    for _ in range(rounds):
        for turn, cpu_turn, (_, step) in zip(times, cpu_times, prepared):
            turn += timed_calls(step, repeats, cpu_turn)
    rows = [rates(info, turn, cpu_turn) for (info, _), turn, cpu_turn in zip(prepared, times, cpu_times)]
    reference = next((r for r in rows if r["model"] == REFERENCE), None)
    for row in rows:
        row["pct_bf16_peak"] = 100.0 * row["flops_per_s"] / bf16_peak
        row["vs_diffusers_dit"] = row["flops_per_s"] / reference["flops_per_s"] if reference else None
        row["vs_diffusers_dit_best"] = (row["flops_per_s_best"] / reference["flops_per_s_best"] if reference
                                        else None)
        row["vs_diffusers_dit_cpu"] = (row["flops_per_cpu_s"] / reference["flops_per_cpu_s"] if reference
                                       else None)
    return rows
