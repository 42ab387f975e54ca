"""Building blocks shared by both DiT families: attention with QK-RMSNorm, MLP, positions, time embedding, patches."""

import math

import torch
import torch.nn.functional as F
from torch import nn

TIME_FREQ_DIM = 256  # sinusoidal features fed to the time-embedding MLP
TIME_SCALE = 1000.0  # t in [0, 1] is scaled to [0, 1000] before the sinusoids (diffusers' timestep = 1000 * sigma)
NORM_EPS = 1e-6


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm whose weight follows the input dtype, so bf16 autocast activations take the fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(x.dtype)
        return F.rms_norm(x, self.normalized_shape, weight, self.eps)


def rms_norm(dim: int, affine: bool = True) -> RMSNorm:
    return RMSNorm(dim, eps=NORM_EPS, elementwise_affine=affine)


class Attention(nn.Module):
    """Multi-head attention with RMSNorm on queries and keys (per head), through `F.scaled_dot_product_attention`.

    Self-attention when `context` is None; cross-attention to `context` otherwise. `key_mask` is bool [B, S_k]
    (True = may be attended to).
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

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, key_mask: torch.Tensor | None = None):
        if self.cross:
            q = self.to_q(x)
            k, v = self.to_kv(context).chunk(2, dim=-1)
        else:
            q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q = self.q_norm(self._split_heads(q))
        k = self.k_norm(self._split_heads(k))
        v = self._split_heads(v)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
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
        half = TIME_FREQ_DIM // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.linear_1 = nn.Linear(TIME_FREQ_DIM, width)
        self.linear_2 = nn.Linear(width, width)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = (TIME_SCALE * t.float())[:, None] * self.freqs[None, :]
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(features)))


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    omega = 1.0 / 10000.0 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.double()[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position table [grid_size², dim], row-major over (row, column); dim must be divisible by 4."""
    coords = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    table = torch.cat([sincos_1d(dim // 2, rows.reshape(-1)), sincos_1d(dim // 2, cols.reshape(-1))], dim=1)
    return table.float()


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
