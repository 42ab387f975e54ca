"""Every configuration section as a dataclass: run (model / data / train / hub), evaluation, sweep, executor.

All of them are built by one mechanism (`ditlaws.options`): YAML sections and command-line flags go through the
same coercion and checks, so a typo, a wrong type, a NaN or an out-of-range value is a one-line `UserError`
naming the key before any work starts. Adding an option is adding one field:

    lr: float = option(1e-4, help="peak learning rate", gt=0)
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ditlaws.errors import UserError
from ditlaws.options import option, parse_overrides, section_from_dict

__all__ = ["DataConfig", "EvalConfig", "ExecutorConfig", "HubConfig", "ModelConfig", "RunConfig", "SizeConfig",
           "SweepConfig", "SweepEvalConfig", "TrainConfig", "config_from_dict", "identity", "identity_diff",
           "load_config", "load_data_config", "parse_overrides", "read_yaml", "save_config", "section_from_dict"]

WIDTH_PER_DEPTH = 64  # the paper's size presets: width = 64·depth, heads = depth


def preset_size(depth: int) -> dict[str, int]:
    """The paper-style size of a depth: {"depth", "width", "heads"}."""
    return {"depth": depth, "width": WIDTH_PER_DEPTH * depth, "heads": depth}


# ---------------------------------------------------------------------------------------------------------------
# The run: model / data / train / hub


@dataclass
class ModelConfig:
    """The DiT. Its `sample_size`, `in_channels`, `text_dim` and `text_len` come from the data's encoders."""

    family: Literal["in_context", "cross_attn"] = option("in_context", help="DiT family")
    depth: int = option(4, help="transformer blocks", ge=1)
    width: int | None = option(None, help=f"hidden size (default {WIDTH_PER_DEPTH}·depth)", ge=1)
    heads: int | None = option(None, help="attention heads (default: depth)", ge=1)
    patch_size: int = option(2, help="image patch size", ge=1)
    mlp_ratio: float = option(4.0, help="MLP hidden size / width", gt=0)
    gradient_checkpointing: bool = option(False, help="recompute activations in the backward pass (saves memory)")
    parametrization: Literal["sp", "mup"] = option(
        "sp", help="sp: standard; mup: μP, the lr tuned at base_width transfers to every width (docs/mup.md)")
    base_width: int | None = option(None, help="mup: the width the learning rate is tuned at (μP = SP there)", ge=1)
    base_heads: int | None = option(None, help="mup: the base model's heads (default: heads)", ge=1)

    @property
    def resolved_width(self) -> int:
        return self.width or preset_size(self.depth)["width"]

    @property
    def resolved_heads(self) -> int:
        return self.heads or preset_size(self.depth)["heads"]

    def check(self) -> None:
        if self.resolved_width % self.resolved_heads:
            raise UserError(f"model.width ({self.resolved_width}) must be divisible by model.heads "
                            f"({self.resolved_heads})")
        if self.parametrization == "mup":
            if self.base_width is None:
                raise UserError("model.base_width must be set when model.parametrization is mup (the width whose "
                                "learning rate transfers, e.g. the sweep's smallest)")
            base_heads = self.base_heads or self.resolved_heads
            if self.base_width % base_heads or self.base_width % 4:
                raise UserError(f"model.base_width ({self.base_width}) must be divisible by 4 and by the base "
                                f"heads ({base_heads})")
        elif self.base_width is not None or self.base_heads is not None:
            raise UserError("model.base_width / model.base_heads are μP settings; set model.parametrization: mup "
                            "or remove them")


