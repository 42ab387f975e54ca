"""Faster CPU paths for bf16/fp16 activations: RMSNorm with a closed-form backward, attention computed in fp32.

Both exist because of what torch 2.14's CPU kernels do with reduced precision (measured on a 2-core AMD EPYC,
2026-12-07, docs/performance.md "The fix"): `F.rms_norm` has a fused forward but an autograd backward of ~10
full-size elementwise ops with casts around them, and the flash-attention-for-CPU kernel is ~2x slower in bf16 than
in fp32 (its backward). fp32 activations and other devices never take these paths, so fp32 steps keep their numbers
bit for bit; bf16 ones get fp32 statistics and fp32 attention, i.e. more precision, not less.
"""

import torch
import torch.nn.functional as F

REDUCED = (torch.bfloat16, torch.float16)


def takes_cpu_path(x: torch.Tensor) -> bool:
    """Reduced-precision CPU activations, or fp32 ones under CPU autocast (the residual stream of a bf16 step)."""
    return x.device.type == "cpu" and (x.dtype in REDUCED or torch.is_autocast_enabled("cpu"))


def linear_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a Linear computes `x` in: autocast's, when it is on (producing it directly spares the cast)."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


def _fp32_copy(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32, copy=True)


def _rstd(x: torch.Tensor, eps: float) -> torch.Tensor:
    ms = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32).square_().div_(x.shape[-1])
    return ms.add_(eps).rsqrt_()


# The functions below write into fresh fp32 copies in place instead of chaining out-of-place ops: on CPU a
# full-size temporary costs more than the arithmetic (with glibc's defaults a fresh [32, 81, 512] fp32 product took
# ~4 ms of page faults, the same written in place 0.15 ms; see also ditlaws.cpu_allocator), and a bf16·fp32 product
# costs twice an fp32 one. The closed-form backward of x̂ = x·rstd is ∂x = rstd·(g − x̂·mean(g·x̂)), with g the
# gradient reaching x̂.


class _RMSNormFunction(torch.autograd.Function):
    """y = x̂·w with x̂ = x·rstd, rstd = 1/√(mean(x²) + eps) over the last dim, in fp32; y in `out_dtype`."""

    @staticmethod
    def forward(ctx, x, weight, eps, out_dtype):
        rstd = _rstd(x, eps)
        y = _fp32_copy(x).mul_(rstd)
        if weight is not None:
            y.mul_(weight)
        ctx.save_for_backward(x, weight, rstd)
        return y.to(out_dtype)

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        x_hat = _fp32_copy(x).mul_(rstd)
        g = _fp32_copy(grad)
        g_x_hat = g * x_hat
        grad_weight = None
        if weight is not None:
            if ctx.needs_input_grad[1]:
                grad_weight = g_x_hat.reshape(-1, x.shape[-1]).sum(0).to(weight.dtype)
            g_x_hat.mul_(weight)
            g.mul_(weight)
        dot = g_x_hat.mean(-1, keepdim=True)
        del g_x_hat
        grad_x = g.sub_(x_hat.mul_(dot)).mul_(rstd)
        return grad_x.to(x.dtype), grad_weight, None, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float, out_dtype: torch.dtype | None = None):
    """RMSNorm over the last dim on the CPU path (see the module docstring); output in `out_dtype`."""
    with torch.autocast("cpu", enabled=False):
        return _RMSNormFunction.apply(x, weight, eps, out_dtype or x.dtype)


class _RMSNormModulateFunction(torch.autograd.Function):
    """adaLN's y = x̂·(1 + scale) + shift with x̂ = x·rstd (no weight), per sample [B, W] scale and shift over
    x [B, S, W], in fp32, y in `out_dtype`: the norm and the modulation in one function."""

    @staticmethod
    def forward(ctx, x, shift, scale, eps, out_dtype):
        rstd = _rstd(x, eps)
        gain = scale.float().add(1.0)[:, None]
        y = _fp32_copy(x).mul_(rstd).mul_(gain).add_(shift[:, None])
        ctx.save_for_backward(x, rstd, gain)
        ctx.dtypes = shift.dtype, scale.dtype
        return y.to(out_dtype)

    @staticmethod
    def backward(ctx, grad):
        x, rstd, gain = ctx.saved_tensors
        shift_dtype, scale_dtype = ctx.dtypes
        x_hat = _fp32_copy(x).mul_(rstd)
        g = _fp32_copy(grad)
        grad_shift = g.sum(1).to(shift_dtype)
        g_x_hat = g * x_hat
        grad_scale = g_x_hat.sum(1).to(scale_dtype)
        dot = g_x_hat.mul_(gain).mean(-1, keepdim=True)
        del g_x_hat
        grad_x = g.mul_(gain).sub_(x_hat.mul_(dot)).mul_(rstd)
        return grad_x.to(x.dtype), grad_shift, grad_scale, None, None


def rms_norm_modulate(x, shift, scale, eps: float, out_dtype: torch.dtype):
    """`modulate(rms_norm(x), shift, scale)` on the CPU path, in one function (see `_RMSNormModulateFunction`)."""
    with torch.autocast("cpu", enabled=False):
        return _RMSNormModulateFunction.apply(x, shift, scale, eps, out_dtype)


def attention(q, k, v, attn_mask, scale) -> torch.Tensor:
    """SDPA in fp32 on CPU inputs [B, H, S, d] (outside autocast, which would cast them back to bf16); returns the
    heads merged, [B, S, H·d] in v's dtype, in one copy."""
    with torch.autocast("cpu", enabled=False):
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask, scale=scale)
    b, h, s, d = out.shape
    return out.transpose(1, 2).to(v.dtype, memory_format=torch.contiguous_format).view(b, s, h * d)
