"""Find what to evaluate: a training run folder, a diffusers model folder, or a Hub model repo; and its data.

Weights load from safetensors only (`use_safetensors=True`; a Hub download fetches no pickle files), and a model
folder is checked before use: its config.json must parse and name a ditlaws DiT, and its weights must be complete
and match the config (diffusers would otherwise initialise missing blocks at random, or drop extra ones, silently).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ditlaws.errors import UserError

CONFIG_ROOT = Path(__file__).resolve().parents[3] / "configs" / "data"
WEIGHTS = "diffusion_pytorch_model.safetensors"
PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
HUB_FILES = ["*.json", "*.safetensors", "*.yaml", "*.md"]  # what a Hub download fetches: never a pickle


def resolve_checkpoint(checkpoint: str) -> tuple[Path, Path | None]:
    """(model folder, run folder or None). A run folder holds model/ (+ config.yaml, summary.json)."""
    path = Path(checkpoint)
    if not path.exists():
        if checkpoint.count("/") != 1 or checkpoint.startswith((".", "/")):
            raise UserError(f"--checkpoint {checkpoint}: no such folder, and not a Hub repo id (owner/name)")
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(checkpoint, repo_type="model", allow_patterns=HUB_FILES))
        except Exception as err:  # offline, missing repo, no access: all mean "cannot get it"
            raise UserError(f"--checkpoint {checkpoint}: cannot download the Hub model repo "
                            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if not path.is_dir():
        raise UserError(f"--checkpoint {checkpoint}: a file, not a run folder or a diffusers model folder")
    if (path / "model" / "config.json").is_file():
        return path / "model", path
    if (path / "config.json").is_file():
        run = path.parent if (path.parent / "config.yaml").is_file() else None
        return path, run
    raise UserError(f"--checkpoint {checkpoint}: neither a run folder (with model/config.json) nor a diffusers model "
                    f"folder (with config.json)")


def read_model_config(model_dir: Path) -> dict:
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); the model folder is damaged") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); the model folder is damaged "
                        "(truncated?)") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: a model config must be a JSON object")
    return config


def check_weights(model_dir: Path) -> Path:
    """The folder's safetensors weights; pickle-only folders are refused."""
    weights = model_dir / WEIGHTS
    if weights.is_file() or (model_dir / f"{WEIGHTS}.index.json").is_file():
        return weights
    pickles = sorted(p.name for pattern in PICKLES for p in model_dir.glob(pattern))
    if pickles:
        raise UserError(f"{model_dir}: only pickle weights ({', '.join(pickles)}); ditlaws loads safetensors only "
                        f"(save the model with save_pretrained(..., safe_serialization=True))")
    raise UserError(f"{model_dir}: no {WEIGHTS} (the model folder holds no weights)")


def load_model(model_dir: Path):
    """The DiT in a diffusers model folder, checked (see the module docstring)."""
    from ditlaws.models import MODEL_FAMILIES

    model_dir = Path(model_dir)
    class_name = read_model_config(model_dir).get("_class_name")
    classes = {cls.__name__: cls for cls in MODEL_FAMILIES.values()}
    if class_name not in classes:
        raise UserError(f"{model_dir / 'config.json'}: _class_name {class_name!r} is not a ditlaws DiT; "
                        f"valid: {', '.join(classes)}")
    weights = check_weights(model_dir)
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "newly initialized" warnings become our one-line error below
    try:
        model, info = classes[class_name].from_pretrained(model_dir, use_safetensors=True, output_loading_info=True)
    except OSError:  # a truncated or damaged file
        raise UserError(f"{weights}: cannot read the weights (truncated or damaged file?)") from None
    except (ValueError, RuntimeError, TypeError) as err:  # a shape mismatch, a config key the class does not take
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        shapes = re.search(r"(\S+) expected shape (torch.Size\(\[[^]]*\]\)), but got (torch.Size\(\[[^]]*\]\))", text)
        if shapes:
            text = f"{shapes[1]} is {shapes[3]} in the weights, {shapes[2]} by the config"
        raise UserError(f"{model_dir / 'config.json'} does not match {weights.name}: {text[:160]}") from None
    finally:
        diffusers_logging.set_verbosity(verbosity)
    problems = {k: info.get(k) or [] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(problems.values()):
        detail = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {_key(v[0])})" for k, v in problems.items() if v)
        raise UserError(f"{model_dir / 'config.json'} does not match {weights.name}: {detail}")
    return model


def _key(entry) -> str:
    return entry[0] if isinstance(entry, tuple) else str(entry)


def load_data_config(data: str | None, run_dir: Path | None, overrides: list[str]):
    """The data section from --data (a YAML file or a name in configs/data/), else from the run's config.yaml."""
    from ditlaws.config import load_data_config as load_data_section

    if data is None:
        if run_dir is None or not (run_dir / "config.yaml").is_file():
            raise UserError("--data is required when the checkpoint has no run config.yaml next to it")
        path = run_dir / "config.yaml"
    else:
        path = Path(data)
        if not path.is_file():
            named = CONFIG_ROOT / f"{data}.yaml"
            if not named.is_file():
                names = sorted(p.stem for p in CONFIG_ROOT.glob("*.yaml"))
                raise UserError(f"--data {data}: not a file and not a config name; valid names: {', '.join(names)}")
            path = named
    return load_data_section(path, overrides)