@dataclass
class DataConfig:
    """Where samples come from and how they are encoded (see ditlaws.data)."""

    source: str = option("builtin", help='"builtin", or a datasets builder / Hub name ("parquet", "user/set", ...)')
    data_files: str | list[str] | None = option(None, help="files of a builder source (globs allowed)")
    data_dir: str | None = option(None, help="folder of a builder source")
    dataset_config: str | None = option(None, help="the dataset's configuration name")
    image_column: str = option("image", help="column holding the image")
    caption_column: str = option("text", help="column holding the caption")
    train_split: str = option("train", help="the source's training split")
    val_split: str | None = option(None, help="the source's validation split (None: a fixed held-out part of train)")
    resolution: int = option(32, help="image side in pixels", ge=16, le=1024)
    complexity: int = option(2, help="builtin: most objects per image", ge=1)
    seed: int = option(0, help="data seed (builtin: which images; real sources: shuffle order)", ge=0)
    image_encoder: str = option("identity", help='"identity" (pixels in [-1, 1]) or an AutoencoderKL path / Hub id')
    image_encoder_subfolder: str | None = option(None, help='e.g. "vae" inside a diffusers pipeline repo')
    text_encoder: str = option("builtin", help='"builtin" (offline, deterministic) or a transformers path / Hub id')
    text_encoder_subfolder: str | None = option(None, help='e.g. "text_encoder" inside a diffusers pipeline repo')
    tokenizer_subfolder: str | None = option(None, help='e.g. "tokenizer" inside a diffusers pipeline repo')
    text_len: int = option(16, help="text tokens per caption", ge=1)
    text_dim: int = option(64, help="builtin text encoder width (a transformers encoder has its own)", ge=1)
    text_seed: int = option(0, help="builtin text encoder: seed of its fixed embedding table", ge=0)
    cache_dir: str | None = option(None, help="prepared parquet shards; when set, training reads the cache")
    num_shards: int = option(8, help="parquet shards written by prepare", ge=1)
    latent_dtype: Literal["bfloat16", "float16", "float32"] = option("float16", help="dtype of cached latents")
    shuffle_buffer: int = option(1000, help="shuffle buffer of a streamed source (0 or 1: no shuffle)", ge=0)
    val_size: int = option(256, help="validation samples (builtin: the fixed set's size)", ge=1)
    num_workers: int = option(0, help="DataLoader worker processes", ge=0)

    def check(self) -> None:
        if self.text_encoder == "builtin" and self.text_dim % 2:
            raise UserError(f"data.text_dim must be even for the builtin text encoder, got {self.text_dim}")


@dataclass
class TrainConfig:
    """The optimisation. Defaults are the paper's recipe (configs/train/paper.yaml spells them out)."""

    output_dir: str = option("outputs/run", help="the run folder")
    run_id: str | None = option(None, help="default: derived from model, budget and seed")
    study: str = option("default", help="the study this run belongs to (store folder / Hub repo name)")
    seed: int = option(0, help="seed of initialisation and of every step's draws", ge=0)
    budget: float | None = option(None, help="compute budget in FLOPs (C = 6·N·D); sets the number of steps", gt=0)
    steps: int | None = option(None, help="optimizer steps (instead of a budget)", ge=1)
    global_batch: int = option(1024, help="samples per optimizer step, over all processes", ge=1)
    micro_batch: int | None = option(None, help="samples per process per forward (gradient accumulation)", ge=1)
    lr: float = option(1e-4, help="peak learning rate", gt=0)
    weight_decay: float = option(0.01, help="AdamW weight decay (not on norms, biases, embeddings)", ge=0)
    betas: tuple[float, float] = option((0.9, 0.95), help="AdamW betas", ge=0, lt=1)
    eps: float = option(1e-15, help="AdamW epsilon", ge=0)
    grad_clip: float = option(1.0, help="gradient-norm clip (0: off)", ge=0)
    caption_drop: float = option(0.1, help="probability of training a sample unconditionally", ge=0, lt=1)
    schedule: Literal["constant", "step", "wsd", "cosine"] = option("constant", help="learning-rate schedule")
    warmup_steps: int = option(0, help="linear warmup steps", ge=0)
    cooldown_frac: float = option(0.2, help="wsd: fraction of steps spent decaying to zero", ge=0, lt=1)
    mixed_precision: Literal["no", "bf16", "fp16"] = option("bf16", help="autocast precision (fp32 master weights)")
    t_sampler: Literal["logit_normal", "uniform"] = option("logit_normal", help="training timestep distribution")
    t_loc: float = option(0.0, help="logit-normal location m")
    t_scale: float = option(1.0, help="logit-normal scale s", gt=0)
    loss_ema: float = option(0.9, help="smoothing of the logged loss EMA", ge=0, lt=1)
    log_every: int = option(10, help="steps between metrics.jsonl records", ge=1)
    checkpoint_every: int = option(0, help="steps between checkpoints (0: only at the end)", ge=0)
    keep_checkpoints: int = option(2, help="finished checkpoints kept", ge=1)
    resume: str | None = option(None, help='"latest" or a checkpoint folder')
    overwrite: bool = option(False, help="replace a different run already in output_dir (default: refuse)")
    peak_flops: float = option(0.0, help="per-process peak FLOP/s for the MFU estimate (0: no MFU)", ge=0)
    trackers: list[str] = option(default_factory=list, help="experiment trackers",
                                 choices=("tensorboard", "trackio", "wandb"))
    fused_adamw: bool = option(True, help="fused AdamW kernel (much faster on CPU and GPU)")
    cpu: bool = option(False, help="train on CPU even when a GPU is present")

    def check(self) -> None:
        if (self.budget is None) == (self.steps is None):
            raise UserError("train: set exactly one of train.budget (FLOPs) or train.steps")
        if self.micro_batch is not None and self.global_batch % self.micro_batch:
            raise UserError(f"train.micro_batch ({self.micro_batch}) must divide "
                            f"train.global_batch ({self.global_batch})")
        if self.steps is not None and self.warmup_steps >= self.steps:
            raise UserError(f"train.warmup_steps ({self.warmup_steps}) must be below train.steps ({self.steps})")
        check_id("train.study", self.study)  # ids become folder and Hub names: checked once, here, where set
        if self.run_id is not None:
            check_id("train.run_id", self.run_id)


