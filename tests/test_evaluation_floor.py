"""FID's real-vs-real floor: measured with the reference statistics (same extractor, same sample count), cached
with them, and the fallback to other real images when the split is too small."""

import numpy as np
import pytest
import torch

from ditlaws.evaluation.frechet import FeatureStats, fid_from_features
from ditlaws.evaluation.reference import reference_stats


class Flatten:
    """A feature extractor that reads the pixels themselves (the identity features of the `evaluate` module)."""

    name = "flatten"

    def __call__(self, pixels: torch.Tensor) -> np.ndarray:
        return pixels.reshape(len(pixels), -1).double().numpy()


def _images(n: int, seed: int, batch: int = 7, shift: float = 0.0):
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 1, 2, 2))) + shift
    return lambda: ({"pixels": x[i:i + batch]} for i in range(0, n, batch))


def _flat(make):
    return torch.cat([b["pixels"] for b in make()]).reshape(-1, 4).numpy()


def test_floor_is_the_fid_of_the_next_n_images_of_the_split(tmp_path):
    split = _images(60, 0)
    stats, cached = reference_stats(Flatten(), split, 25, tmp_path / "ref.npz")
    x = _flat(split)
    assert not cached and stats.n == 25
    assert stats.floor["fid"] == pytest.approx(fid_from_features([x[:25]], [x[25:50]]), rel=1e-12)
    assert stats.floor["n"] == 25 and "26..50" in stats.floor["against"]
    np.testing.assert_allclose(stats.mean, x[:25].mean(0), rtol=1e-12)
    again, cached = reference_stats(Flatten(), split, 25, tmp_path / "ref.npz")
    assert cached and again.floor == stats.floor


def test_a_small_split_measures_its_floor_on_the_other_images_given():
    split, train = _images(30, 0), _images(40, 1)
    stats, _ = reference_stats(Flatten(), split, 25, None, floor_images=train)
    x, y = _flat(split), _flat(train)
    assert stats.floor["fid"] == pytest.approx(fid_from_features([x[:25]], [y[:25]]), rel=1e-12)
    assert "training split" in stats.floor["against"]
    alone, _ = reference_stats(Flatten(), split, 25, None)
    assert alone.floor["fid"] is None and "fewer than 50 images" in alone.floor["note"]


def test_a_cache_without_a_floor_is_recomputed_to_the_same_statistics(tmp_path):
    split = _images(60, 2)
    x = _flat(split)
    old = FeatureStats(extractor="flatten").update(x[:25])
    old.save(tmp_path / "ref.npz")  # as written before floors existed
    assert FeatureStats.load(tmp_path / "ref.npz").floor is None
    stats, cached = reference_stats(Flatten(), split, 25, tmp_path / "ref.npz")
    assert not cached and stats.floor["fid"] > 0
    np.testing.assert_allclose(stats.cov, old.cov, rtol=1e-12)
    assert FeatureStats.load(tmp_path / "ref.npz").floor == stats.floor


def test_a_cache_whose_floor_was_not_measured_is_redone_once_other_images_are_given(tmp_path):
    split, other = _images(30, 6), _images(40, 7)
    alone, _ = reference_stats(Flatten(), split, 25, tmp_path / "ref.npz")
    assert alone.floor["fid"] is None
    again, cached = reference_stats(Flatten(), split, 25, tmp_path / "ref.npz")
    assert cached and again.floor["fid"] is None  # nothing new to measure it with: the cache stands
    stats, cached = reference_stats(Flatten(), split, 25, tmp_path / "ref.npz", floor_images=other,
                                    floor_from="the ood split drawn with data.seed 1")
    assert not cached and stats.floor["against"] == "the first 25 images of the ood split drawn with data.seed 1"
    assert stats.floor["fid"] == pytest.approx(fid_from_features([_flat(split)[:25]], [_flat(other)[:25]]),
                                               rel=1e-12)
    np.testing.assert_allclose(stats.cov, alone.cov, rtol=1e-12)


def test_the_floor_is_near_zero_for_large_sets_and_grows_with_a_shift():
    same, _ = reference_stats(Flatten(), _images(8000, 3), 4000, None)
    assert same.floor["fid"] < 0.02  # bias O(dim / n) = O(4 / 4000) for unit Gaussians
    ref = FeatureStats(extractor="flatten").update(_flat(_images(4000, 4)))
    shifted = FeatureStats(extractor="flatten").update(_flat(_images(4000, 5, shift=1.0)))
    assert ref.frechet_distance(shifted) == pytest.approx(4.0, abs=0.3)  # ||mu1 - mu2||^2 = 4 x 1^2
