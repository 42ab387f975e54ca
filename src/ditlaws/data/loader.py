"""Datasets and data loaders: raw samples per rank (`build_dataset`) and encoded training batches (`make_dataloader`).

Which global sample a rank reads is fixed by index arithmetic, for the built-in set:
batch k of rank r (world size w, per-rank batch b) holds the global samples k·w·b + r·b + i, i < b.
So every optimiser step sees one contiguous block of the global stream, whatever the world size and gradient
accumulation: 1 process with batch 2b and 2 processes with batch b read the same samples, and resuming at batch k
is O(1). The prepared cache (`cache_dir`) is streamed from parquet shards, split by whole shards across ranks;
resuming there skips the consumed rows (whole epochs in O(1), the rest by reading).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import torch
from datasets import IterableDataset

from ditlaws.data import builtin
from ditlaws.errors import UserError

SPLITS = ("train", "val", "ood")


def global_index(local: int, rank: int, world_size: int, batch_size: int) -> int:
    """The global sample index of a rank's `local`-th sample (blocks of `batch_size` per rank per step)."""
    step, i = divmod(local, batch_size)
    return step * world_size * batch_size + rank * batch_size + i


def _builtin_generator(lane: list[int] | int, lanes: int, seed: int, split: str, resolution: int, complexity: int,
                       rank: int, world_size: int, batch_size: int, start_batch: int, limit: int | None):
    # One lane per DataLoader worker: lane l yields this rank's batches l, l + lanes, ... (whole batches, in order),
    # which torch's in-order round robin over workers turns back into batches 0, 1, 2, ...
    lane = lane[0] if isinstance(lane, list) else lane
    batch = start_batch + lane
    while True:
        for i in range(batch_size):
            g = global_index(batch * batch_size + i, rank, world_size, batch_size)
            if limit is not None and g >= limit:
                return
            sample = builtin.builtin_sample(seed, split, g, resolution, complexity)
            sample["index"] = g
            yield sample
        batch += lanes


def build_dataset(data_cfg, split: str = "train", rank: int = 0, world_size: int = 1, *, batch_size: int = 1,
                  start_batch: int = 0, lanes: int = 1, seed: int | None = None) -> IterableDataset:
    """Raw samples of this rank: {"pixels" uint8 [H, W, 3], "caption", "id", ...} as a `datasets.IterableDataset`.

    Built-in set: "train" is infinite; "val" and "ood" hold `data_cfg.val_size` samples, split disjointly and
    completely across ranks. Real sources: see `ditlaws.data.sources`.
    """
    if split not in SPLITS:
        raise UserError(f"data split {split!r} is not valid; choose one of {', '.join(SPLITS)}")
    if not 0 <= rank < world_size:
        raise UserError(f"rank {rank} is outside world size {world_size}")
    seed = data_cfg.seed if seed is None else seed
    if data_cfg.source != "builtin":
        from ditlaws.data.sources import build_source_dataset

        return build_source_dataset(data_cfg, split, rank, world_size, seed=seed)
    if data_cfg.complexity > builtin.MAX_OBJECTS:
        raise UserError(f"data.complexity is the most objects per image, 1..{builtin.MAX_OBJECTS}; "
                        f"got {data_cfg.complexity}")
    limit = None if split == "train" else data_cfg.val_size
    return IterableDataset.from_generator(
        _builtin_generator,
        gen_kwargs={"lane": list(range(lanes)), "lanes": lanes, "seed": seed, "split": split,
                    "resolution": data_cfg.resolution, "complexity": data_cfg.complexity, "rank": rank,
                    "world_size": world_size, "batch_size": batch_size, "start_batch": start_batch, "limit": limit},
    )


def collate_samples(samples: list[dict]) -> dict:
    """Raw samples -> {"pixels" float [B, 3, H, W] in [-1, 1], "caption", "id", ["labels": {name: long [B, K]}]}."""
    pixels = torch.from_numpy(np.stack([np.asarray(s["pixels"], dtype=np.uint8) for s in samples]))
    batch = {"pixels": pixels.permute(0, 3, 1, 2).float() / 127.5 - 1.0,
             "caption": [s["caption"] for s in samples], "id": [s["id"] for s in samples]}
    if "labels" in samples[0]:
        batch["labels"] = {k: torch.tensor([s["labels"][k] for s in samples]) for k in samples[0]["labels"]}
    return batch


class EncodedLoader:
    """Iterates a raw-sample DataLoader and encodes each batch with the frozen encoders (in this process)."""

    def __init__(self, loader, text_encoder, image_encoder, device=None, num_batches: int | None = None):
        self.loader, self.text_encoder, self.image_encoder = loader, text_encoder, image_encoder
        self.device, self.num_batches = device, num_batches

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("the training stream is infinite")
        return self.num_batches

    def __iter__(self) -> Iterator[dict]:
        for raw in self.loader:
            pixels = raw.pop("pixels")
            if self.device is not None:
                pixels = pixels.to(self.device)
            states, mask, pooled = self.text_encoder.encode(raw["caption"])
            raw.update(latent=self.image_encoder.encode(pixels), text_states=states, text_mask=mask, pooled=pooled)
            yield raw


def make_dataloader(data_cfg, split: str = "train", batch_size: int = 8, rank: int = 0, world_size: int = 1,
                    text_encoder=None, image_encoder=None, skip_batches: int = 0, seed: int | None = None,
                    device=None, num_workers: int | None = None):
    """Encoded batches {"latent", "text_states", "text_mask", "pooled", "caption", "id"} for this rank.

    `skip_batches=k` starts at this rank's batch k, exactly where an uninterrupted run would be after k batches.
    With `data_cfg.cache_dir` set, the batches come from the prepared parquet cache instead (already encoded).
    """
    if batch_size <= 0:
        raise UserError(f"batch size must be positive, got {batch_size}")
    if data_cfg.cache_dir:
        from ditlaws.data.cache import cached_loader

        return cached_loader(data_cfg, split, batch_size, rank, world_size, skip_batches=skip_batches, seed=seed,
                             device=device)
    from ditlaws.data.encoders import build_image_encoder, build_text_encoder

    text_encoder = text_encoder if text_encoder is not None else build_text_encoder(data_cfg)
    image_encoder = image_encoder if image_encoder is not None else build_image_encoder(data_cfg)
    workers = data_cfg.num_workers if num_workers is None else num_workers
    if data_cfg.source != "builtin":  # a real source without a cache: the training split repeats, reshuffled
        from ditlaws.data.source_stream import SourceStream

        stream = SourceStream(data_cfg, split, batch_size, rank, world_size, seed=data_cfg.seed if seed is None
                              else seed, num_workers=workers, collate=collate_samples)
        loader = _Skipped(stream, skip_batches) if skip_batches else stream  # resume by reading past them
        return EncodedLoader(loader, text_encoder, image_encoder, device=device)
    dataset = build_dataset(data_cfg, split, rank, world_size, batch_size=batch_size, start_batch=skip_batches,
                            lanes=max(1, workers), seed=seed)
    num_batches = None
    if split != "train":  # ceil over this rank's share of the fixed set
        share = sum(1 for j in range(data_cfg.val_size) if (j // batch_size) % world_size == rank)
        num_batches = max(0, -(-share // batch_size) - skip_batches)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                         collate_fn=collate_samples)
    return EncodedLoader(loader, text_encoder, image_encoder, device=device, num_batches=num_batches)


class _Skipped:
    def __init__(self, loader, count: int):
        self.loader, self.count = loader, count

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.count, None)
