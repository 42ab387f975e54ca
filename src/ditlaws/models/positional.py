"""Every fixed sin-cos code in the project: image positions (2-D), text positions (1-D) and timestep features.

The three differ in layout ([sin | cos] halves, interleaved sin/cos, [cos | sin]) and in how the frequencies
10000^(-2i/dim) are written. The two frequency expressions are equal in exact arithmetic but not always in the last
bit of float64 (for about half the widths), which can change a float32 code: each is kept exactly as it was, because
saved models, cached text embeddings and the project's recorded losses were made with them.
"""

from __future__ import annotations

import math

import torch

from ditlaws.models.presets import TIME_FREQ_DIM

TIME_SCALE = 1000.0  # t in [0, 1] is scaled to [0, 1000] before the sinusoids (diffusers' timestep = 1000 * sigma)


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[len(positions), dim]: [sin(p·ω) | cos(p·ω)], ω_i = 1 / 10000^(i / (dim/2)), in float64."""
    omega = 1.0 / 10000.0 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.double()[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position table [grid_size², dim], row-major over (row, column); dim must be divisible by 4.
    The first half codes the row, the second the column (MAE / DiT's table)."""
    coords = torch.arange(grid_size, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    table = torch.cat([sincos_1d(dim // 2, rows.reshape(-1)), sincos_1d(dim // 2, cols.reshape(-1))], dim=1)
    return table.float()


def sincos_sequence(length: int, dim: int) -> torch.Tensor:
    """Fixed 1-D position codes [length, dim] of the Transformer paper: sin at even, cos at odd channels."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    codes = torch.zeros(length, dim, dtype=torch.float64)
    codes[:, 0::2] = torch.sin(pos * freq)
    codes[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return codes.float()


def timestep_frequencies(features: int = TIME_FREQ_DIM) -> torch.Tensor:
    """The `features // 2` float32 frequencies of the timestep sinusoids (diffusers' / DiT's)."""
    half = features // 2
    return torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)


def timestep_features(t: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """t [B] in [0, 1] -> float32 [B, 2·len(freqs)]: [cos(1000·t·f) | sin(1000·t·f)]."""
    args = (TIME_SCALE * t.float())[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
