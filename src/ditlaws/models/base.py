"""What both DiT families share: input checks, the learned null text, patch/position embedding, counting."""

import torch
from diffusers import ConfigMixin, ModelMixin
from torch import nn

from ditlaws.models import parametrization as mup
from ditlaws.models.flops import flops_per_sample as closed_form_flops
from ditlaws.models.layers import Attention, TimestepEmbedding, patchify, rms_norm
from ditlaws.models.positional import sincos_2d
from ditlaws.models.presets import Dims, input_mismatch


class TextProjection(nn.Module):
    """RMSNorm then a linear map from the text encoder's width to the model width (encoders differ in scale)."""

    def __init__(self, text_dim: int, width: int):
        super().__init__()
        self.norm = rms_norm(text_dim)
        self.linear = nn.Linear(text_dim, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm.for_linear(x))


class DiTBase(ModelMixin, ConfigMixin):
    """Base of `InContextDiT` and `CrossAttnDiT`; subclasses set `family` and `_embedding_prefixes`."""

    family: str = ""
    _supports_gradient_checkpointing = True
    # Parameters whose names start with these are embeddings (excluded from "non_embedding").
    _embedding_prefixes: tuple[str, ...] = ()

    def _build_common(self, dims: Dims) -> None:
        self.dims = dims
        self.gradient_checkpointing = False
        self.patch_embed = nn.Linear(dims.patch_dim, dims.width)
        self.register_buffer("pos_embed", sincos_2d(dims.width, dims.sample_size // dims.patch_size), persistent=False)
        self.time_embed = TimestepEmbedding(dims.width)
        self.text_embed = TextProjection(dims.text_dim, dims.width)
        self.null_text_states = nn.Parameter(torch.randn(dims.text_len, dims.text_dim))

    def _init_linear_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.time_embed.linear_1.weight, std=0.02)
        nn.init.normal_(self.time_embed.linear_2.weight, std=0.02)

    # ---- parametrization (sp | mup; the rules live in `ditlaws.models.parametrization`) -----------------------
    _BASE_KEYS = ("sample_size", "in_channels", "patch_size", "depth", "mlp_ratio", "text_dim", "text_len")

    def _parametrize(self, parametrization: str, base_width: int | None, base_heads: int | None) -> None:
        """Called last in `__init__`: attention scales, and under μP the rescaled init (SP: nothing changes)."""
        self.rules = mup.Parametrization.resolve(parametrization, base_width, base_heads, self.dims.heads)
        scale = self.rules.attention_scale(self.dims.head_dim)
        for module in self.modules():
            if isinstance(module, Attention):
                module.scale = scale
        self._shapes = {name: tuple(p.shape) for name, p in self.named_parameters()}
        self._base_shapes = mup.base_shapes(self, self._base_model) if self.rules.is_mup else None
        if self._base_shapes is not None:
            mup.apply_init(self, self._base_shapes)

    def _base_model(self):
        c = self.config
        return type(self)(**{k: c[k] for k in self._BASE_KEYS}, width=self.rules.base_width,
                          heads=self.rules.base_heads)

    def lr_scales(self) -> dict[str, float]:
        """{parameter name: learning-rate multiplier}: all 1.0 under SP, base_width/width for μP's matrices."""
        if self._base_shapes is None:
            return dict.fromkeys(self._shapes, 1.0)
        return mup.lr_scales(self._shapes, self._base_shapes)

    # ---- inputs -------------------------------------------------------------------------------------------------
    def _check_inputs(self, x_t: torch.Tensor, t: torch.Tensor, text_states: torch.Tensor) -> torch.Tensor:
        problem = input_mismatch(self.dims, x_t.shape, text_states.shape)
        if problem:  # a caller's bug: callers that take user data check with `input_mismatch` first
            raise ValueError(problem)
        t = torch.as_tensor(t, device=x_t.device)
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        return t

    def _apply_drop(self, text_states, text_mask, drop_text):
        """Rows where drop_text is True get the learned null states and an all-valid mask."""
        if drop_text is None:
            return text_states, text_mask
        drop = drop_text.to(device=text_states.device, dtype=torch.bool)
        null = self.null_text_states.to(text_states.dtype)[None]
        text_states = torch.where(drop[:, None, None], null, text_states)
        if text_mask is not None:
            text_mask = text_mask.bool() | drop[:, None]
        return text_states, text_mask

    @staticmethod
    def _effective_mask(text_mask: torch.Tensor | None) -> torch.Tensor | None:
        """None when every token is valid (lets SDPA use its fastest kernel)."""
        if text_mask is None:
            return None
        text_mask = text_mask.bool()
        return None if bool(text_mask.all()) else text_mask

    def _embed_image(self, x_t: torch.Tensor) -> torch.Tensor:
        tokens = patchify(x_t.to(self.patch_embed.weight.dtype), self.dims.patch_size)
        return self.patch_embed(tokens) + self.pos_embed.to(tokens.dtype)[None]

    def _run_blocks(self, x: torch.Tensor, *block_args) -> torch.Tensor:
        for block in self.blocks:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, x, *block_args)
            else:
                x = block(x, *block_args)
        return x

    # ---- accounting ---------------------------------------------------------------------------------------------
    @property
    def tokens_per_sample(self) -> int:
        """Image patch tokens per sample (D counts these)."""
        return self.dims.image_tokens

    def parameter_counts(self) -> dict:
        """{"total": every parameter, "non_embedding": total minus the embeddings listed in `ditlaws.models.flops`}.

        Counted from the actual tensors; `ditlaws.models.flops.parameter_counts` gives the same in closed form.
        """
        total = embedding = 0
        for name, param in self.named_parameters():
            total += param.numel()
            if name.startswith(self._embedding_prefixes):
                embedding += param.numel()
        return {"total": total, "non_embedding": total - embedding}

    def flops_per_sample(self) -> int:
        """Forward FLOPs of one sample (2 per multiply-add), closed form; see `ditlaws.models.flops`."""
        return closed_form_flops(self.family, self.dims)
