"""Run configuration: dataclasses per section, YAML files plus `--section.key value` overrides, validated up front.

A run config is a YAML mapping with the sections `model`, `data` and `train` (see configs/). Every key is checked
against the dataclass fields below, so a typo or a wrong type is a one-line `UserError` naming the key before any
work starts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from ditlaws.errors import UserError


@dataclass
class ModelConfig:
    """The DiT. Its `sample_size`, `in_channels`, `text_dim` and `text_len` come from the data's encoders."""

    family: Literal["in_context", "cross_attn"] = "in_context"
    depth: int = 4
    width: int | None = None  # default 64 * depth
    heads: int | None = None  # default depth
    patch_size: int = 2
    mlp_ratio: float = 4.0
    gradient_checkpointing: bool = False

    def validate(self) -> None:
        _positive(self, "model", "depth", "patch_size", "mlp_ratio")
        if self.width is not None and self.width <= 0:
            raise UserError(f"model.width must be a positive integer, got {self.width}")
        if self.heads is not None and self.heads <= 0:
            raise UserError(f"model.heads must be a positive integer, got {self.heads}")
        width = self.width or 64 * self.depth
        heads = self.heads or self.depth
        if width % heads:
            raise UserError(f"model.width ({width}) must be divisible by model.heads ({heads})")


@dataclass
class DataConfig:
    """Where samples come from and how they are encoded (see ditlaws.data)."""

    source: str = "builtin"  # "builtin", or a datasets builder / Hub name ("parquet", "imagefolder", "user/set", ...)
    data_files: str | list[str] | None = None
    data_dir: str | None = None
    dataset_config: str | None = None
    image_column: str = "image"
    caption_column: str = "text"
    train_split: str = "train"
    val_split: str | None = None  # None: a fixed held-out slice of the stream (builtin: a disjoint seed range)
    resolution: int = 32
    complexity: int = 2  # builtin: objects per image (1..3); harder settings keep small sweeps from saturating
    seed: int = 0
    image_encoder: str = "identity"  # "identity" (pixels in [-1, 1]) or an AutoencoderKL path / Hub id
    image_encoder_subfolder: str | None = None
    text_encoder: str = "builtin"  # "builtin" (offline, deterministic) or a transformers path / Hub id
    text_encoder_subfolder: str | None = None  # e.g. "text_encoder" inside a diffusers pipeline repo
    tokenizer_subfolder: str | None = None  # e.g. "tokenizer" inside a diffusers pipeline repo
    text_len: int = 16
    text_dim: int = 64  # builtin text encoder only (a transformers encoder has its own width)
    text_seed: int = 0  # builtin text encoder: seed of its fixed embedding table (independent of the data seed)
    cache_dir: str | None = None  # prepared parquet shards; when set, training reads the cache
    num_shards: int = 8
    latent_dtype: Literal["bfloat16", "float16", "float32"] = "float16"
    shuffle_buffer: int = 1000
    val_size: int = 256
    num_workers: int = 0

    def validate(self) -> None:
        _positive(self, "data", "resolution", "text_len", "text_dim", "num_shards", "val_size")
        if self.text_encoder == "builtin" and self.text_dim % 2:
            raise UserError(f"data.text_dim must be even for the builtin text encoder, got {self.text_dim}")
        if not 16 <= self.resolution <= 1024:
            raise UserError(f"data.resolution must be between 16 and 1024 pixels, got {self.resolution}")
        if self.complexity < 1:
            raise UserError(f"data.complexity must be >= 1, got {self.complexity}")
        if self.shuffle_buffer < 0 or self.num_workers < 0:
            raise UserError("data.shuffle_buffer and data.num_workers must be >= 0")


