"""The four models the step benchmark compares at one size: ours (both families) and diffusers' DiT and PixArt.

Each entry builds the model and a loss function `loss(model, batch) -> scalar` for one training step on a batch
drawn once (`make_batch`); the step around it (autocast, backward, fused AdamW) is the same for all four.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ditlaws.flow import flow_loss


@dataclass(frozen=True)
class Size:
    """One benchmark size: the model's width/depth/heads and the input geometry, plus the batch."""

    width: int
    depth: int
    heads: int
    sample_size: int
    in_channels: int
    patch_size: int
    text_len: int
    text_dim: int
    batch: int

    @property
    def image_tokens(self) -> int:
        return (self.sample_size // self.patch_size) ** 2

    @property
    def label(self) -> str:
        return f"w{self.width} d{self.depth} {self.image_tokens} tok b{self.batch}"


def make_batch(size: Size, seed: int = 0, padded_text: bool = False, device: str = "cpu") -> dict:
    """Inputs of one step (drawn on the CPU, then moved to `device`). `padded_text`: captions of varying length (a
    real text mask, as the built-in set has)."""
    g = torch.Generator().manual_seed(seed)
    b, s = size.batch, size.sample_size
    batch = {
        "latent": torch.randn(b, size.in_channels, s, s, generator=g),
        "text_states": torch.randn(b, size.text_len, size.text_dim, generator=g),
        "t": torch.rand(b, generator=g),
        "noise": torch.randn(b, size.in_channels, s, s, generator=g),
        "drop": torch.rand(b, generator=g) < 0.1,
        "labels": torch.randint(0, 1000, (b,), generator=g),
        "text_mask": None,
    }
    if padded_text:
        lengths = torch.randint(1, size.text_len + 1, (b,), generator=g)
        batch["text_mask"] = torch.arange(size.text_len)[None, :] < lengths[:, None]
    batch["pooled"] = batch["text_states"].mean(1)
    return {k: None if v is None else v.to(device) for k, v in batch.items()}


def _ours(family: str):
    def build(size: Size):
        from ditlaws.models import build_model

        return build_model(family, sample_size=size.sample_size, in_channels=size.in_channels,
                           patch_size=size.patch_size, depth=size.depth, width=size.width, heads=size.heads,
                           text_dim=size.text_dim, text_len=size.text_len)

    def loss(model, batch):
        return flow_loss(model, batch["latent"], batch["text_states"], batch["text_mask"], batch["pooled"],
                         t=batch["t"], noise=batch["noise"], drop_text=batch["drop"]).mean()

    return build, loss


def _interpolated(batch):
    t = batch["t"][:, None, None, None]
    return (1 - t) * batch["latent"] + t * batch["noise"], batch["noise"] - batch["latent"]


def _diffusers_dit():
    def build(size: Size):
        from diffusers import DiTTransformer2DModel

        return DiTTransformer2DModel(num_attention_heads=size.heads, attention_head_dim=size.width // size.heads,
                                     in_channels=size.in_channels, out_channels=size.in_channels,
                                     num_layers=size.depth, sample_size=size.sample_size, patch_size=size.patch_size)

    def loss(model, batch):
        x_t, target = _interpolated(batch)
        out = model(x_t, timestep=(batch["t"] * 999).long(), class_labels=batch["labels"], return_dict=False)[0]
        return F.mse_loss(out.float(), target)

    return build, loss


def _diffusers_pixart():
    def build(size: Size):
        from diffusers import PixArtTransformer2DModel

        return PixArtTransformer2DModel(num_attention_heads=size.heads, attention_head_dim=size.width // size.heads,
                                        in_channels=size.in_channels, out_channels=size.in_channels,
                                        num_layers=size.depth, cross_attention_dim=size.width,
                                        sample_size=size.sample_size, patch_size=size.patch_size,
                                        caption_channels=size.text_dim)

    def loss(model, batch):
        x_t, target = _interpolated(batch)
        out = model(x_t, encoder_hidden_states=batch["text_states"], timestep=(batch["t"] * 999).long(),
                    added_cond_kwargs={"resolution": None, "aspect_ratio": None}, return_dict=False)[0]
        return F.mse_loss(out.float(), target)

    return build, loss


# name -> (build(size) -> model, loss(model, batch) -> scalar)
ARCHITECTURES = {
    "diffusers DiT": _diffusers_dit(),
    "diffusers PixArt": _diffusers_pixart(),
    "ditlaws in_context": _ours("in_context"),
    "ditlaws cross_attn": _ours("cross_attn"),
}
REFERENCE = "diffusers DiT"
