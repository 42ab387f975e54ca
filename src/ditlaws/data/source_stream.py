"""Batches of a real source for one rank, read without a cache: epochs, counting, and a clear stop when empty.

Epochs are driven from this process: each epoch is one finite pass over this rank's part (`sources.source_split`),
read directly or through a DataLoader whose workers each take whole source shards and hand back single decoded
samples (a worker with no shard simply finishes). Here the unusable rows are dropped and counted and the rest are
batched; batches run on across epoch boundaries, so every training batch is full. "train" repeats, reshuffled per
epoch (`set_epoch`); "val" is one ordered pass. An epoch without a single usable row stops the stream with a
`UserError` naming the source and the rows read and skipped, instead of looping over empty epochs forever.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterator

import torch

from ditlaws.data import sources
from ditlaws.errors import UserError

logger = logging.getLogger(__name__)


def _single(sample):  # DataLoader(batch_size=None) collate: keep the sample as it is (numpy pixels, strings)
    return sample


class SourceStream:
    def __init__(self, data_cfg, split: str, batch_size: int, rank: int, world_size: int, seed: int,
                 num_workers: int, collate):
        self.data_cfg, self.split, self.batch_size = data_cfg, split, batch_size
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.part = sources.source_split(data_cfg, split, rank, world_size, seed=seed, keep_bad=True)
        self.collate = collate  # samples -> a batch (ditlaws.data.loader.collate_samples)

    def _epoch(self, epoch: int) -> Iterator[dict]:
        dataset = self.part.dataset
        dataset.set_epoch(epoch)
        workers = min(self.num_workers, dataset.num_shards)  # a worker takes whole shards: more would idle
        if workers == 0:
            return iter(dataset)
        return iter(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_single))

    def __iter__(self) -> Iterator[dict]:
        pending: list[dict] = []
        for epoch in itertools.count():
            seen, skipped = 0, Counter()
            for sample in self._epoch(epoch):
                seen += 1
                if sample["skip"]:
                    skipped[sample["skip"]] += 1
                    continue
                pending.append(sample)
                if len(pending) == self.batch_size:
                    yield self.collate(pending)
                    pending = []
            if seen == sum(skipped.values()) and (self.split == "train" or self.world_size == 1):
                raise UserError(self.empty_message(seen, skipped))
            if epoch == 0 and skipped:
                logger.warning("data.source %s (%s split%s): skipped %d of %d rows (%s)",
                               sources.describe(self.data_cfg), self.split, self._rank_text(),
                               sum(skipped.values()), seen, _reasons(skipped))
            if self.split != "train":
                break
        if pending:
            yield self.collate(pending)

    def _rank_text(self) -> str:
        return f", rank {self.rank} of {self.world_size}" if self.world_size > 1 else ""

    def empty_message(self, seen: int, skipped: Counter) -> str:
        what = "training" if self.split == "train" else "validation"
        counts = f"{seen} rows read, {sum(skipped.values())} skipped" + (f": {_reasons(skipped)}" if skipped else "")
        held, hint = self.part.range.held_out, "point data.source / data.data_files at more (or decodable) data"
        if self.split == "train" and held is not None:
            counts += f", after the first {held} rows held out for validation (data.val_size {self.data_cfg.val_size})"
            hint = "lower data.val_size, set data.val_split, or add data"
        return f"data.source {sources.describe(self.data_cfg)}: no usable {what} rows{self._rank_text()} " \
               f"({counts}); {hint}"


def _reasons(skipped: Counter) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items()))
