"""What goes into a run's model repo, and the one loader of a stored model (safetensors only).

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
from pathlib import Path

from ditlaws.errors import UserError
from ditlaws.store.layout import PIPELINE_PARTS, check_safetensors, model_files


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


def stage_model_repo(model_dir: str | Path, into: Path, *, data_config=None,
                     train_config: str | None = None) -> Path:
    """The model repo's folder staged in `into`: the transformer's files, the DiTPipeline parts beside them and
    the shipped config; a store's `put_model(run_id, into, card=...)` takes it from there."""
    for name, path in model_files(model_dir).items():
        shutil.copy2(path, into / name)
    pipeline_files(model_dir, data_config, into)
    if train_config is not None:
        (into / "train_config.yaml").write_text(train_config)
    return into


def load_kept_model(store, run_id: str, *, study: str | None = None, revision: str | None = None):
    """The kept model of a run from any store (`fetch_model`: safetensors only), loaded as its DiT class."""
    return load_model_folder(store.fetch_model(run_id, study=study, revision=revision))
