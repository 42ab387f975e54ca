"""The training stream for one process: `ditlaws.data.make_dataloader` seen through the batch layout.

Batch k of a process holds global samples k·P·b + r·b + i (see ditlaws.data.loader), so with A accumulation
micro-steps, update s reads this process's batches s·A .. s·A + A - 1, and resuming at update s skips s·A batches.
The model's input geometry (channels, size, text length and width) is read off the first batch, which works the
same for on-the-fly encoding and for a prepared cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ditlaws.data.encoders import build_image_encoder, build_text_encoder
from ditlaws.data.loader import make_dataloader
from ditlaws.training.layout import BatchLayout


class TrainStream:
    def __init__(self, data_cfg, layout: BatchLayout, device=None):
        self.data_cfg, self.layout, self.device = data_cfg, layout, device
        # Frozen encoders (a VAE, a CLIP text model) load once, not once per loader; a prepared cache needs none.
        self.encoders = {} if data_cfg.cache_dir else {"text_encoder": build_text_encoder(data_cfg),
                                                       "image_encoder": build_image_encoder(data_cfg)}
        first = next(iter(self._loader(skip=0)))
        _, channels, height, width = first["latent"].shape
        _, text_len, text_dim = first["text_states"].shape
        self.latent_shape = (channels, height, width)
        self.geometry = {"sample_size": height, "in_channels": channels, "text_len": text_len, "text_dim": text_dim}

    def _loader(self, skip: int):
        return make_dataloader(self.data_cfg, "train", batch_size=self.layout.micro_batch, rank=self.layout.rank,
                               world_size=self.layout.processes, skip_batches=skip, device=self.device,
                               **self.encoders)

    def source_rows(self) -> int | None:
        """Training rows of a finite source whose size is known up front (a prepared cache's manifest); None for
        the built-in set (infinite) and for a source streamed without a cache (its size is known only once read)."""
        if not self.data_cfg.cache_dir:
            return None
        from ditlaws.data.cache import read_manifest

        manifest = read_manifest(Path(self.data_cfg.cache_dir) / "train")
        return sum(int(s["rows"]) for s in manifest["shards"])

    def batches(self, skip: int = 0) -> Iterator[dict]:
        """This process's batches from its `skip`-th on (the built-in set never ends; a finite source may)."""
        return iter(self._loader(skip=skip))


def open_train_data(data_cfg, layout: BatchLayout, device=None) -> TrainStream:
    return TrainStream(data_cfg, layout, device=device)
