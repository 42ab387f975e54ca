"""Sampling: a diffusers `DiffusionPipeline` that integrates the learned velocity from t = 1 (noise) to t = 0 (data).

How a saved pipeline finds its classes again. diffusers records a component that is not its own or transformers'
under its module path (model_index.json: `"transformer": ["ditlaws.models.in_context", "InContextDiT"]`) and, when
loading, resolves such a name only from `sys.modules` (it never imports a module because a repo names it). So this
module imports every module a saved `DiTPipeline` can name (`COMPONENT_MODULES`): `DiTPipeline.from_pretrained`
works in a fresh interpreter, from a folder or a Hub repo. `diffusers.DiffusionPipeline.from_pretrained` knows only
diffusers' classes by name (and diffusers has an unrelated `DiTPipeline`), so `save_pretrained` names the pipeline
class `["pipeline", "DiTPipeline"]` and writes `pipeline.py`, one line importing this class from the installed
ditlaws: `DiffusionPipeline.from_pretrained(path, trust_remote_code=True)` loads it (diffusers asks for
`trust_remote_code` for any repo code, however short).
"""

import json
import os
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor

import ditlaws.data.encoders  # noqa: F401  (components a saved pipeline names; see the module docstring)
import ditlaws.models.cross_attn  # noqa: F401
import ditlaws.models.in_context  # noqa: F401
from ditlaws.errors import UserError

OUTPUT_TYPES = ("pt", "np", "pil", "latent")
COMPONENT_MODULES = ("ditlaws.models.in_context", "ditlaws.models.cross_attn", "ditlaws.data.encoders")
SHIM_MODULE = "pipeline"
SHIM_SOURCE = (
    "# Lets diffusers.DiffusionPipeline.from_pretrained(this_folder_or_repo, trust_remote_code=True) load ditlaws'\n"
    "# DiTPipeline. The code is the installed ditlaws package (pip install ditlaws); nothing else runs from here.\n"
    "from ditlaws.pipeline import DiTPipeline  # noqa: F401\n"
)