@dataclass
class TrainConfig:
    """The optimisation. Defaults are the paper's recipe (configs/train/paper.yaml spells them out)."""

    output_dir: str = "outputs/run"
    run_id: str | None = None  # default: derived from model, budget and seed
    study: str = "default"
    seed: int = 0
    budget: float | None = None  # FLOPs (C = 6 N D); sets the number of steps
    steps: int | None = None  # explicit alternative to budget
    global_batch: int = 1024
    micro_batch: int | None = None  # per process; gradient accumulation fills the global batch
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-15
    grad_clip: float = 1.0
    caption_drop: float = 0.1
    schedule: Literal["constant", "step", "wsd", "cosine"] = "constant"
    warmup_steps: int = 0
    cooldown_frac: float = 0.2  # wsd: fraction of steps spent decaying to zero
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    t_sampler: Literal["logit_normal", "uniform"] = "logit_normal"
    t_loc: float = 0.0
    t_scale: float = 1.0
    loss_ema: float = 0.9
    log_every: int = 10
    checkpoint_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 2
    resume: str | None = None  # "latest" or a checkpoint folder
    peak_flops: float = 0.0  # per process, for the MFU estimate; 0 disables MFU
    trackers: list[str] = field(default_factory=list)  # "tensorboard", "trackio"
    fused_adamw: bool = True
    cpu: bool = False  # train on CPU even when a GPU is present (always on CPU when none is)

    def validate(self) -> None:
        if (self.budget is None) == (self.steps is None):
            raise UserError("train: set exactly one of train.budget (FLOPs) or train.steps")
        if self.budget is not None and not (math.isfinite(self.budget) and self.budget > 0):
            raise UserError(f"train.budget must be a positive number of FLOPs, got {self.budget}")
        if self.steps is not None and self.steps <= 0:
            raise UserError(f"train.steps must be a positive integer, got {self.steps}")
        _positive(self, "train", "global_batch", "lr", "log_every", "keep_checkpoints")
        if self.micro_batch is not None and self.micro_batch <= 0:
            raise UserError(f"train.micro_batch must be a positive integer, got {self.micro_batch}")
        if self.micro_batch is not None and self.global_batch % self.micro_batch:
            raise UserError(f"train.micro_batch ({self.micro_batch}) must divide "
                            f"train.global_batch ({self.global_batch})")
        if self.steps is not None and self.warmup_steps >= self.steps:
            raise UserError(f"train.warmup_steps ({self.warmup_steps}) must be below train.steps ({self.steps})")
        for key in ("weight_decay", "grad_clip", "warmup_steps", "checkpoint_every", "peak_flops", "eps"):
            if getattr(self, key) < 0:
                raise UserError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        for key in ("caption_drop", "cooldown_frac"):
            if not 0 <= getattr(self, key) < 1:
                raise UserError(f"train.{key} must be in [0, 1), got {getattr(self, key)}")
        if not 0 <= self.loss_ema < 1:
            raise UserError(f"train.loss_ema must be in [0, 1), got {self.loss_ema}")
        if not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"train.betas must both be in [0, 1), got {list(self.betas)}")
        if self.t_scale <= 0:
            raise UserError(f"train.t_scale must be > 0, got {self.t_scale}")
        unknown = sorted(set(self.trackers) - {"tensorboard", "trackio", "wandb"})
        if unknown:
            raise UserError(f"train.trackers: unknown {unknown}; valid: tensorboard, trackio, wandb")


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> RunConfig:
        self.model.validate()
        self.data.validate()
        self.train.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply `--section.key value` overrides, validate, and return it."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path)
    for key, value in parse_overrides(overrides or []).items():
        section, _, name = key.partition(".")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise UserError(f"{section}: must be a mapping of keys, got {type(raw[section]).__name__}")
        raw[section][name] = value
    return config_from_dict(raw, source=str(path) if path else "overrides")


def load_data_config(path: str | Path | None, overrides: list[str] | None = None) -> DataConfig:
    """Only the `data:` section of a YAML config (other sections are ignored, not validated) plus
    `--data.key value` overrides: for tools that read data alone (prepare, evaluation)."""
    raw = (read_yaml(path).get("data") or {}) if path else {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: section 'data' must be a mapping")
    for key, value in parse_overrides(overrides or []).items():
        section, _, name = key.partition(".")
        if section != "data":
            raise UserError(f"--{key}: only --data.<key> <value> overrides are accepted here")
        raw[name] = value
    cfg = section_from_dict(DataConfig, raw, "data")
    cfg.validate()
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a mapping with sections {sorted(SECTIONS)}")
    return raw


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """`["--train.lr", "3e-4", "--model.depth=6"]` -> {"train.lr": 3e-4, "model.depth": 6} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg:
            raise UserError(f"unexpected argument {arg!r}; overrides look like --section.key value")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args):
                raise UserError(f"--{key}: missing value")
            value = args[i + 1]
            i += 1
        out[key] = _yaml_scalar(value)
        i += 1
    return out


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise UserError(f"{source}: unknown section {unknown[0]!r}; valid sections: {', '.join(sorted(SECTIONS))}")
    parts = {}
    for name, cls in SECTIONS.items():
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise UserError(f"{source}: section {name!r} must be a mapping")
        parts[name] = section_from_dict(cls, values, name)
    return RunConfig(**parts).validate()


def section_from_dict(cls: type, values: dict[str, Any], section: str):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            close = [n for n in sorted(names) if n.startswith(key[:3])]
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"{section}.{key}: unknown key{hint}; valid keys: {', '.join(sorted(names))}")
        kwargs[key] = coerce(value, hints[key], f"{section}.{key}")
    return cls(**kwargs)


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a type hint, converting only where it is lossless (int -> float, "1e15" -> 1e15)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(value, option, key)
            except UserError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        if isinstance(value, bool) and ("no" if not value else "yes") in args:  # YAML 1.1 reads `no` as false
            value = "no" if not value else "yes"
        if value not in args:
            raise UserError(f"{key}: {value!r} is not valid; choose one of {', '.join(map(str, args))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UserError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(coerce(v, a, key) for v, a in zip(value, args))
        inner = args[0] if args else Any
        return origin(coerce(v, inner, key) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, str):
            value = _yaml_scalar(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"{key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{key}: expected a string, got {value!r}")
    return value


def _yaml_scalar(text: str) -> Any:
    if text.lower() in ("yes", "no", "on", "off", "y", "n"):  # YAML 1.1 booleans; on the command line they are words
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):  # YAML reads "1e15" as a string; numbers without a dot are what users type
        try:
            return float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            return value
    return value


def _positive(obj: Any, section: str, *keys: str) -> None:
    for key in keys:
        value = getattr(obj, key)
        if value is None or value <= 0:
            raise UserError(f"{section}.{key} must be positive, got {value}")


def save_config(cfg: RunConfig, path: str | Path) -> None:
    data = cfg.to_dict()
    data["train"]["betas"] = list(data["train"]["betas"])
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))