@dataclass
class HubConfig:
    """Where runs are shared on the Hugging Face Hub (nothing is pushed while `org` is unset).
    The token comes from the environment (HF_TOKEN) or `huggingface-cli login`, never from a config file."""

    org: str | None = option(None, help="Hub user or organisation that receives the study's repos")
    private: bool = option(False, help="create the repos private")
    endpoint: str | None = option(None, help="Hub endpoint (default: HF_ENDPOINT or https://huggingface.co)")
    push_every_s: float = option(300.0, help="seconds between background pushes of metrics.jsonl", gt=0)
    push_model: bool = option(True, help="push the final model (one model repo per run)")
    wait_s: float = option(120.0, help="at the end of a run (of a sweep), seconds to wait for the final pushes "
                           "(what has not landed by then is left to `ditlaws push <run dir>`)", ge=0)
    timeout_s: float = option(30.0, help="seconds one Hub request may take (then it is retried, within wait_s)",
                              gt=0)

    def check(self) -> None:
        from ditlaws.store import check_endpoint

        check_endpoint(self.endpoint)
        org = self.org
        if org is not None and (not HUB_NAME.match(org) or "--" in org or ".." in org or org.endswith((".", "-"))):
            raise UserError(f"hub.org {org!r}: a Hub user or organisation is letters, digits, '-', '_' and '.' "
                            "(1-96 chars, starting with a letter or digit, no '--' or '..')")


HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def check_id(key: str, value: str) -> str:
    """A study or run id: a store / Hub name (see ditlaws.store.check_name), as a UserError naming `key`."""
    from ditlaws.store import check_name

    try:
        return check_name(key, value)
    except UserError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:50] + f"...' ({len(value)} chars)"
        raise UserError(f"{key} {shown}: use letters, digits, '.', '_' and '-' (1-96 chars, starting with a "
                        "letter or digit, no '..')") from None


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    def validate(self) -> RunConfig:
        for name in RUN_SECTIONS:
            section_from_dict(RUN_SECTIONS[name], dataclasses.asdict(getattr(self, name)), name)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RUN_SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "hub": HubConfig}

# Run settings that change where a run lives or how it is logged and shared, not what it computes.
NOT_IDENTITY = {"train": ("output_dir", "resume", "overwrite", "log_every", "checkpoint_every", "keep_checkpoints",
                          "trackers", "peak_flops", "cpu"),
                "hub": tuple(f.name for f in dataclasses.fields(HubConfig))}
# data.num_workers is part of a run's identity: with a sharded source (parquet files) the workers interleave
# the shards, so the stream's order, and the numbers, depend on it.


# Keys added after runs were recorded: left out at these values, so the identity of an older run is unchanged.
IDENTITY_DEFAULTS = {"model": {"parametrization": "sp", "base_width": None, "base_heads": None}}


