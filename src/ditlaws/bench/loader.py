"""The training data stream's samples/s at demo scale, against what one training step consumes."""

from __future__ import annotations

import itertools
import time


def loader_rate(data_cfg, batch_size: int, batches: int) -> dict:
    """samples/s of on-the-fly built-in data (draw + encode) through the training loader, after one warm-up batch."""
    from ditlaws.data.loader import make_dataloader

    iterator = iter(make_dataloader(data_cfg, "train", batch_size=batch_size))
    next(iterator)
    start = time.perf_counter()
    for _ in itertools.islice(iterator, batches):
        pass
    seconds = time.perf_counter() - start
    return {"batch": batch_size, "batches": batches, "samples_per_s": batches * batch_size / seconds}
