"""The parametrization of a DiT: `sp` (standard, today's models) or `mup` (μP, maximal-update), all rules here.

Under μP the best learning rate found at `base_width` transfers to every width (Yang et al. 2022, "Tensor Programs V",
arXiv 2203.03466; for DiT, PixArt and MMDiT: Zheng et al. 2025, "Scaling Diffusion Transformers Efficiently via μP",
arXiv 2505.15270, who use the same rules). The rules are the μP table for Adam (TP-V Table 3, "μP" column; SP
in brackets), with fan_in / fan_out counted as "infinite" when they grow with width:

    | tensor                                   | init variance         | AdamW lr                  |
    |------------------------------------------|-----------------------|---------------------------|
    | input weights (fan_in fixed) + all vectors| 1/fan_in   (SP same)  | η          (SP η)         |
    | hidden weights (fan_in, fan_out ∝ width) | 1/fan_in   (SP same)  | η/fan_in   (SP η)         |
    | output weights (fan_in ∝ width)          | 1/fan_in²  (SP 1/f_in)| η/fan_in   (SP η)         |
    | attention logits                         | q·k / d_head          | (SP q·k / √d_head)        |

Each rule is anchored at the base model: at `width == base_width` a μP model *is* the SP model, bit for bit (same
init, same learning rates, same attention scale), so a learning rate tuned for the SP model at the base width is the
μP learning rate of every width. Concretely, for a tensor whose fan_in grows by m = width / base_width:

- init: the SP init drawn as today, multiplied by a per-tensor factor (no extra random draws): hidden matrices keep
  xavier (which is already ∝ 1/fan_in at a fixed aspect ratio); N(0, 0.02) hidden matrices (the time MLP's second
  layer) get 0.02/√m; input matrices (patch embedding, text / pooled projections, the time MLP's first layer) keep
  the variance they have at the base width (SP's xavier would shrink it as 1/width); zero-initialised weights (the
  output projection `proj_out`, adaLN-Zero) stay zero — μP allows a zero output layer, so we keep it rather than a
  1/width output multiplier (with AdamW the two give the same updates of a zero-initialised layer);
- learning rate: lr/m for every matrix with a growing fan_in (hidden and output); base lr for input matrices,
  biases, norm gains, learned null texts; the weight decay of a group is multiplied by m so that the decoupled decay
  per step (lr·wd) is the same at every width (as the `mup` package's MuAdamW does);
- attention: logits q·k·√d_base / d_head (= 1/√d_head at the base head size). With our QK-RMSNorm the normalised
  q and k have norm √d_head·(gain) by construction, so |q·k| ≤ d_head·g²: SP's 1/√d_head leaves logits that can reach
  √d_head·g² once training aligns q with k (the μP regime moves every coordinate by Θ(1), so it does), i.e. the
  attention temperature reachable at a given gain grows with the head size. With 1/d_head the logit is the mean of
  g_q,i·g_k,i·q̂_i·k̂_i, O(1) at every head size, and the learnable gains (vectors, base lr) move it at the same rate at
  every width. The norm removes the scale of W_q, W_k from the logits, not the growth of the dot product, so QK-norm
  does not make the 1/d_head rule unnecessary. When heads grow with width (head size fixed, as in the paper's
  presets) the two rules coincide.

Depth is not a μP dimension here: μP transfers across width at a fixed depth (a sweep that also changes depth
uses the width rules, and its depth changes are not covered by the transfer).

The `mup` package (1.0.0) was not used: it keeps each tensor's base shape as an attribute of the Parameter object,
which FSDP's flattened parameters and diffusers' `from_pretrained` (parameters created on the meta device, then
replaced) do not keep, and it needs the output layer replaced by its `MuReadout` class. Here the parametrization is
three numbers in the model's config (`parametrization`, `base_width`, `base_heads`) and every rule is a function
of the config, so `from_pretrained`, FSDP and resume rebuild it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ditlaws.errors import UserError

PARAMETRIZATIONS = ("sp", "mup")
SP_FIXED_STD_PREFIXES = ("time_embed.",)  # SP init N(0, 0.02) (std independent of the shape); other matrices: xavier


@dataclass(frozen=True)
class Parametrization:
    """`name` "sp" | "mup"; for mup the base model's width and heads (the width the learning rate was tuned at)."""

    name: str = "sp"
    base_width: int | None = None
    base_heads: int | None = None

    @classmethod
    def resolve(cls, name: str, base_width: int | None, base_heads: int | None, heads: int) -> Parametrization:
        if name not in PARAMETRIZATIONS:
            raise UserError(f"model config field 'parametrization' must be one of {', '.join(PARAMETRIZATIONS)}, "
                            f"got {name!r}")
        if name == "sp":
            return cls()
        if base_width is None:
            raise UserError("model config field 'base_width' must be set when parametrization is 'mup' (the width "
                            "whose learning rate transfers, e.g. the smallest model of the sweep)")
        base_heads = heads if base_heads is None else base_heads
        for field, value in (("base_width", base_width), ("base_heads", base_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"model config field '{field}' must be a positive integer, got {value!r}")
        if base_width % base_heads or base_width % 4:
            raise UserError(f"model config field 'base_width' ({base_width}) must be divisible by 4 and by "
                            f"'base_heads' ({base_heads})")
        return cls(name, base_width, base_heads)

    @property
    def is_mup(self) -> bool:
        return self.name == "mup"

    def attention_scale(self, head_dim: int) -> float | None:
        """The logit scale of attention with this head size; None = SDPA's default 1/√head_dim (SP, or the base)."""
        if not self.is_mup:
            return None
        base_head_dim = self.base_width // self.base_heads
        return None if head_dim == base_head_dim else math.sqrt(base_head_dim) / head_dim


def fan_in_ratio(shape: tuple[int, ...], base_shape: tuple[int, ...]) -> float:
    """m = fan_in / base fan_in of a matrix (1 for vectors and for matrices whose fan_in does not grow)."""
    if len(shape) < 2:
        return 1.0
    return shape[1] / base_shape[1]


def init_factor(name: str, shape: tuple[int, ...], base_shape: tuple[int, ...]) -> float:
    """What the SP init of a tensor is multiplied by under μP (exactly 1.0 at the base shape)."""
    if len(shape) < 2 or shape == base_shape:
        return 1.0
    fan_out, fan_in = shape[0], shape[1]
    base_out, base_in = base_shape[0], base_shape[1]
    if name.startswith(SP_FIXED_STD_PREFIXES):  # SP std 0.02 at every shape
        sp_var_ratio = 1.0
    else:  # xavier: var 2 / (fan_in + fan_out)
        sp_var_ratio = (base_in + base_out) / (fan_in + fan_out)
    grows_in, grows_out = fan_in != base_in, fan_out != base_out
    if grows_in and grows_out:  # hidden: var ∝ 1/fan_in
        mup_var_ratio = base_in / fan_in
    elif grows_in:  # output: var ∝ 1/fan_in²
        mup_var_ratio = (base_in / fan_in) ** 2
    else:  # input: var fixed
        mup_var_ratio = 1.0
    return math.sqrt(mup_var_ratio / sp_var_ratio)


def lr_scale(shape: tuple[int, ...], base_shape: tuple[int, ...]) -> float:
    """The AdamW learning-rate multiplier of a tensor: 1/m for matrices whose fan_in grows by m, else 1."""
    return 1.0 / fan_in_ratio(shape, base_shape)


def base_shapes(model: nn.Module, base_model_factory) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the base model (built on the meta device: no memory, no random draws)."""
    with torch.device("meta"):
        base = base_model_factory()
    shapes = {name: tuple(p.shape) for name, p in base.named_parameters()}
    ours = {name: tuple(p.shape) for name, p in model.named_parameters()}
    if set(shapes) != set(ours):
        raise ValueError("the base model has different parameters than the model")  # a bug, not user input
    return shapes


def apply_init(model: nn.Module, shapes: dict[str, tuple[int, ...]]) -> None:
    """Rescale the SP init of `model` to μP's (in place; no random draws, so the RNG stream is SP's)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            factor = init_factor(name, tuple(param.shape), shapes[name])
            if factor != 1.0:
                param.mul_(factor)


def lr_scales(shapes: dict[str, tuple[int, ...]], base: dict[str, tuple[int, ...]]) -> dict[str, float]:
    """{parameter name: AdamW learning-rate multiplier} from the model's shapes at construction (a sharded or
    wrapped parameter may show another shape later) and the base model's."""
    return {name: lr_scale(shape, base[name]) for name, shape in shapes.items()}