def identity(cfg: RunConfig) -> dict[str, Any]:
    """The part of a run config that determines its numbers: everything except paths, logging and sharing."""
    data = json.loads(json.dumps(cfg.to_dict(), default=list))
    for section, keys in NOT_IDENTITY.items():
        for key in keys:
            data.get(section, {}).pop(key, None)
    for section, defaults in IDENTITY_DEFAULTS.items():
        for key, value in defaults.items():
            if key in data.get(section, {}) and data[section][key] == value:
                data[section].pop(key)
    return {k: v for k, v in data.items() if v}


def identity_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two `identity` mappings."""
    out = []
    for section in sorted(set(a) | set(b)):
        sa, sb = a.get(section) or {}, b.get(section) or {}
        out += [f"{section}.{k}" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML run config, apply `--section.key value` overrides, validate, and return it."""
    raw: dict[str, Any] = read_yaml(path) if path is not None else {}
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
    raw = read_yaml(path).get("data") if path else None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise UserError(f"{path}: section 'data' must be a mapping")
    for key, value in parse_overrides(overrides or []).items():
        section, _, name = key.partition(".")
        if section != "data":
            raise UserError(f"--{key}: only --data.<key> <value> overrides are accepted here")
        raw[name] = value
    return section_from_dict(DataConfig, raw, "data")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping (empty file: {}); see `options.load_yaml_file` for what is checked."""
    from ditlaws.options import load_yaml_file

    raw = load_yaml_file(path)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a mapping of sections or keys, got {_kind(raw)}")
    return raw


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"the {type(value).__name__} {value!r}"[:80]


def config_from_dict(raw: dict[str, Any], source: str = "config") -> RunConfig:
    unknown = sorted(set(raw) - set(RUN_SECTIONS))
    if unknown:
        raise UserError(f"{source}: unknown section {unknown[0]!r}; valid sections: {', '.join(RUN_SECTIONS)}")
    parts = {name: section_from_dict(cls, {} if raw.get(name) is None else raw[name], name)
             for name, cls in RUN_SECTIONS.items()}
    return RunConfig(**parts)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config atomically (a reader, or a run killed mid-write, never sees half a file)."""
    from ditlaws.jsonio import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(json.loads(json.dumps(cfg.to_dict(), default=list)), sort_keys=False))


# ---------------------------------------------------------------------------------------------------------------
# Evaluation (evaluate_dit.py, and the sweep's `eval:` section)

EVAL_METRICS = ("loss", "vlb", "nll", "fid", "accuracy", "clip", "samples")
EVAL_SPLITS = ("val", "ood")


