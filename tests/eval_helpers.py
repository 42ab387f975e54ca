"""A tiny trained run and the evaluate_dit.py arguments that keep its evaluation to seconds (shared by the
evaluation CLI tests)."""

import io
import sys
from pathlib import Path

import torch
import yaml

from ditlaws.config import load_config
from ditlaws.feature_net import BuiltinFeatureNet
from ditlaws.training import train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import evaluate_dit  # noqa: E402, F401  (re-exported for the tests)

TINY = ["--model.depth", "2", "--model.width", "32", "--model.heads", "2", "--model.patch_size", "4",
        "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8", "--data.val_size", "8",
        "--train.global_batch", "8", "--train.steps", "3", "--train.mixed_precision", "no"]


def train_tiny_run(out: Path) -> Path:
    """A 3-step run in `out` (model/, config.yaml, summary.json) and an untrained feature network next to it."""
    train(load_config(None, [*TINY, "--train.output_dir", str(out)]))
    torch.manual_seed(0)
    BuiltinFeatureNet(resolution=16, width=8, feature_dim=16).save(out / "features.safetensors")
    return out


def eval_args(run_dir, *extra) -> list[str]:
    return ["--checkpoint", str(run_dir), "--batch-size", "4", "--loss-timesteps", "4", "--vlb-timesteps", "4",
            "--nll-samples", "2", "--nll-steps", "5", "--fid-samples", "8", "--sample-steps", "2",
            "--grid-samples", "4", "--accuracy-samples", "8", "--fid-weights", str(run_dir / "features.safetensors"),
            "--fid-stats-dir", str(run_dir / "stats"), "--device", "cpu", *extra]


def parquet_data(tmp_path, rows=10) -> Path:
    """A real image-text source (parquet) with the tiny run's geometry, and its data config."""
    from datasets import Dataset, Image
    from PIL import Image as PILImage

    def png(i):
        buffer = io.BytesIO()
        PILImage.new("RGB", (20, 16), (20 * i, 200 - 10 * i, 90)).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    ds = Dataset.from_dict({"image": [png(i) for i in range(rows)], "text": [f"a photo of thing {i}"
                                                                              for i in range(rows)]})
    ds.cast_column("image", Image()).to_parquet(str(tmp_path / "source.parquet"))
    config = {"data": {"source": "parquet", "data_files": str(tmp_path / "source.parquet"), "resolution": 16,
                       "text_dim": 16, "text_len": 8, "val_size": 6, "shuffle_buffer": 0}}
    (tmp_path / "real.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "real.yaml"
