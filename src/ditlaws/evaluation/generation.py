"""One generation pass per split feeds every generation metric: FID, compositional accuracy, CLIP score, grids.

Sampling dominates the cost of these metrics, so the images are drawn once: as many as the most demanding
metric asks for, and each metric reads the first n of them. A sample's starting noise is seeded by its id
(``samples.generate``), so the first n images are the same whichever metrics share the pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import torch

from ditlaws.evaluation.frechet import FeatureStats
from ditlaws.evaluation.samples import generate, save_grid


class FidMeter:
    """Fréchet distance of the generated images' features to a real reference."""

    def __init__(self, extractor, reference: FeatureStats, info: dict):
        self.extractor, self.reference, self.info = extractor, reference, info
        self.stats = FeatureStats(extractor=extractor.name)

    def update(self, images: torch.Tensor, captions: list[str]) -> None:
        self.stats.update(self.extractor(images))

    def result(self) -> dict:
        floor = self.reference.floor or {}
        return {"fid": self.stats.frechet_distance(self.reference), "feature_extractor": self.extractor.name,
                "n_generated": self.stats.n, "n_reference": self.reference.n, "fid_floor": floor.get("fid"),
                "fid_floor_from": floor.get("against") or floor.get("note"), **self.info}


class GridMeter:
    """A PNG grid of the first images with their captions."""

    def __init__(self, path: Path):
        self.path, self.images, self.captions = path, [], []

    def update(self, images: torch.Tensor, captions: list[str]) -> None:
        self.images.append(images)
        self.captions += list(captions)

    def result(self) -> dict:
        grid = save_grid(torch.cat(self.images), self.captions, self.path)
        return {"grid": str(grid), "captions": str(grid.with_suffix(".json")), "n": len(self.captions)}


def run_generation(pipeline, batches: Iterable[dict], meters: dict[str, tuple[object, int]], *,
                   num_inference_steps: int, guidance_scale: float, seed: int) -> tuple[dict, dict, int]:
    """Generate once for all ``meters`` ({name: (meter, n images)}); returns ({name: result}, {name: seconds},
    images generated). The timing of each metric excludes the shared generation, reported as ``generate``."""
    total = max(n for _, n in meters.values())
    seen = dict.fromkeys(meters, 0)
    seconds = dict.fromkeys(meters, 0.0)
    started, generated = time.perf_counter(), 0
    for chunk in generate(pipeline, batches, num_samples=total, num_inference_steps=num_inference_steps,
                          guidance_scale=guidance_scale, seed=seed):
        generated += len(chunk["caption"])
        for name, (meter, n) in meters.items():
            take = min(n - seen[name], len(chunk["caption"]))
            if take > 0:
                tick = time.perf_counter()
                meter.update(chunk["images"][:take], chunk["caption"][:take])
                seconds[name] += time.perf_counter() - tick
                seen[name] += take
    results = {}
    for name, (meter, _) in meters.items():
        tick = time.perf_counter()
        results[name] = {**meter.result(), "num_inference_steps": num_inference_steps,
                         "guidance_scale": guidance_scale, "seed": seed}
        seconds[name] += time.perf_counter() - tick
    seconds["generate"] = time.perf_counter() - started - sum(seconds.values())
    return results, seconds, generated