@dataclass
class EvalConfig:
    """What evaluate_dit.py measures on a checkpoint, and how. The generation metrics (fid, accuracy, clip,
    samples) share one generation pass per split: max of their sample counts, each taking the first images."""

    metrics: tuple[str, ...] = option(("loss", "vlb", "nll", "fid", "samples"), help="metrics to compute",
                                      choices=EVAL_METRICS, cli="comma")
    splits: tuple[str, ...] = option(("val",), help="splits (ood: the shifted built-in set)", choices=EVAL_SPLITS,
                                     cli="comma")
    seed: int = option(0, help="seed of every evaluation draw", ge=0)
    batch_size: int = option(64, help="evaluation batch size", ge=1)
    max_samples: int | None = option(None, help="validation samples for loss / VLB (default: the whole split)",
                                     ge=1)
    loss_timesteps: int = option(100, help="stratified t per sample for the loss (paper: 1000)", ge=1)
    vlb_timesteps: int = option(100, help="t per sample for the VLB", ge=1)
    vlb_proposal: Literal["logsnr_uniform", "logit_normal", "uniform"] = option(
        "logsnr_uniform", help="t proposal of the VLB estimate")
    nll_samples: int = option(64, help="samples for the exact likelihood", ge=1)
    nll_method: Literal["euler", "rk45"] = option(
        "euler", help="likelihood ODE solver (torchdiffeq): fixed-step euler, or rk45 = adaptive dopri5")
    nll_steps: int = option(500, help="Euler steps for the likelihood (paper: 500)", ge=1)
    nll_divergence: Literal["hutchinson", "exact"] = option("hutchinson", help="divergence estimator")
    nll_probes: int = option(1, help="Hutchinson probes per sample", ge=1)
    fid_samples: int = option(256, help="generated and reference images for FID", ge=2)
    fid_features: Literal["builtin-cnn", "clip-vit-l-14"] = option("builtin-cnn", help="FID feature extractor")
    fid_weights: str | None = option(None, help="weights file of the FID feature extractor")
    accuracy_samples: int = option(256, help="generated images scored for compositional accuracy (built-in set)",
                                   ge=2)
    accuracy_weights: str | None = option(
        None, help="built-in feature network that reads the cells (default: --fid-weights when the FID features "
                   "are builtin-cnn, else the cached network)")
    clip_samples: int = option(256, help="generated images scored for CLIP score (real data)", ge=1)
    clip_model: str = option("ViT-L-14", help="open_clip model name, or local-dir:<open_clip folder>")
    clip_weights: str | None = option(None, help='open_clip pretrained tag or .safetensors file (default "openai")')
    sample_steps: int = option(25, help="Euler steps when sampling", ge=1)
    guidance_scale: float = option(10.0, help="classifier-free guidance scale (1: conditional only)", ge=0)
    grid_samples: int = option(32, help="images in each sample grid", ge=1)
    t_loc: float = option(0.0, help="logit-normal location of the loss timesteps")
    t_scale: float = option(1.0, help="logit-normal scale of the loss timesteps", gt=0)
    device: str | None = option(None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")

    def check(self) -> None:
        if self.device is not None:
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise UserError(f"eval.device: {self.device!r} is not a device; valid: cpu, cuda, cuda:<index>, "
                                "mps") from None


@dataclass
class SweepEvalConfig(EvalConfig):
    """A sweep's evaluation: validation loss for every run; generation metrics for the best runs per budget."""

    metrics: tuple[str, ...] = option(("fid", "samples"), help="generation metrics of the selected runs",
                                      choices=EVAL_METRICS, cli="comma")
    max_samples: int | None = option(256, help="validation samples for every run's loss", ge=1)
    loss_timesteps: int = option(16, help="stratified t per validation sample", ge=1)
    generation: bool = option(False, help="also evaluate `metrics` for the best `generation_runs` sizes per budget")
    generation_runs: int = option(2, help="runs per budget (lowest validation loss first) given generation metrics",
                                  ge=1)


# ---------------------------------------------------------------------------------------------------------------
# Sweeps


@dataclass
class SizeConfig:
    depth: int = option(help="transformer blocks", ge=1)
    width: int | None = option(None, help=f"hidden size (default {WIDTH_PER_DEPTH}·depth)", ge=1)
    heads: int | None = option(None, help="attention heads (default: depth)", ge=1)


@dataclass
class ExecutorConfig:
    """Where a sweep's runs execute."""

    kind: Literal["local", "subprocess", "slurm"] = option("local", help="local: in the runner's process; "
                                                            "subprocess: child processes; slurm: a submitit job array")
    max_parallel: int = option(1, help="subprocess: runs at once", ge=1)
    processes: int = option(1, help="processes per run (accelerate launch when > 1)", ge=1)
    accelerate_config: str | None = option(None, help="accelerate config file for multi-process runs")
    slurm_partition: str | None = option(None, help="Slurm partition")
    slurm_account: str | None = option(None, help="Slurm account")
    slurm_time_min: int = option(60, help="Slurm time limit per run (minutes)", ge=1)
    slurm_nodes: int = option(1, help="nodes per run", ge=1)
    slurm_gpus_per_node: int = option(1, help="GPUs per node", ge=0)
    slurm_cpus_per_task: int | None = option(None, help="CPUs per task", ge=1)
    slurm_mem_gb: int | None = option(None, help="memory per node (GB)", ge=1)
    slurm_additional: list[str] = option(default_factory=list, help="extra #SBATCH lines, e.g. 'qos=high'")


@dataclass
class SweepConfig:
    """An isoFLOP sweep: budgets x sizes x seeds, each a run of the `base` config (see ditlaws.sweep)."""

    study: str = option(help="study name (store folder, Hub repo prefix)")
    budgets: list[float] = option(help="compute budgets in FLOPs", gt=0)
    base_config: str | None = option(None, help="a run config YAML; its per-run keys are ignored")
    base: dict[str, Any] = option(default_factory=dict, help="run config sections applied over base_config")
    sizes: list[SizeConfig] | None = option(None, help="model sizes, each {depth, width, heads}")
    depths: list[int] | None = option(None, help=f"depths with width {WIDTH_PER_DEPTH}·depth, heads = depth", ge=1)
    seeds: list[int] = option(default_factory=lambda: [0], help="seeds per (budget, size)", ge=0)
    min_steps: int = option(50, help="runs with fewer steps are listed, not run", ge=1)
    trunks: bool = option(False, help="one constant-LR trunk per (size, seed) and a WSD cooldown branch per budget "
                          "(needs base.train.schedule wsd; ditlaws.sweep.trunks)")
    eval: SweepEvalConfig = option(default_factory=SweepEvalConfig, help="evaluation of each run")
    out: str | None = option(None, help="sweep folder: runs in <out>/runs, the store in <out>/store")
    store: str | None = option(None, help="another store folder (default <out>/store)")
    keep_models: bool = option(True, help="copy each trained model into <store>/models/<run_id>")
    hub: HubConfig = option(default_factory=HubConfig, help="push every run to the Hub")
    executor: ExecutorConfig = option(default_factory=ExecutorConfig, help="where runs execute")

    def check(self) -> None:
        from ditlaws.store.layout import check_name

        check_name("study", self.study)
        if (self.sizes is None) == (self.depths is None):
            raise UserError("sweep: set exactly one of sizes (a list of {depth, width, heads}) or depths "
                            f"(width {WIDTH_PER_DEPTH}·depth, heads = depth)")
        if self.sizes is not None:  # {depth: 1} and {depth: 1, width: 64, heads: 1} are one size
            seen_sizes: dict[tuple, int] = {}
            for i, size in enumerate(self.sizes):
                full = (size.depth, size.width or preset_size(size.depth)["width"],
                        size.heads or preset_size(size.depth)["heads"])
                if full in seen_sizes:
                    raise UserError(f"sweep.sizes[{i}] is sizes[{seen_sizes[full]}] again (depth {full[0]}, width "
                                    f"{full[1]}, heads {full[2]} once defaults are filled in); list each size once")
                seen_sizes[full] = i
        for key in ("budgets", "seeds", "depths", "sizes"):
            values = getattr(self, key)
            if values is not None and not values:
                raise UserError(f"sweep.{key} must not be empty")
            if values is not None:
                seen = [json.dumps(dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v, sort_keys=True)
                        for v in values]
                if len(set(seen)) < len(seen):
                    raise UserError(f"sweep.{key} must not repeat, got {[json.loads(s) for s in seen]}")

    @property
    def size_list(self) -> list[dict[str, int]]:
        if self.depths is not None:
            return [preset_size(d) for d in self.depths]
        return [{k: v for k, v in dataclasses.asdict(s).items() if v is not None} for s in self.sizes]

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"outputs/sweeps/{self.study}")

    @property
    def store_dir(self) -> Path:
        return Path(self.store) if self.store else self.out_dir / "store"

    @property
    def runs_dir(self) -> Path:
        return self.out_dir / "runs"