class DiTPipeline(DiffusionPipeline):
    """Text-to-image sampling with an `InContextDiT` / `CrossAttnDiT` and classifier-free guidance.

    Components: `transformer` (the DiT), `scheduler` (`FlowMatchEulerDiscreteScheduler`, shift 1 by default: its
    sigma is our t), and optionally `text_encoder` + `tokenizer` and `vae`:
      - `text_encoder` without `tokenizer`: a ditlaws encoder with `.encode(captions) -> (states, mask, pooled)`
        (e.g. `ditlaws.data.encoders.BuiltinTextEncoder`);
      - `text_encoder` + `tokenizer`: a transformers encoder (CLIP, T5, ...); states = last_hidden_state,
        mask = attention mask, pooled = pooler_output when it has the states' width, else the masked mean;
      - no `vae`: latents are pixels in [-1, 1]; with a diffusers `AutoencoderKL` they are decoded as
        `vae.decode(latents / scaling_factor + shift_factor)`.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["text_encoder", "tokenizer", "vae"]

    @classmethod
    def download(cls, pretrained_model_name: str, **kwargs) -> str:
        """Fetch a pipeline repo from the Hub for `from_pretrained`: its configs, tokenizer files and safetensors
        weights (never pickles). diffusers' own download refuses components from libraries it does not know, and
        ours are ditlaws modules (model_index.json: ["ditlaws.models.in_context", "InContextDiT"])."""
        from huggingface_hub import snapshot_download

        return snapshot_download(pretrained_model_name, revision=kwargs.get("revision"),
                                 cache_dir=kwargs.get("cache_dir"), token=kwargs.get("token"),
                                 local_files_only=bool(kwargs.get("local_files_only")),
                                 force_download=bool(kwargs.get("force_download")),
                                 allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"])  # no code

    @classmethod
    def load_config(cls, *args, **kwargs):
        """diffusers' `load_config`, with the class name read as this class: a folder saved by `save_pretrained`
        names `["pipeline", "DiTPipeline"]` for `DiffusionPipeline`; loading through this class needs no repo code."""
        out = super().load_config(*args, **kwargs)
        config = out[0] if isinstance(out, tuple) else out
        if isinstance(config, dict) and isinstance(config.get("_class_name"), (list, tuple)):
            config["_class_name"] = config["_class_name"][-1]
        return out

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        """diffusers' `save_pretrained`, plus `pipeline.py` and its name in model_index.json, so that
        `diffusers.DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` finds this class."""
        super().save_pretrained(save_directory, *args, **kwargs)
        folder = Path(save_directory)
        index_path = folder / "model_index.json"
        index = json.loads(index_path.read_text())
        index["_class_name"] = [SHIM_MODULE, "DiTPipeline"]
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        (folder / f"{SHIM_MODULE}.py").write_text(SHIM_SOURCE)

    def __init__(self, transformer, scheduler, text_encoder=None, tokenizer=None, vae=None):
        super().__init__()
        if not isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
            raise UserError(f"scheduler must be a diffusers FlowMatchEulerDiscreteScheduler (e.g. "
                            f"FlowMatchEulerDiscreteScheduler(shift=1.0)), got {type(scheduler).__name__}")
        self.register_modules(
            transformer=transformer, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer, vae=vae
        )

    # ---- conditioning -------------------------------------------------------------------------------------------
    def encode_prompt(self, prompt: list[str], device=None):
        """Captions -> (text_states [B, L, text_dim], text_mask bool [B, L], pooled [B, text_dim])."""
        device = device or self._execution_device
        if self.text_encoder is None:
            raise UserError("prompt was given but the pipeline has no text_encoder; pass text_states instead")
        text_len = self.transformer.config.text_len
        if self.tokenizer is None:
            states, mask, pooled = self.text_encoder.encode(list(prompt))
        else:
            from ditlaws.data.encoders import encode_with_transformers

            states, mask, pooled = encode_with_transformers(self.text_encoder, self.tokenizer, prompt, text_len)
        return states.to(device), mask.to(device), pooled.to(device)

    def _check_text(self, states, mask, pooled):
        c = self.transformer.config
        if states.ndim != 3 or states.shape[1:] != (c.text_len, c.text_dim):
            raise UserError(f"text_states must have shape [B, {c.text_len}, {c.text_dim}] (the transformer's "
                            f"text_len, text_dim), got {list(states.shape)}; is the text encoder the one it was "
                            f"trained with?")
        b = states.shape[0]
        if mask is not None and tuple(mask.shape) != (b, c.text_len):
            raise UserError(f"text_mask must have shape [{b}, {c.text_len}], got {list(mask.shape)}")
        if pooled is not None and tuple(pooled.shape) != (b, c.text_dim):
            raise UserError(f"pooled must have shape [{b}, {c.text_dim}], got {list(pooled.shape)}")

    # ---- sampling -----------------------------------------------------------------------------------------------
    def velocity(self, latents, t, text_states, text_mask, pooled, guidance_scale: float) -> torch.Tensor:
        """v = v_uncond + g·(v_cond − v_uncond), the unconditional branch using the learned null text.

        With g = 1 only the conditional branch is evaluated.
        """
        b = latents.shape[0]
        t = t.expand(b)
        if guidance_scale == 1.0:
            return self.transformer(latents, t, text_states, text_mask=text_mask, pooled=pooled)
        drop = torch.arange(2 * b, device=latents.device) >= b
        v = self.transformer(
            torch.cat([latents, latents]),
            torch.cat([t, t]),
            torch.cat([text_states, text_states]),
            text_mask=None if text_mask is None else torch.cat([text_mask, text_mask]),
            pooled=None if pooled is None else torch.cat([pooled, pooled]),
            drop_text=drop,
        )
        v_cond, v_uncond = v.chunk(2)
        return v_uncond + guidance_scale * (v_cond - v_uncond)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [0, 1], [B, C, H, W]."""
        if self.vae is not None:
            shift = getattr(self.vae.config, "shift_factor", None) or 0.0
            latents = latents.to(self.vae.dtype) / self.vae.config.scaling_factor + shift
            latents = self.vae.decode(latents).sample
        return (latents.float() / 2 + 0.5).clamp(0, 1)

    @torch.no_grad()
    def __call__(
        self,
        prompt: list[str] | str | None = None,
        text_states: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        pooled: torch.Tensor | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 10.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
    ):
        """Sample images for `prompt` (a list of captions) or for precomputed `text_states` (+ mask, pooled).

        Euler steps on the scheduler's sigmas (uniform in t from 1 to 0, then the scheduler's shift). Returns an
        `ImagePipelineOutput` whose `images` are: "pt" a float tensor [B, C, H, W] in [0, 1], "np" an array
        [B, H, W, C] in [0, 1], "pil" a list of PIL images, "latent" the final latents.
        """
        if output_type not in OUTPUT_TYPES:
            raise UserError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise UserError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        device = self._execution_device
        if prompt is not None:
            if text_states is not None:
                raise UserError("give either prompt or text_states, not both")
            prompt = [prompt] if isinstance(prompt, str) else list(prompt)
            text_states, text_mask, pooled = self.encode_prompt(prompt, device)
        elif text_states is None:
            raise UserError("give prompt (a list of captions) or text_states")
        self._check_text(text_states, text_mask, pooled)

        dtype = self.transformer.dtype
        text_states = text_states.to(device, dtype)
        text_mask = None if text_mask is None else text_mask.to(device).bool()
        pooled = None if pooled is None else pooled.to(device, dtype)
        c = self.transformer.config
        shape = (text_states.shape[0], c.in_channels, c.sample_size, c.sample_size)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise UserError(f"latents must have shape {list(shape)}, got {list(latents.shape)}")
        latents = latents.to(device, torch.float32)

        sigmas = np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps)
        self.scheduler.set_timesteps(sigmas=sigmas, device=device)
        for i, timestep in enumerate(self.progress_bar(self.scheduler.timesteps)):
            t = self.scheduler.sigmas[i].to(device, dtype)
            v = self.velocity(latents.to(dtype), t, text_states, text_mask, pooled, guidance_scale)
            latents = self.scheduler.step(v.float(), timestep, latents).prev_sample

        if output_type == "latent":
            images = latents
        else:
            images = self.decode(latents)
            if output_type in ("np", "pil"):
                images = images.permute(0, 2, 3, 1).cpu().numpy()
            if output_type == "pil":
                if images.shape[-1] not in (1, 3):
                    raise UserError(f"output_type 'pil' needs 1 or 3 image channels, got {images.shape[-1]}; "
                                    f"use 'pt' or 'np', or add a vae")
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)
