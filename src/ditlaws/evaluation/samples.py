"""Seeded samples from a DiT through ``ditlaws.pipeline.DiTPipeline``, and PNG grids with their captions.

Each sample's starting noise comes from a generator seeded by (seed, sample id), so a sample does not depend on
the batch size or on which other prompts are drawn with it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ditlaws.evaluation._draws import sample_generator, sample_ids


def generate(
    pipeline,
    batches: Iterable[dict],
    *,
    num_samples: int,
    num_inference_steps: int = 25,
    guidance_scale: float = 10.0,
    seed: int = 0,
) -> Iterator[dict]:
    """Yield {"images" float [B, C, H, W] in [-1, 1], "caption", "id"} for the captions of the first samples."""
    config = pipeline.transformer.config
    shape = (config.in_channels, config.sample_size, config.sample_size)
    done = 0
    for batch in batches:
        ids = sample_ids(batch, done)
        take = min(len(ids), num_samples - done)
        if take <= 0:
            return
        latents = torch.stack([torch.randn(shape, generator=sample_generator(seed, i, "samples")) for i in ids[:take]])
        out = pipeline(
            text_states=batch["text_states"][:take],
            text_mask=None if batch.get("text_mask") is None else batch["text_mask"][:take],
            pooled=None if batch.get("pooled") is None else batch["pooled"][:take],
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, latents=latents, output_type="pt",
        )
        captions = batch.get("caption") or [""] * take
        yield {"images": out.images.float().cpu() * 2 - 1, "caption": list(captions[:take]), "id": ids[:take]}
        done += take
        if done >= num_samples:
            return


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float [B, C, H, W] -> uint8 [B, H, W, C] (grayscale / RGB; other channel counts keep the first 3)."""
    images = images[:, :3] if images.shape[1] >= 3 else images[:, :1].expand(-1, 3, -1, -1)
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(images: torch.Tensor, captions: list[str], path, columns: int = 8, tile: int = 128) -> Path:
    """A PNG grid: each image upscaled to ``tile`` px (nearest) with its caption underneath; captions also as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(images)
    font = ImageFont.load_default()
    wrapped = [textwrap.wrap(c, width=max(8, tile // 6))[:4] for c in captions]
    text_height = 12 * max((len(w) for w in wrapped), default=0) + 4
    columns = max(1, min(columns, len(pixels)))
    rows = -(-len(pixels) // columns)
    grid = Image.new("RGB", (columns * tile, rows * (tile + text_height)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for k, (image, lines) in enumerate(zip(pixels, wrapped)):
        x, y = (k % columns) * tile, (k // columns) * (tile + text_height)
        grid.paste(Image.fromarray(image).resize((tile, tile), Image.NEAREST), (x, y))
        for j, line in enumerate(lines):
            draw.text((x + 2, y + tile + 2 + 12 * j), line, fill=(0, 0, 0), font=font)
    from ditlaws.jsonio import atomic_path, write_text_atomic

    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    write_text_atomic(path.with_suffix(".json"), json.dumps({"captions": list(captions)}, indent=1) + "\n")
    return path
