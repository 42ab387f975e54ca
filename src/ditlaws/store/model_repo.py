"""What goes into a run's model repo, and the store's one model loader (safetensors only).

A model repo `<org>/<study>-<run_id>` holds the transformer at its root (config.json + safetensors, so
`InContextDiT.from_pretrained(repo)` works) and the rest of a `DiTPipeline` beside it (model_index.json, scheduler/,
and text_encoder/ for the built-in text encoder): diffusers loads a component without a folder of its own from the
repo root, so `DiTPipeline.from_pretrained(repo)` works too without a second copy of the weights. Pickle weights
are never pushed and never loaded.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ditlaws.errors import UserError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
PIPELINE_PARTS = ("model_index.json", "pipeline.py", "scheduler", "text_encoder")


def check_safetensors(names: Iterable[str], where: str) -> None:
    """A model must come as safetensors: a folder or repo with only pickle weights is refused."""
    names = [str(n) for n in names]
    if any(n.endswith(".safetensors") for n in names):
        return
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise UserError(f"{where}: only pickle weights ({', '.join(pickles[:3])}); ditlaws loads safetensors only")
    raise UserError(f"{where}: no model weights (*.safetensors)")


def model_files(model_dir: str | Path) -> dict[str, Path]:
    """The transformer's files (path in repo -> local file): config.json and the safetensors weights (+ index)."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: not a diffusers model folder (no config.json)")
    names = [p.name for p in folder.iterdir() if p.is_file()]
    check_safetensors(names, str(folder))
    return {name: folder / name for name in sorted(names)
            if name == "config.json" or name.endswith((".safetensors", ".safetensors.index.json"))}


def load_model_folder(folder: str | Path):
    """Load a ditlaws DiT from a diffusers model folder, safetensors only."""
    from ditlaws.models import MODEL_FAMILIES

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: not a diffusers model folder (no config.json)")
    check_safetensors((p.name for p in folder.iterdir()), str(folder))
    class_name = json.loads((folder / "config.json").read_text()).get("_class_name")
    classes = {cls.__name__: cls for cls in MODEL_FAMILIES.values()}
    if class_name not in classes:
        raise UserError(f"{folder / 'config.json'}: _class_name {class_name!r} is not a ditlaws DiT; "
                        f"valid: {', '.join(sorted(classes))}")
    return classes[class_name].from_pretrained(folder, use_safetensors=True)


def pipeline_files(model_dir: str | Path, data_config, into: Path) -> dict[str, Path]:
    """model_index.json, scheduler/ and (built-in encoder) text_encoder/ of the run's DiTPipeline, written by
    diffusers' own save_pretrained into `into`; the transformer itself stays at the repo root."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ditlaws.pipeline import DiTPipeline

    text_encoder = None
    if data_config is not None and data_config.text_encoder == "builtin":
        from ditlaws.data.encoders import build_text_encoder

        text_encoder = build_text_encoder(data_config)
    pipe = DiTPipeline(transformer=load_model_folder(model_dir), scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
                       text_encoder=text_encoder)
    with tempfile.TemporaryDirectory(dir=into) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        for part in PIPELINE_PARTS:
            src = Path(tmp) / part
            if src.is_dir():
                shutil.copytree(src, into / part)
            elif src.is_file():
                shutil.copy2(src, into / part)
    return {str(p.relative_to(into)): p for p in sorted(into.rglob("*")) if p.is_file()}


def stage_model_repo(model_dir: str | Path, into: Path, *, card: str | None = None, data_config=None,
                     train_config: str | None = None) -> dict[str, Path]:
    """Every file of the model repo (path in repo -> local file), staged under `into`."""
    files = model_files(model_dir)
    files.update(pipeline_files(model_dir, data_config, into))
    if card is not None:
        (into / "README.md").write_text(card)
        files["README.md"] = into / "README.md"
    if train_config is not None:
        (into / "train_config.yaml").write_text(train_config)
        files["train_config.yaml"] = into / "train_config.yaml"
    return files
