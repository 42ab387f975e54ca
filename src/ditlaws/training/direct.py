"""The optimizer step and gradient clipping without Accelerate's per-call wrappers, where those wrappers add
nothing but time.

With one process or DDP (gradients already all-reduced), no gradient scaler (not fp16) and no gradient
accumulation context, `AcceleratedOptimizer.step` / `.zero_grad` call the wrapped optimizer's, and
`Accelerator.clip_grad_norm_` computes the total norm as below; but each call also looks installed packages up
(lomo), inspects signatures and walks the parameters for DTensors, which costs ~2-4 ms a step on CPU (a tenth of a
demo-scale step). The arithmetic is Accelerate's own, so the numbers are bit-identical; any other setup (FSDP,
DeepSpeed, XLA, fp16) keeps Accelerate's methods.
"""

from __future__ import annotations

import torch
from accelerate.utils import DistributedType
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

PLAIN = (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU)


def clip_plain(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """The total 2-norm of the gradients, clipped to `max_norm` in place: `Accelerator.clip_grad_norm_`'s
    computation for non-sharded parameters (the norm of the one-element stack of norms included)."""
    if not torch.distributed.is_available():  # what Accelerate does then
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    with_grad = [p for p in parameters if p.grad is not None]
    norm = get_total_norm([p.grad for p in with_grad], 2.0, foreach=None)
    total = torch.linalg.vector_norm(torch.stack([norm]), 2.0)
    if max_norm != float("inf"):
        clip_grads_with_norm_(with_grad, max_norm, total, None)
    return total


def direct_step(accelerator, optimizer):
    """(optimizer to step and zero, clip function(params, max_norm) -> total norm) for this accelerator."""
    plain = accelerator.distributed_type in PLAIN and accelerator.scaler is None
    if not plain:
        return optimizer, accelerator.clip_grad_norm_
    return getattr(optimizer, "optimizer", optimizer), clip_plain
