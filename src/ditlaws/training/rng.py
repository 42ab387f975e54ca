"""Per-step random numbers that need no saved state: a resumed run draws exactly what it would have drawn.

The t values, noise and caption-drop mask of optimizer step s are drawn for the whole global batch from one
generator seeded by (seed, s); each process then takes the rows of the samples it holds. So the draws depend
on neither the number of processes nor gradient accumulation, and 1 and N processes train identically.
"""

from __future__ import annotations

import hashlib

import torch

from ditlaws.flow import caption_drop_mask, sample_t


def step_seed(seed: int, step: int, stream: str = "train") -> int:
    """A 63-bit seed from (seed, step, stream): distinct, well-mixed seeds for neighbouring steps."""
    digest = hashlib.blake2b(f"{stream}:{seed}:{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def draw_step(
    seed: int,
    step: int,
    global_batch: int,
    latent_shape: tuple[int, ...],
    *,
    sampler: str,
    loc: float,
    scale: float,
    caption_drop: float,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """{"t" [G], "noise" [G, *latent_shape], "drop" bool [G]} for step `step`, on `device`."""
    generator = torch.Generator(device=device).manual_seed(step_seed(seed, step))
    t = sample_t(global_batch, sampler, loc=loc, scale=scale, generator=generator, device=device)
    noise = torch.randn((global_batch, *latent_shape), generator=generator, device=device)
    drop = caption_drop_mask(global_batch, caption_drop, generator=generator, device=device)
    return {"t": t, "noise": noise, "drop": drop}
