"""FID's reference statistics of real images, and their real-vs-real floor, computed (and cached) together.

The reference is the feature statistics of the split's first n real images. The floor is the Fréchet distance of
that reference to n *other* real images through the same extractor: what a generator that draws perfect samples
would measure at this sample count (FID's finite-sample bias alone; with the built-in 288-dimensional features and
n = 512 it is in the thousands, so a model's FID near it is as good as this evaluation can tell). The other images
are the split's next n when it holds 2n, else the first n of ``floor_images`` (the caller passes the training split,
the same distribution, for "val", and for the built-in "ood" the same shifted distribution drawn with another seed);
with neither the floor is absent and the note says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ditlaws.evaluation.frechet import FeatureStats


class _Images:
    """The pixels of a stream of batches, taken n images at a time: a batch split by one take starts the next."""

    def __init__(self, batches: Iterable[dict]):
        self.batches, self.left = iter(batches), None

    def take(self, extractor, n: int, stats: FeatureStats) -> FeatureStats:
        """Add the features of up to n more images to ``stats`` (reads no batch beyond them)."""
        while stats.n < n:
            if self.left is None:
                batch = next(self.batches, None)
                if batch is None:
                    break
                self.left = batch["pixels"]
            want = n - stats.n
            chunk, rest = self.left[:want], self.left[want:]
            self.left = rest if len(rest) else None
            if len(chunk):
                stats.update(extractor(chunk))
        return stats


def _take(extractor, batches: Iterable[dict], n: int, stats: FeatureStats) -> FeatureStats:
    return _Images(batches).take(extractor, n, stats)


def measure_floor(extractor, reference: FeatureStats, rest: _Images, n: int,
                  floor_images: Callable[[], Iterable[dict]] | None = None,
                  floor_from: str = "the training split") -> dict:
    """{"fid", "n", "against"} of n more real images against ``reference``, or {"fid": None, "note"}."""
    other = rest.take(extractor, n, FeatureStats(extractor=extractor.name))
    against = f"the split's images {n + 1}..{2 * n}"
    if other.n < n and floor_images is not None:
        other = _take(extractor, floor_images(), n, FeatureStats(extractor=extractor.name))
        against = f"the first {n} images of {floor_from}"
    if other.n < n:
        return {"fid": None, "n": n, "note": f"the split holds fewer than {2 * n} images and no other real images "
                                             f"were given, so the real-vs-real floor at n = {n} was not measured"}
    return {"fid": reference.frechet_distance(other), "n": n, "against": against}


def reference_stats(extractor, real_images: Callable[[], Iterable[dict]], n: int, cache: Path | None,
                    floor_images: Callable[[], Iterable[dict]] | None = None,
                    floor_from: str = "the training split") -> tuple[FeatureStats, bool]:
    """Feature statistics of the first n real images with their floor (``stats.floor``), cached (npz) when
    ``cache`` is given. A cache written before its floor could be measured (no floor, or none where
    ``floor_images`` now gives one) is recomputed (the statistics come out equal: the same images through the same
    extractor)."""
    if cache is not None and cache.is_file():
        stats = FeatureStats.load(cache)
        floor_missing = stats.floor is None or (stats.floor.get("fid") is None and floor_images is not None)
        if stats.n == n and stats.extractor == extractor.name and not floor_missing:
            return stats, True
    images = _Images(real_images())
    stats = images.take(extractor, n, FeatureStats(extractor=extractor.name))
    stats.floor = measure_floor(extractor, stats, images, n, floor_images, floor_from)
    if cache is not None:
        stats.save(cache)
    return stats, False