# A run config names one run; a sweep sets these for each of its runs.
PER_RUN_KEYS = ("steps", "budget", "run_id", "study", "output_dir", "resume", "seed")


def resolve_base(sweep: SweepConfig, root: Path | None) -> dict[str, Any]:
    """The sweep's base run config as a mapping: `base_config` (minus its per-run keys) with `base` over it."""
    base: dict[str, Any] = {}
    if sweep.base_config is not None:
        path = Path(sweep.base_config)
        if not path.is_file() and root is not None and (root / path).is_file():
            path = root / path
        if not path.is_file():
            raise UserError(f"sweep.base_config: {sweep.base_config}: file not found")
        base = read_yaml(path)
        for key in PER_RUN_KEYS:
            (base.get("train") or {}).pop(key, None)
    for section, values in sweep.base.items():
        if not isinstance(values, dict):
            raise UserError(f"sweep.base.{section} must be a mapping of keys")
        base[section] = {**(base.get(section) or {}), **values}
        for key in PER_RUN_KEYS if section == "train" else ():
            if values.get(key) is not None:
                raise UserError(f"sweep.base.train.{key} is set by the sweep for each run; remove it")
    if "hub" in base:
        raise UserError("sweep.base.hub: set the sweep's top-level `hub:` section instead")
    return copy.deepcopy(base)
