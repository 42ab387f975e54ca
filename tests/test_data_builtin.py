"""The built-in procedural set and its loader: determinism, splits, caption <-> pixels, rank arithmetic, resume."""

import itertools

import numpy as np
import pytest
import torch

from ditlaws.config import DataConfig
from ditlaws.data import builtin
from ditlaws.data.loader import build_dataset, make_dataloader
from ditlaws.errors import UserError


def take(loader, n):
    return list(itertools.islice(iter(loader), n))


def test_same_seed_same_bytes_other_seed_differs():
    a = [builtin.builtin_sample(7, "train", i, 32, 3) for i in range(20)]
    b = [builtin.builtin_sample(7, "train", i, 32, 3) for i in range(20)]
    c = [builtin.builtin_sample(8, "train", i, 32, 3) for i in range(20)]
    assert all(x["pixels"].tobytes() == y["pixels"].tobytes() and x["caption"] == y["caption"] for x, y in zip(a, b))
    assert sum(x["pixels"].tobytes() == z["pixels"].tobytes() for x, z in zip(a, c)) == 0


@pytest.mark.parametrize("resolution", [16, 64])
def test_resolution_and_dtype(resolution):
    sample = builtin.builtin_sample(0, "val", 3, resolution, 2)
    assert sample["pixels"].shape == (resolution, resolution, 3) and sample["pixels"].dtype == np.uint8


def test_train_val_ood_disjoint():
    cfg = DataConfig(val_size=64)
    train = {s["pixels"].tobytes() for s in itertools.islice(build_dataset(cfg, "train"), 300)}
    val = list(build_dataset(cfg, "val"))
    assert len(val) == 64 and len({s["id"] for s in val}) == 64
    assert not train & {s["pixels"].tobytes() for s in val}
    ood = list(build_dataset(cfg, "ood"))
    ood_colours = {c for s in ood for c in s["labels"]["colour"] if c >= 0}
    val_colours = {c for s in val for c in s["labels"]["colour"] if c >= 0}
    assert ood_colours <= set(builtin.OOD_COLOURS) and val_colours <= set(builtin.IN_DOMAIN_COLOURS)
    assert all(":" in s["caption"] for s in ood) and not any(":" in s["caption"] for s in val)


@pytest.mark.parametrize("split", ["train", "ood"])
def test_caption_matches_pixels(split):
    """Every object named in the caption is drawn: its colour sits at its centre, in the cell the caption names."""
    resolution = 64
    for index in range(40):
        scene = builtin.sample_scene(3, split, index, 3)
        pixels = builtin.render_scene(scene, resolution).astype(int)
        caption = builtin.caption_scene(scene)
        assert 1 <= len(scene["objects"]) <= 3
        for obj in scene["objects"]:
            colour = builtin.COLOUR_NAMES[obj["colour"]]
            for word in (colour, builtin.SHAPES[obj["shape"]], builtin.SIZES[obj["size"]], builtin.CELLS[obj["cell"]]):
                assert word in caption
            x, y = builtin.object_centre(obj, resolution)
            assert int(y // (resolution / 3)) * 3 + int(x // (resolution / 3)) == obj["cell"]
            assert np.abs(pixels[int(y), int(x)] - np.array(builtin.COLOURS[colour])).max() <= 12, (caption, obj)


def test_labels_match_caption_order():
    sample = builtin.builtin_sample(0, "train", 11, 32, 3)
    named = [w for w in sample["caption"].split() if w in builtin.SHAPES]
    assert named == [builtin.SHAPES[i] for i in sample["labels"]["shape"] if i >= 0]
    assert len(sample["labels"]["shape"]) == builtin.MAX_OBJECTS


def test_batch_layout_and_encoding():
    cfg = DataConfig(resolution=16, text_len=8, text_dim=16)
    batch = take(make_dataloader(cfg, "train", batch_size=4), 1)[0]
    assert batch["latent"].shape == (4, 3, 16, 16) and batch["latent"].dtype == torch.float32
    assert batch["latent"].min() >= -1 and batch["latent"].max() <= 1
    assert batch["text_states"].shape == (4, 8, 16) and batch["text_mask"].dtype == torch.bool
    assert batch["pooled"].shape == (4, 16) and len(batch["caption"]) == len(batch["id"]) == 4


def test_global_batch_does_not_depend_on_world_size():
    """1 process with batch 2b reads exactly the samples 2 processes with batch b read, step by step."""
    cfg = DataConfig(resolution=16)
    single = take(make_dataloader(cfg, "train", batch_size=4), 3)
    ranks = [take(make_dataloader(cfg, "train", batch_size=2, rank=r, world_size=2), 3) for r in range(2)]
    for step in range(3):
        joined = torch.cat([ranks[0][step]["latent"], ranks[1][step]["latent"]])
        assert torch.equal(single[step]["latent"], joined)
        assert single[step]["id"] == ranks[0][step]["id"] + ranks[1][step]["id"]


def test_resume_matches_uninterrupted_run_with_workers():
    cfg = DataConfig(resolution=16)
    full = take(make_dataloader(cfg, "train", batch_size=3, rank=1, world_size=2), 6)
    resumed = take(make_dataloader(cfg, "train", batch_size=3, rank=1, world_size=2, skip_batches=4), 2)
    assert [b["id"] for b in resumed] == [b["id"] for b in full[4:]]
    with_workers = take(make_dataloader(cfg, "train", batch_size=3, rank=1, world_size=2, num_workers=2), 6)
    assert [b["id"] for b in with_workers] == [b["id"] for b in full]
    assert torch.equal(with_workers[5]["latent"], full[5]["latent"])


@pytest.mark.parametrize("world_size", [2, 3])
def test_val_split_over_ranks_is_disjoint_and_complete(world_size):
    cfg = DataConfig(resolution=16, val_size=23)
    seen = []
    for rank in range(world_size):
        loader = make_dataloader(cfg, "val", batch_size=4, rank=rank, world_size=world_size)
        ids = [i for batch in loader for i in batch["id"]]
        assert len(loader) == -(-len(ids) // 4)
        seen += ids
    assert sorted(seen) == sorted(f"builtin-val-0-{i}" for i in range(23))


def test_bad_split_and_complexity_are_user_errors():
    with pytest.raises(UserError, match="split"):
        build_dataset(DataConfig(), "test")
    with pytest.raises(UserError, match="complexity"):
        build_dataset(DataConfig(complexity=12), "train")
