"""Fréchet distance, running feature statistics, feature networks, and the `evaluate` metric module."""


import numpy as np
import pytest
import scipy.linalg
import torch

from ditlaws.errors import UserError
from ditlaws.evaluation import FID_METRIC_PATH
from ditlaws.evaluation.features import BuiltinFeatureNet, get_feature_extractor
from ditlaws.evaluation.frechet import FeatureStats, fid_from_features, frechet_distance


def _gaussian(n, mean, cov, seed):
    return np.random.default_rng(seed).multivariate_normal(mean, cov, size=n)


def test_identical_sets_give_zero():
    x = _gaussian(500, np.zeros(6), np.eye(6), 0)
    assert fid_from_features([x], [x]) == pytest.approx(0.0, abs=1e-9)


def test_closed_form_for_known_gaussians():
    a, b = np.diag([1.0, 2.0, 0.5]), np.array([[1.5, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.8]])
    mu_a, mu_b = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, -1.0])
    # the symmetric form equals the textbook sqrtm(S1 S2) form, and the diagonal-commuting closed form
    textbook = ((mu_a - mu_b) ** 2).sum() + np.trace(a + b - 2 * scipy.linalg.sqrtm(a @ b).real)
    assert frechet_distance(mu_a, a, mu_b, b) == pytest.approx(textbook, rel=1e-10)
    d1, d2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    commuting = 5 + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()
    assert frechet_distance([0, 0], np.diag(d1), [1, 2], np.diag(d2)) == pytest.approx(commuting)
    # and the estimate from samples converges to it (bias and noise O(dim / n))
    x, y = _gaussian(40000, mu_a, a, 1), _gaussian(40000, mu_b, b, 2)
    assert fid_from_features([x], [y]) == pytest.approx(textbook, abs=0.02)


def test_order_invariance_and_running_equals_one_shot():
    x, y = _gaussian(600, np.ones(5), np.eye(5), 3), _gaussian(700, np.zeros(5), 2 * np.eye(5), 4)
    one_shot = FeatureStats().update(x)
    running = FeatureStats()
    for chunk in np.array_split(x, [1, 7, 250, 251]):
        running.update(chunk)
    merged = FeatureStats().update(x[:300]).merge(FeatureStats().update(x[300:]))
    for stats in (running, merged):
        assert stats.n == 600
        np.testing.assert_allclose(stats.mean, one_shot.mean, rtol=1e-12)
        np.testing.assert_allclose(stats.cov, one_shot.cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(one_shot.cov, np.cov(x, rowvar=False), rtol=1e-10)
    shuffled = np.random.default_rng(0).permutation(x)
    assert fid_from_features([shuffled], [y]) == pytest.approx(fid_from_features([x], [y]), rel=1e-10)


def test_stats_roundtrip_without_pickle(tmp_path):
    x = _gaussian(100, np.zeros(4), np.eye(4), 5)
    stats = FeatureStats(extractor="builtin-cnn").update(x)
    stats.save(tmp_path / "ref.npz")
    loaded = FeatureStats.load(tmp_path / "ref.npz")
    assert loaded.n == 100 and loaded.extractor == "builtin-cnn"
    np.testing.assert_allclose(loaded.cov, stats.cov)
    with np.load(tmp_path / "ref.npz", allow_pickle=False) as data:
        assert set(data.files) == {"mu", "sigma", "n", "extractor"}
    other = FeatureStats(extractor="clip-vit-l-14").update(x)
    with pytest.raises(UserError, match="different extractors"):
        loaded.frechet_distance(other)
    (tmp_path / "bad.npz").write_text("nope")
    with pytest.raises(UserError, match="not a feature-statistics file"):
        FeatureStats.load(tmp_path / "bad.npz")


def test_feature_net_save_load_and_extractor(tmp_path):
    torch.manual_seed(0)
    net = BuiltinFeatureNet(resolution=16, width=8, feature_dim=32)
    net.save(tmp_path / "f.safetensors")
    extractor = get_feature_extractor("builtin-cnn", str(tmp_path / "f.safetensors"))
    images = torch.rand(5, 3, 24, 24) * 2 - 1  # each cell resampled to the net's 12 px crop
    feats = extractor(images)
    assert feats.shape == (5, 9 * 32) and feats.dtype == np.float64  # the 9 cells' embeddings
    np.testing.assert_allclose(feats, net.eval().features(images).detach().double().numpy(), rtol=1e-5, atol=1e-6)
    # a cell's embedding depends on that cell's pixels only
    changed = images.clone()
    changed[:, :, 2:6, 2:6] = 1.0  # inside the top-left cell (cells are 8 px here)
    cells, cells_changed = (net.cell_embeddings(x).detach() for x in (images, changed))
    assert not torch.allclose(cells[:, 0], cells_changed[:, 0]) and torch.equal(cells[:, 1:], cells_changed[:, 1:])
    with pytest.raises(UserError, match="python -m ditlaws.feature_net"):
        get_feature_extractor("builtin-cnn", str(tmp_path / "missing.safetensors"))
    with pytest.raises(UserError, match="valid: clip-vit-l-14, builtin-cnn"):
        get_feature_extractor("inception")


def test_feature_net_of_an_older_format_or_damaged_is_one_line(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    old = BuiltinFeatureNet(resolution=16, width=8, feature_dim=8)
    save_file(old.state_dict(), str(tmp_path / "old.safetensors"), metadata={"config": "{}"})  # no format tag
    with pytest.raises(UserError, match="older ditlaws .* retrain: python -m ditlaws.feature_net --out"):
        BuiltinFeatureNet.load(tmp_path / "old.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="not a builtin-cnn feature network"):
        BuiltinFeatureNet.load(tmp_path / "bad.safetensors")


def test_feature_training_learns_the_attributes():
    from ditlaws.feature_net.train import attribute_loss, scene_batch, train_feature_net

    net, accuracy = train_feature_net(steps=30, batch_size=16, resolution=16, complexity=2, lr=3e-3, progress=False)
    pixels, targets = scene_batch(range(10**8, 10**8 + 256), 16, 2)
    fresh = BuiltinFeatureNet(resolution=16)
    with torch.no_grad():
        trained_loss = attribute_loss(net, pixels, targets)[0]
        untrained_loss = attribute_loss(fresh, pixels, targets)[0]
    assert trained_loss < 0.6 * untrained_loss
    assert set(accuracy) == {"shape", "colour", "size"}


def test_clip_extractor_without_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="clip-vit-l-14.*--fid-features builtin-cnn"):
        get_feature_extractor("clip-vit-l-14", weights=str(tmp_path / "missing.safetensors"))


def test_evaluate_module_loads_offline_and_matches_the_library(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    metric = evaluate.load(str(FID_METRIC_PATH))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 0.5
    out = metric.compute(predictions=list(a), references=list(b))
    assert out["fid"] == pytest.approx(fid_from_features([a], [b]), rel=1e-12) and out["fid"] > 0.1
    assert out["feature_extractor"] == "features" and out["n_predictions"] == 40
