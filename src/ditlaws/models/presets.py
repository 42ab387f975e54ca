"""Size presets (width = 64·depth, heads = depth, as in the paper's sweep) and config resolution / validation.

No torch here (nor in `flops.py`): the Space and the sweep planner import both without the models.
"""

from dataclasses import dataclass

from ditlaws.config import WIDTH_PER_DEPTH, preset_size
from ditlaws.errors import UserError

PAPER_DEPTHS = tuple(range(2, 16))  # the paper sweeps depth 2..15
TIME_FREQ_DIM = 256  # sinusoidal features fed to the time-embedding MLP


@dataclass(frozen=True)
class Dims:
    """Resolved model dimensions; every closed form in `flops.py` is a function of these."""

    sample_size: int
    in_channels: int
    patch_size: int
    depth: int
    width: int
    heads: int
    mlp_hidden: int
    text_dim: int
    text_len: int

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def image_tokens(self) -> int:
        return (self.sample_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        return self.in_channels * self.patch_size**2


def preset(depth: int) -> dict:
    """The paper-style size for a depth: {"depth", "width", "heads"} (`ditlaws.config.preset_size`)."""
    return preset_size(depth)


PRESETS = {depth: preset(depth) for depth in PAPER_DEPTHS}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"model config field '{name}' must be a positive integer, got {value!r}")
    return value


def resolve_dims(
    sample_size: int,
    in_channels: int,
    patch_size: int,
    depth: int,
    width: int | None,
    heads: int | None,
    mlp_ratio: float,
    text_dim: int,
    text_len: int,
) -> Dims:
    """Fill width = 64·depth and heads = depth when not given, and check that the shapes fit together."""
    depth = _positive_int("depth", depth)
    width = _positive_int("width", WIDTH_PER_DEPTH * depth if width is None else width)
    heads = _positive_int("heads", depth if heads is None else heads)
    for name, value in [("sample_size", sample_size), ("in_channels", in_channels), ("patch_size", patch_size),
                        ("text_dim", text_dim), ("text_len", text_len)]:
        _positive_int(name, value)
    if width % heads:
        raise UserError(f"model config field 'width' ({width}) must be divisible by 'heads' ({heads})")
    if width % 4:
        raise UserError(f"model config field 'width' ({width}) must be divisible by 4 (2-D sin-cos positions)")
    if sample_size % patch_size:
        raise UserError(f"model config field 'sample_size' ({sample_size}) must be divisible by "
                        f"'patch_size' ({patch_size})")
    if not isinstance(mlp_ratio, (int, float)) or isinstance(mlp_ratio, bool) or mlp_ratio <= 0:
        raise UserError(f"model config field 'mlp_ratio' must be a positive number, got {mlp_ratio!r}")
    mlp_hidden = int(round(mlp_ratio * width))
    return Dims(sample_size, in_channels, patch_size, depth, width, heads, mlp_hidden, text_dim, text_len)


def input_mismatch(config, latent_shape, text_shape) -> str | None:
    """Why inputs of these shapes do not fit a model of `config` (its dims or its diffusers config), or None.

    The model's forward raises a ValueError with this message; callers that feed user data (evaluation) check
    first and turn it into a UserError naming their data option."""
    c = config
    if len(latent_shape) != 4 or tuple(latent_shape[1:]) != (c.in_channels, c.sample_size, c.sample_size):
        return (f"x_t must have shape [B, {c.in_channels}, {c.sample_size}, {c.sample_size}] (in_channels, "
                f"sample_size), got {list(latent_shape)}")
    if len(text_shape) != 3 or tuple(text_shape[1:]) != (c.text_len, c.text_dim):
        return (f"text_states must have shape [B, {c.text_len}, {c.text_dim}] (text_len, text_dim), "
                f"got {list(text_shape)}")
    return None
