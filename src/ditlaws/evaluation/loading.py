"""Find what to evaluate: a training run folder, a diffusers model folder, or a Hub model repo; and its data."""

from __future__ import annotations

import json
from pathlib import Path

from ditlaws.errors import UserError

CONFIG_ROOT = Path(__file__).resolve().parents[3] / "configs" / "data"


def resolve_checkpoint(checkpoint: str) -> tuple[Path, Path | None]:
    """(model folder, run folder or None). A run folder holds model/ (+ config.yaml, summary.json)."""
    path = Path(checkpoint)
    if not path.exists():
        if checkpoint.count("/") != 1 or checkpoint.startswith((".", "/")):
            raise UserError(f"--checkpoint {checkpoint}: no such folder, and not a Hub repo id (owner/name)")
        from huggingface_hub import snapshot_download

        try:
            path = Path(snapshot_download(checkpoint, repo_type="model"))
        except Exception as err:  # offline, missing repo, no access: all mean "cannot get it"
            raise UserError(f"--checkpoint {checkpoint}: cannot download the Hub model repo "
                            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
    if (path / "model" / "config.json").is_file():
        return path / "model", path
    if (path / "config.json").is_file():
        run = path.parent if (path.parent / "config.yaml").is_file() else None
        return path, run
    raise UserError(f"--checkpoint {checkpoint}: neither a run folder (with model/config.json) nor a diffusers model "
                    f"folder (with config.json)")


def load_model(model_dir: Path):
    from ditlaws.models import MODEL_FAMILIES

    class_name = json.loads((model_dir / "config.json").read_text()).get("_class_name")
    classes = {cls.__name__: cls for cls in MODEL_FAMILIES.values()}
    if class_name not in classes:
        raise UserError(f"{model_dir / 'config.json'}: _class_name {class_name!r} is not a ditlaws DiT; "
                        f"valid: {', '.join(classes)}")
    return classes[class_name].from_pretrained(model_dir)


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
