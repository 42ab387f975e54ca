"""Building blocks shared by both DiT families: attention with QK-RMSNorm, MLP, time embedding, patches."""

import torch
import torch.nn.functional as F
from torch import nn

from ditlaws.models import cpu_kernels
from ditlaws.models.positional import timestep_features, timestep_frequencies
from ditlaws.models.presets import TIME_FREQ_DIM

NORM_EPS = 1e-6


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm whose weight follows the input dtype, so bf16 autocast activations take the fused kernel; on CPU
    those take `cpu_kernels.rms_norm` instead (fp32 statistics, a closed-form backward). `out_dtype` asks for
    another output dtype on that path (the attention's fp32 queries and keys)."""

    def forward(self, x: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
        if cpu_kernels.takes_cpu_path(x):
            return cpu_kernels.rms_norm(x, self.weight, self.eps, out_dtype)
        weight = None if self.weight is None else self.weight.to(x.dtype)
        return F.rms_norm(x, self.normalized_shape, weight, self.eps)

    def for_linear(self, x: torch.Tensor) -> torch.Tensor:
        """The norm of `x` when only a Linear reads it: on the CPU path already in the dtype it computes in (the same
        numbers as the norm's fp32 output cast by autocast, one pass less)."""
        if cpu_kernels.takes_cpu_path(x):
            return cpu_kernels.rms_norm(x, self.weight, self.eps, cpu_kernels.linear_dtype(x))
        return self(x)

    def modulated(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """`modulate(self(x), shift, scale)` (adaLN; a norm without weight), for a Linear to read."""
        if cpu_kernels.takes_cpu_path(x) and self.weight is None:
            return cpu_kernels.rms_norm_modulate(x, shift, scale, self.eps, cpu_kernels.linear_dtype(x))
        return modulate(self(x), shift, scale)


def rms_norm(dim: int, affine: bool = True) -> RMSNorm:
    return RMSNorm(dim, eps=NORM_EPS, elementwise_affine=affine)


class Attention(nn.Module):
    """Multi-head attention with RMSNorm on queries and keys (per head), through `F.scaled_dot_product_attention`.

    Self-attention when `context` is None; cross-attention to `context` otherwise. `key_mask` is bool [B, S_k]
    (True = may be attended to). `scale` is the logit scale (None: SDPA's 1/√head_dim); the parametrization sets it.
    """

    def __init__(self, width: int, heads: int, cross: bool = False):
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        self.cross = cross
        if cross:
            self.to_q = nn.Linear(width, width)
            self.to_kv = nn.Linear(width, 2 * width)
        else:
            self.to_qkv = nn.Linear(width, 3 * width)
        self.q_norm = rms_norm(self.head_dim)
        self.k_norm = rms_norm(self.head_dim)
        self.to_out = nn.Linear(width, width)
        self.scale: float | None = None

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None):
        if self.cross:
            q = self.to_q(x)
            k, v = self.to_kv(context).chunk(2, dim=-1)
        else:
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        # [B, S, H, d] -> [B, H, S, d] after the per-head norm, which reduces over the contiguous last dim either way
        if cpu_kernels.takes_cpu_path(v):
            q = self.q_norm(self._heads(q), out_dtype=torch.float32).transpose(1, 2)
            k = self.k_norm(self._heads(k), out_dtype=torch.float32).transpose(1, 2)
            return self.to_out(cpu_kernels.attention(q, k, self._heads(v).transpose(1, 2), attn_mask, self.scale))
        q = self.q_norm(self._heads(q)).transpose(1, 2)
        k = self.k_norm(self._heads(k)).transpose(1, 2)
        v = self._heads(v).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
        b, _, s, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, s, -1))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TimestepEmbedding(nn.Module):
    """t in [0, 1] -> sinusoidal features of 1000·t -> Linear -> SiLU -> Linear."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer("freqs", timestep_frequencies(TIME_FREQ_DIM), persistent=False)
        self.linear_1 = nn.Linear(TIME_FREQ_DIM, width)
        self.linear_2 = nn.Linear(width, width)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = timestep_features(t, self.freqs).to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(features)))


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/p)·(W/p), C·p·p], patches in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: torch.Tensor, p: int, channels: int, size: int) -> torch.Tensor:
    """Inverse of `patchify` for a square latent of side `size`."""
    b = tokens.shape[0]
    g = size // p
    x = tokens.reshape(b, g, g, channels, p, p)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, channels, size, size)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None, :]) + shift[:, None, :]
