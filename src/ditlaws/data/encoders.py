"""Frozen encoders: captions -> (text_states, text_mask, pooled) and pixels in [-1, 1] <-> latents.

Text:  `BuiltinTextEncoder` (offline, deterministic, no download) or `TransformersTextEncoder` (CLIP / T5 / any
       transformers encoder by Hub id or path).
Image: `IdentityImageEncoder` (latents are the pixels) or `VAEImageEncoder` (a diffusers `AutoencoderKL`).
`build_text_encoder(data_cfg)` / `build_image_encoder(data_cfg)` pick one from a `DataConfig`.
"""

from __future__ import annotations

import hashlib
import re

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ditlaws.errors import UserError
from ditlaws.models.positional import sincos_sequence

PAD_ID, START_ID = 0, 1
_WORD = re.compile(r"[a-z0-9]+")


def word_bucket(word: str, vocab_size: int) -> int:
    """A stable id in [2, vocab_size) for a word (blake2b, so it is the same in every process and Python version)."""
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
    return 2 + int.from_bytes(digest, "little") % (vocab_size - 2)


class BuiltinTextEncoder(ModelMixin, ConfigMixin):
    """An offline text encoder: hashed lower-case words -> a fixed random embedding table + sin-cos positions.

    Each caption becomes `[<start>, w1, w2, ...]`, padded / truncated to `text_len`; the start token keeps at least
    one real token in every mask (also for the empty caption). `pooled` is the masked mean of the states. Nothing
    is trained here: the table is drawn from `seed`, so the same config gives the same tensors everywhere. It
    suffices for the built-in set, whose captions are short templates over a few dozen words: every word gets a
    distinct random vector and its position, and the DiT's trainable text projection and attention learn the
    composition ("red" + "circle" + "top left").
    """

    @register_to_config
    def __init__(self, vocab_size: int = 4096, text_dim: int = 64, text_len: int = 16, seed: int = 0):
        super().__init__()
        if vocab_size < 3 or text_dim < 2 or text_dim % 2 or text_len < 1:
            raise UserError("BuiltinTextEncoder needs vocab_size >= 3, an even text_dim >= 2 and text_len >= 1")
        generator = torch.Generator().manual_seed(seed)
        table = torch.randn(vocab_size, text_dim, generator=generator)
        table[PAD_ID] = 0.0
        self.register_buffer("embedding", table)
        self.register_buffer("positions", sincos_sequence(text_len, text_dim), persistent=False)
        self.requires_grad_(False)

    @property
    def text_dim(self) -> int:
        return self.config.text_dim

    @property
    def text_len(self) -> int:
        return self.config.text_len

    @property
    def name(self) -> str:
        c = self.config
        return f"builtin-hash(vocab={c.vocab_size},dim={c.text_dim},len={c.text_len},seed={c.seed})"

    def tokenize(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> (input_ids long [B, L], attention_mask bool [B, L])."""
        length, vocab = self.config.text_len, self.config.vocab_size
        ids = torch.full((len(captions), length), PAD_ID, dtype=torch.long)
        for row, caption in enumerate(captions):
            tokens = [START_ID] + [word_bucket(w, vocab) for w in _WORD.findall(caption.lower())]
            tokens = tokens[:length]
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids, ids != PAD_ID

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        positions = self.positions
        if positions.device.type == "meta" or positions.shape[0] != input_ids.shape[1]:  # e.g. after a meta-device load
            positions = sincos_sequence(input_ids.shape[1], self.config.text_dim)
        positions = positions.to(self.embedding.device)
        mask = attention_mask.to(torch.bool)
        states = (self.embedding[input_ids] + positions) * mask[..., None]
        pooled = states.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return states, mask, pooled

    @torch.no_grad()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(list(captions))
        return self(ids.to(self.embedding.device), mask.to(self.embedding.device))


class TransformersTextEncoder(nn.Module):
    """A frozen transformers encoder by Hub id or path: CLIP text (SD 1.x / 2.x), T5 encoder, or any AutoModel.

    states = last_hidden_state, mask = the tokenizer's attention mask, pooled = CLIP's pooler_output (its EOS token)
    when the model has one, else the masked mean of the states (T5 and others).
    """

    def __init__(self, path: str, text_len: int = 77, subfolder: str | None = None,
                 tokenizer_path: str | None = None, tokenizer_subfolder: str | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

        kwargs = {"subfolder": subfolder} if subfolder else {}
        try:
            config = AutoConfig.from_pretrained(path, **kwargs)
            model_cls = {"clip": CLIPTextModel, "clip_text_model": CLIPTextModel, "t5": T5EncoderModel,
                         "umt5": T5EncoderModel}.get(config.model_type, AutoModel)
            self.model = model_cls.from_pretrained(path, **kwargs).eval().requires_grad_(False)
            tok_kwargs = {"subfolder": tokenizer_subfolder} if tokenizer_subfolder else {}
            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or path, **tok_kwargs)
        except OSError as err:
            raise UserError(f"data.text_encoder: cannot load {path!r} ({str(err).splitlines()[0]})") from None
        self.path, self._text_len = path, text_len
        config = self.model.config
        self._text_dim = getattr(config, "hidden_size", None) or config.d_model

    @property
    def text_dim(self) -> int:
        return self._text_dim

    @property
    def text_len(self) -> int:
        return self._text_len

    @property
    def name(self) -> str:
        return f"transformers:{self.path}:{type(self.model).__name__}"

    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return encode_with_transformers(self.model, self.tokenizer, captions, self._text_len)


@torch.no_grad()
def encode_with_transformers(model, tokenizer, captions: list[str], text_len: int):
    """(states, mask, pooled) from a transformers text model; the one definition that training data and the
    sampling pipeline share, so a DiT is sampled with exactly the conditioning it was trained on."""
    tokens = tokenizer(list(captions), padding="max_length", max_length=text_len, truncation=True,
                       return_tensors="pt")
    device = next(model.parameters()).device
    ids, mask = tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
    out = model(input_ids=ids, attention_mask=mask)
    states = out.last_hidden_state.float()
    pooled = getattr(out, "pooler_output", None)
    if pooled is None or pooled.shape[-1] != states.shape[-1]:
        weights = mask[..., None].to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
    return states, mask.bool(), pooled.float()


class IdentityImageEncoder(nn.Module):
    """Latents are the pixels themselves (for small resolutions and the built-in set)."""

    latent_channels, downsample, scaling_factor, shift_factor, name = 3, 1, 1.0, 0.0, "identity"

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return pixels.float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.float().clamp(-1, 1)


class VAEImageEncoder(nn.Module):
    """A frozen diffusers AutoencoderKL: latents = (posterior - shift_factor) * scaling_factor.

    `encode` takes the posterior mean (deterministic, what we cache) unless `sample=True`, which draws from the
    posterior with the given generator.
    """

    def __init__(self, path: str, subfolder: str | None = None, sample: bool = False):
        from diffusers import AutoencoderKL  # here, not at the top: it costs every process ~1.5 s of imports

        super().__init__()
        kwargs = {"subfolder": subfolder} if subfolder else {}
        try:
            self.vae = AutoencoderKL.from_pretrained(path, **kwargs).eval().requires_grad_(False)
        except OSError as err:
            raise UserError(f"data.image_encoder: cannot load AutoencoderKL {path!r} "
                            f"({str(err).splitlines()[0]})") from None
        config = self.vae.config
        self.path, self.sample = path, sample
        self.latent_channels = config.latent_channels
        self.downsample = 2 ** (len(config.block_out_channels) - 1)
        self.scaling_factor = float(config.scaling_factor)
        self.shift_factor = float(config.shift_factor or 0.0)

    @property
    def name(self) -> str:
        return f"diffusers:{self.path}:AutoencoderKL"

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        param = next(self.vae.parameters())
        posterior = self.vae.encode(pixels.to(param.device, param.dtype)).latent_dist
        latents = posterior.sample(generator) if self.sample else posterior.mean
        return ((latents - self.shift_factor) * self.scaling_factor).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        param = next(self.vae.parameters())
        latents = latents.to(param.device, param.dtype) / self.scaling_factor + self.shift_factor
        return self.vae.decode(latents).sample.float().clamp(-1, 1)


def build_text_encoder(data_cfg) -> BuiltinTextEncoder | TransformersTextEncoder:
    if data_cfg.text_encoder == "builtin":
        return BuiltinTextEncoder(text_dim=data_cfg.text_dim, text_len=data_cfg.text_len, seed=data_cfg.text_seed)
    return TransformersTextEncoder(data_cfg.text_encoder, text_len=data_cfg.text_len,
                                   subfolder=data_cfg.text_encoder_subfolder,
                                   tokenizer_subfolder=data_cfg.tokenizer_subfolder)


def build_image_encoder(data_cfg) -> IdentityImageEncoder | VAEImageEncoder:
    if data_cfg.image_encoder == "identity":
        return IdentityImageEncoder()
    return VAEImageEncoder(data_cfg.image_encoder, subfolder=data_cfg.image_encoder_subfolder)
