"""Cross-attention DiT: image tokens only in the sequence; adaLN-Zero on time (+ pooled text), cross-attn to text."""

import torch
from diffusers import ModelMixin  # noqa: F401  (DiffusionPipeline.from_pretrained looks it up in this module)
from diffusers.configuration_utils import register_to_config
from torch import nn

from ditlaws.models.base import DiTBase, TextProjection
from ditlaws.models.layers import Attention, Mlp, rms_norm, unpatchify
from ditlaws.models.presets import resolve_dims


class CrossAttnBlock(nn.Module):
    """x + g1·SelfAttn(mod(norm(x))), x + CrossAttn(norm(x), text), x + g2·MLP(mod(norm(x))).

    The shift/scale/gate of the self-attention and MLP sub-layers come from the conditioning vector through a
    zero-initialised linear (adaLN-Zero), so every block starts as the identity on those two paths.
    """

    def __init__(self, width: int, heads: int, mlp_hidden: int):
        super().__init__()
        self.norm1 = rms_norm(width, affine=False)
        self.attn = Attention(width, heads)
        self.norm_cross = rms_norm(width)
        self.cross_attn = Attention(width, heads, cross=True)
        self.norm2 = rms_norm(width, affine=False)
        self.mlp = Mlp(width, mlp_hidden)
        self.ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x, cond, text, key_mask):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada_ln(cond).chunk(6, dim=-1)
        x = x + gate1[:, None] * self.attn(self.norm1.modulated(x, shift1, scale1))
        x = x + self.cross_attn(self.norm_cross.for_linear(x), context=text, key_mask=key_mask)
        return x + gate2[:, None] * self.mlp(self.norm2.modulated(x, shift2, scale2))


class CrossAttnDiT(DiTBase):
    """Text-to-image DiT with cross-attention conditioning (DiT's adaLN-Zero + PixArt-style cross-attention).

    Conditioning vector c = time-embedding MLP(t) + projection of the pooled text embedding; it modulates every
    block and the output layer. Each block cross-attends to the projected text tokens (padded ones masked out; a row
    with no valid token attends to all of its tokens). If `pooled` is None, the masked mean of `text_states` is used.

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

    family = "cross_attn"
    _no_split_modules = ["CrossAttnBlock"]
    _embedding_prefixes = ("patch_embed.", "time_embed.", "text_embed.", "pooled_embed.", "null_text_states",
                           "null_pooled", "final_ada_ln.", "proj_out.")

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
        self.register_to_config(width=dims.width, heads=dims.heads)
        self._build_common(dims)
        self.pooled_embed = TextProjection(text_dim, dims.width)
        self.null_pooled = nn.Parameter(torch.randn(text_dim))
        self.blocks = nn.ModuleList(CrossAttnBlock(dims.width, dims.heads, dims.mlp_hidden) for _ in range(depth))
        self.norm_out = rms_norm(dims.width, affine=False)
        self.final_ada_ln = nn.Sequential(nn.SiLU(), nn.Linear(dims.width, 2 * dims.width))
        self.proj_out = nn.Linear(dims.width, dims.patch_dim)
        self._init_linear_weights()
        for block in self.blocks:
            nn.init.zeros_(block.ada_ln[1].weight)
        nn.init.zeros_(self.final_ada_ln[1].weight)
        nn.init.zeros_(self.proj_out.weight)
        self._parametrize(parametrization, base_width, base_heads)

    @staticmethod
    def _masked_mean(states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            return states.mean(dim=1)
        weights = mask.to(states.dtype)[..., None]
        return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def forward(self, x_t, t, text_states, text_mask=None, pooled=None, drop_text=None) -> torch.Tensor:
        """Same interface as `InContextDiT.forward`; `pooled` [B, text_dim] feeds the adaLN conditioning."""
        t = self._check_inputs(x_t, t, text_states)
        if pooled is None:
            pooled = self._masked_mean(text_states, None if text_mask is None else text_mask.bool())
        if drop_text is not None:
            drop = drop_text.to(device=pooled.device, dtype=torch.bool)
            pooled = torch.where(drop[:, None], self.null_pooled.to(pooled.dtype)[None], pooled)
        text_states, text_mask = self._apply_drop(text_states, text_mask, drop_text)

        x = self._embed_image(x_t)
        dtype = x.dtype
        cond = self.time_embed(t).to(dtype) + self.pooled_embed(pooled.to(dtype))
        text = self.text_embed(text_states.to(dtype))
        key_mask = self._effective_mask(text_mask)
        if key_mask is not None:
            key_mask = key_mask | ~key_mask.any(dim=1, keepdim=True)

        x = self._run_blocks(x, cond, text, key_mask)
        shift, scale = self.final_ada_ln(cond).chunk(2, dim=-1)
        x = self.proj_out(self.norm_out.modulated(x, shift, scale))
        return unpatchify(x, self.dims.patch_size, self.dims.in_channels, self.dims.sample_size)
