"""open_clip models for evaluation: image embeddings (FID features on real data) and the CLIP score.

CLIP score (Hessel et al. 2021, in torchmetrics' scale): 100 · max(cos(E_image(x), E_text(caption)), 0), averaged
over generated images and their prompts. For real image-text data, with open_clip ViT-L/14 and OpenAI's weights
(`ViT-L-14`, `openai`, fetched once from the Hub as safetensors). `model` may also be `local-dir:/path` (an
open_clip folder: open_clip_config.json + open_clip_model.safetensors), which is how the tests build a tiny one.
Weights are loaded from safetensors only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ditlaws.errors import UserError

CLIP_MODEL = "ViT-L-14"
CLIP_WEIGHTS = "openai"


@dataclass
class Clip:
    """An open_clip model with its tokenizer and image preprocessing (size, mean, std)."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images [B, 3, H, W] -> the model's normalised input (bicubic resize, antialiased)."""
        x = F.interpolate((images + 1) / 2, size=self.size, mode="bicubic", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x.clamp(0, 1) - mean) / std

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(self.preprocess(images.to(self.device, torch.float32)))

    @torch.no_grad()
    def embed_texts(self, captions: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(list(captions)).to(self.device))


def _check_safetensors(model: str, weights: str | None) -> None:
    if model.startswith("local-dir:"):
        folder = Path(model.removeprefix("local-dir:"))
        if not folder.is_dir() or not (folder / "open_clip_config.json").is_file():
            raise UserError(f"CLIP model {model}: not an open_clip folder (open_clip_config.json + weights)")
        if not list(folder.glob("*.safetensors")):
            raise UserError(f"CLIP model {model}: no .safetensors weights in {folder} (pickle weights are not "
                            "loaded; convert them with safetensors.torch.save_file)")
    file_like = weights is not None and (Path(weights).exists() or "/" in weights
                                         or weights.endswith((".safetensors", ".bin", ".pt", ".pth")))
    if file_like:
        if not weights.endswith(".safetensors"):
            raise UserError(f"CLIP weights {weights}: only .safetensors files are loaded (no pickles)")
        if not Path(weights).is_file():
            raise UserError(f"CLIP weights {weights}: file not found")


def load_clip(model: str = CLIP_MODEL, weights: str | None = None, device=None) -> Clip:
    """An open_clip model by name (with a pretrained tag or a .safetensors file) or from `local-dir:<folder>`."""
    import open_clip

    _check_safetensors(model, weights)
    pretrained = None if model.startswith("local-dir:") else (weights or CLIP_WEIGHTS)
    try:
        net = open_clip.create_model(model, pretrained=pretrained, device="cpu")
        tokenizer = open_clip.get_tokenizer(model)
    except Exception as err:  # download / cache / file / unknown-name errors all mean "no such model here"
        raise UserError(
            f"CLIP model {model} ({pretrained or 'folder weights'}): cannot load it ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Run once with network access so open_clip caches "
            "the weights, or pass a .safetensors file / local-dir: folder") from None
    cfg = open_clip.get_model_preprocess_cfg(net)
    size = cfg.get("size", 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    device = torch.device(device) if device is not None else torch.device("cpu")
    net = net.eval().requires_grad_(False).to(device)
    return Clip(name=f"{model}/{pretrained or 'local'}", model=net, tokenizer=tokenizer, size=size,
                mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), device=device)


class ClipScore:
    """Running CLIP score of (image, caption) pairs: 100 · max(cos, 0), mean and standard error over pairs."""

    def __init__(self, clip: Clip):
        self.clip, self.scores = clip, []

    def update(self, images: torch.Tensor, captions: list[str]) -> None:
        image = F.normalize(self.clip.embed_images(images).float(), dim=-1)
        text = F.normalize(self.clip.embed_texts(captions).float(), dim=-1)
        self.scores.append((100 * (image * text).sum(-1)).clamp(min=0).double().cpu())

    def result(self) -> dict:
        from ditlaws.evaluation.statistics import mean_and_sem

        scores = torch.cat(self.scores)
        mean, sem = mean_and_sem(scores)
        return {"clip_score": mean, "sem": sem, "n": scores.numel(), "clip_model": self.clip.name,
                "definition": "100 * max(cos(image, caption), 0), mean over generated images"}
