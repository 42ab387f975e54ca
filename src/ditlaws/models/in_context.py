"""In-context DiT: one sequence [time token, text tokens, image tokens] through full bidirectional attention."""

import torch
from diffusers import ModelMixin  # noqa: F401  (DiffusionPipeline.from_pretrained looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from ditlaws.models.base import DiTBase
from ditlaws.models.layers import Attention, Mlp, rms_norm, unpatchify
from ditlaws.models.presets import resolve_dims


class InContextBlock(nn.Module):
    """Pre-norm transformer block: x + Attn(RMSNorm(x)), then x + MLP(RMSNorm(x))."""

    def __init__(self, width: int, heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = rms_norm(width)
        self.attn = Attention(width, heads)
        self.norm2 = rms_norm(width)
        self.mlp = Mlp(width, mlp_hidden)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.norm1.for_linear(x), key_mask=key_mask)
        return x + self.mlp(self.norm2.for_linear(x))


class InContextDiT(DiTBase):
    """Text-to-image DiT with in-context conditioning: the condition tokens share the sequence with the image.

    Tokens: 1 time token (time-embedding MLP), `text_len` text tokens (RMSNorm + linear projection of the text
    encoder's states; padded ones are masked out as keys), and the image patch tokens (+ fixed 2-D sin-cos
    positions). The velocity is read from the image tokens only. `pooled` is accepted for a uniform interface
    and ignored by this family.

    Parameters:
        sample_size (`int`, defaults to 32): side of the square input (pixels, or latents of a VAE); must be
            divisible by `patch_size`.
        in_channels (`int`, defaults to 3): channels of the input (3 for pixels, 4 for an SD VAE's latents); the
            output velocity has the same shape as the input.
        patch_size (`int`, defaults to 2): side of the square patches that become tokens; the model sees
            (sample_size / patch_size)² image tokens.
        depth (`int`, defaults to 4): number of transformer blocks.
        width (`int`, *optional*): hidden size of every token; defaults to 64·depth (the paper's presets). Must be
            divisible by `heads` and by 4 (the 2-D sin-cos positions).
        heads (`int`, *optional*): attention heads; defaults to `depth`. Head size is width / heads.
        mlp_ratio (`float`, defaults to 4.0): MLP hidden size / width.
        text_dim (`int`, defaults to 64): width of the text encoder's states (`text_states`' last dimension).
        text_len (`int`, defaults to 16): text tokens per caption (`text_states`' second dimension).
        parametrization (`str`, defaults to "sp"): "sp" (standard) or "mup" (μP: init, learning rates and attention
            scale follow `ditlaws.models.parametrization`, so the learning rate tuned at `base_width` transfers).
        base_width (`int`, *optional*): μP's base width (required for "mup"); at this width μP equals SP.
        base_heads (`int`, *optional*): heads of the μP base model (defaults to `heads`).
    """

    family = "in_context"
    _no_split_modules = ["InContextBlock"]
    _embedding_prefixes = ("patch_embed.", "time_embed.", "text_embed.", "null_text_states", "proj_out.")

    @register_to_config
    def __init__(
        self,
        sample_size: int = 32,
        in_channels: int = 3,
        patch_size: int = 2,
        depth: int = 4,
        width: int | None = None,
        heads: int | None = None,
        mlp_ratio: float = 4.0,
        text_dim: int = 64,
        text_len: int = 16,
        parametrization: str = "sp",
        base_width: int | None = None,
        base_heads: int | None = None,
    ):
        super().__init__()
        dims = resolve_dims(sample_size, in_channels, patch_size, depth, width, heads, mlp_ratio, text_dim, text_len)
        self.register_to_config(width=dims.width, heads=dims.heads)  # config.json shows the resolved sizes
        self._build_common(dims)
        self.blocks = nn.ModuleList(InContextBlock(dims.width, dims.heads, dims.mlp_hidden) for _ in range(depth))
        self.norm_out = rms_norm(dims.width)
        self.proj_out = nn.Linear(dims.width, dims.patch_dim)
        self._init_linear_weights()
        nn.init.zeros_(self.proj_out.weight)
        self._parametrize(parametrization, base_width, base_heads)

    def forward(self, x_t, t, text_states, text_mask=None, pooled=None, drop_text=None) -> torch.Tensor:
        """x_t [B, C, H, W], t [B] in [0, 1] (1 = noise), text_states [B, L, text_dim], text_mask bool [B, L]
        (True = real token), drop_text bool [B] (True = use the learned null text). Returns the velocity [B, C, H, W].
        """
        t = self._check_inputs(x_t, t, text_states)
        text_states, text_mask = self._apply_drop(text_states, text_mask, drop_text)
        image = self._embed_image(x_t)
        dtype = image.dtype
        time = self.time_embed(t)[:, None, :].to(dtype)
        text = self.text_embed(text_states.to(dtype))
        x = torch.cat([time, text, image], dim=1)

        text_mask = self._effective_mask(text_mask)
        key_mask = None
        if text_mask is not None:
            b, n = image.shape[0], image.shape[1]
            always = torch.ones(b, 1, dtype=torch.bool, device=x.device)
            key_mask = torch.cat([always, text_mask.to(x.device), always.expand(b, n)], dim=1)

        x = self._run_blocks(x, key_mask)
        x = self.proj_out(self.norm_out.for_linear(x[:, 1 + self.dims.text_len :]))
        return unpatchify(x, self.dims.patch_size, self.dims.in_channels, self.dims.sample_size)
