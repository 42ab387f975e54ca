"""Train the built-in feature network on the built-in procedural set (once; CPU is enough, ~4 minutes).

    python -m ditlaws.feature_net [--out ~/.cache/ditlaws/features/builtin_cnn.safetensors] [--retrain]

It trains only when OUT holds no current network: none, a damaged file, an older format, or one trained with other
settings (they are recorded in the file). A current one is kept byte for byte, because new weights would make
every cached FID reference statistic and every FID measured so far incomparable; `--retrain` trains anew anyway.

It learns to name each grid cell's shape, colour and size (or "empty") from scenes of 1..3 objects drawn with a
seed of their own (disjoint from the data seeds used for training and evaluating DiTs), at the given resolution
and at half of it, with both the in-domain and the out-of-domain palette/background, so it reads everything the
captions of either split mention.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ditlaws.data import builtin
from ditlaws.errors import UserError, report
from ditlaws.feature_net.network import BuiltinFeatureNet, default_weights
from ditlaws.options import ArgumentParser, add_arguments, from_arguments, option
from ditlaws.paths import check_writable

FEATURE_DATA_SEED = 9_000_001  # not a seed any DiT run uses by default
HELD_OUT = range(10**8, 10**8 + 512)  # scene indices never used for training


@dataclass
class FeatureTrainConfig:
    out: str | None = option(None, help="where to write the safetensors (default: the cache, see ditlaws.paths)")
    steps: int = option(2000, help="optimizer steps", ge=1)
    batch_size: int = option(64, help="scenes per step", ge=1)
    resolution: int = option(32, help="image side the network reads", ge=8)
    complexity: int = option(3, help="most objects per training scene", ge=1, le=builtin.MAX_OBJECTS)
    lr: float = option(3e-3, help="peak learning rate (one-cycle schedule)", gt=0)
    seed: int = option(0, help="initialisation seed", ge=0)
    retrain: bool = option(False, help="train anew even when OUT holds a current network trained with these "
                                        "settings (new weights make earlier FIDs and cached statistics incomparable)")

    def training(self) -> dict:
        """The settings that determine the weights (recorded in the file)."""
        return {k: getattr(self, k) for k in ("steps", "batch_size", "resolution", "complexity", "lr", "seed")}


def scene_batch(indices, resolution: int, complexity: int, seed: int = FEATURE_DATA_SEED):
    """Images [B, 3, H, W] in [-1, 1] and per-cell targets [B, 3 (shape, colour, size), cells], 0 = empty cell.

    Every other group of four scenes is drawn at half the resolution (at least 16 px, the smallest data resolution)
    and resampled up, so the network reads small images, where shapes are a few pixels wide, as well as large ones."""
    low = max(16, resolution // 2)
    images, targets = [], []
    for index in indices:
        split = "ood" if index % 4 == 3 else "train"  # a quarter out-of-domain scenes
        scene = builtin.sample_scene(seed, split, int(index), complexity)
        side = low if (index // 4) % 2 else resolution
        pixels = torch.tensor(builtin.render_scene(scene, side)).permute(2, 0, 1).float()[None] / 127.5 - 1
        if side != resolution:
            pixels = F.interpolate(pixels, size=(resolution, resolution), mode="bilinear", align_corners=False)
        images.append(pixels[0])
        cells = np.zeros((3, len(builtin.CELLS)), dtype=np.int64)
        for obj in scene["objects"]:
            cells[:, obj["cell"]] = (obj["shape"] + 1, obj["colour"] + 1, obj["size"] + 1)
        targets.append(cells)
    return torch.stack(images), torch.from_numpy(np.stack(targets))


def attribute_loss(net: BuiltinFeatureNet, pixels, targets):
    """Summed cross-entropy of the three heads, and each head's per-cell accuracy."""
    logits = net(pixels)
    loss = sum(F.cross_entropy(lg.flatten(0, 1), targets[:, k].flatten()) for k, lg in enumerate(logits))
    accuracy = [(lg.argmax(-1) == targets[:, k]).float().mean().item() for k, lg in enumerate(logits)]
    return loss, accuracy


def train_feature_net(steps: int = 2000, batch_size: int = 64, resolution: int = 32, complexity: int = 3,
                      lr: float = 3e-3, seed: int = 0, progress: bool = True) -> tuple[BuiltinFeatureNet, dict]:
    """The trained network and its held-out per-cell accuracy {shape, colour, size}."""
    torch.manual_seed(seed)
    net = BuiltinFeatureNet(resolution=resolution)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    # 5 % warm-up; at least 1.5 steps of it, since torch's OneCycleLR divides by zero when pct_start·steps is 1
    warmup = min(0.9, max(0.05, 1.5 / steps))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=warmup)
    bar = tqdm(range(steps), desc="feature net", disable=not progress)
    for step in bar:
        pixels, targets = scene_batch(range(step * batch_size, (step + 1) * batch_size), resolution, complexity)
        loss, _ = attribute_loss(net, pixels, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    with torch.no_grad():
        _, accuracy = attribute_loss(net, *scene_batch(HELD_OUT, resolution, complexity))
    return net.requires_grad_(False), dict(zip(("shape", "colour", "size"), accuracy))


def reusable(path, training: dict | None = None) -> bool:
    """Whether `path` holds a feature network this ditlaws loads (and, given `training`, one trained with those
    settings; a file that does not record them is taken as current); says why not when it exists but does not."""
    if not Path(path).is_file():
        return False
    try:
        BuiltinFeatureNet.load(path)
    except UserError as err:
        print(f"retraining it: {err}", file=sys.stderr)
        return False
    recorded = BuiltinFeatureNet.training_of(path)
    if training is not None and recorded is not None and recorded != training:
        changed = ", ".join(f"{k} {recorded.get(k)} -> {v}" for k, v in training.items() if recorded.get(k) != v)
        print(f"retraining it: {path} was trained with other settings ({changed})", file=sys.stderr)
        return False
    return True


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m ditlaws.feature_net", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, FeatureTrainConfig)
    try:
        cfg = from_arguments(FeatureTrainConfig, parser.parse_args(argv), section="features")
        out = cfg.out or str(default_weights())
        check_writable(Path(out))
        if not cfg.retrain and reusable(out, cfg.training()):
            print(f"{out}: a current builtin-cnn network, kept (--retrain to train anew)")
            return 0
        net, accuracy = train_feature_net(cfg.steps, cfg.batch_size, cfg.resolution, cfg.complexity, lr=cfg.lr,
                                          seed=cfg.seed)
    except UserError as err:
        return report(err)
    net.save(out, training=cfg.training())
    print(f"wrote {out}; held-out per-cell accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
