"""Compositional accuracy against ground truth: captions parse exactly, a perfect image scores 1, an image with a
wrong colour / position / shape scores that attribute at its chance level, and the chance levels are right."""

import copy
import json

import numpy as np
import pytest
import torch
from eval_helpers import eval_args, evaluate_dit, train_tiny_run

from ditlaws.data import builtin
from ditlaws.errors import UserError
from ditlaws.evaluation import generation
from ditlaws.evaluation.accuracy import KEYS, Accuracy, caption_tables, chance, parse_caption, scene_reading, score


def scenes(n, split="val", complexity=2, seed=0):
    return [builtin.sample_scene(seed, split, i, complexity) for i in range(n)]


def captions_of(scenes_):
    return [builtin.caption_scene(s) for s in scenes_]


def rates(tables, reading) -> dict:
    got = score(tables, reading)
    return {k: float(got[k].sum()) / float(got["objects"].sum()) for k in KEYS}


# corruptions of a scene that keep everything but one attribute, drawn independently of the caption
def recolour(scene, rng, palette):
    scene = copy.deepcopy(scene)
    for obj in scene["objects"]:
        obj["colour"] = int(rng.choice(palette))
    return scene


def move(scene, rng, palette):
    scene = copy.deepcopy(scene)
    for obj, cell in zip(scene["objects"], rng.choice(len(builtin.CELLS), len(scene["objects"]), replace=False)):
        obj["cell"] = int(cell)
    return scene


def reshape(scene, rng, palette):
    scene = copy.deepcopy(scene)
    for obj in scene["objects"]:
        obj["shape"] = int(rng.integers(len(builtin.SHAPES)))
    return scene


@pytest.mark.parametrize("split", ["val", "ood"])
def test_captions_parse_back_to_the_scene(split):
    for scene in scenes(300, split, complexity=4):
        objects = parse_caption(builtin.caption_scene(scene))
        assert objects == [{k: o[k] for k in ("shape", "colour", "size", "cell")} for o in scene["objects"]]


@pytest.mark.parametrize("caption", ["a photo of a cat", "a small red circle at the top left and a dog",
                                     "a small red circle at the middle", ""])
def test_other_captions_are_refused(caption):
    with pytest.raises(UserError, match="not a caption of the built-in set"):
        parse_caption(caption)


def test_chance_is_the_pairwise_score_of_other_scenes_and_matches_the_closed_form():
    tables = caption_tables(captions_of(scenes(40)))
    reading = scene_reading(tables)
    # the matrix form equals scoring every caption against every other perfect scene with as many objects
    count = (tables["cell"] >= 0).sum(1)
    pairs = [(i, j) for i in range(40) for j in range(40) if i != j and count[i] == count[j]]
    rows, partners = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    looped = rates({k: v[rows] for k, v in tables.items()}, {k: v[partners] for k, v in reading.items()})
    assert chance(tables) == pytest.approx(looped, rel=1e-12)
    # one object per image: an unrelated scene's object sits in the captioned cell with p = 1/9, has the captioned
    # colour with p = 1/7 (in-domain palette) or 1/4 (out of domain), the captioned shape with p = 1/4
    for split, colours in (("val", 7), ("ood", 4)):
        got = chance(caption_tables(captions_of(scenes(512, split, complexity=1))))
        expected = {"accuracy_position": 1 / 9, "accuracy_colour": 1 / colours, "accuracy_shape": 1 / 4,
                    "accuracy": 1 / (9 * colours * 4)}
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=0.05, abs=2e-3), (split, key)


@pytest.mark.parametrize("split", ["val", "ood"])
def test_a_perfect_reading_scores_one_and_a_wrong_attribute_scores_chance(split):
    rng = np.random.default_rng(0)
    truth = scenes(512, split)
    tables = caption_tables(captions_of(truth))
    base = chance(tables)
    assert rates(tables, scene_reading(tables)) == dict.fromkeys(KEYS, 1.0)
    palette = builtin.OOD_COLOURS if split == "ood" else builtin.IN_DOMAIN_COLOURS
    for corrupt, key in ((recolour, "accuracy_colour"), (move, "accuracy_position"), (reshape, "accuracy_shape")):
        wrong = caption_tables(captions_of([corrupt(s, rng, palette) for s in truth]))
        got = rates(tables, scene_reading(wrong))
        assert got[key] == pytest.approx(base[key], abs=0.04), (corrupt.__name__, got, base)
        assert got["accuracy"] < 0.3  # most objects are no longer drawn as captioned
        untouched = [k for k in KEYS[1:] if k != key]
        assert all(got[k] == 1.0 for k in untouched)  # the other attributes are still right


def test_extra_objects_do_not_buy_colour_or_shape():
    # drawing an object in every cell gets position for free but colour and shape only as matched one to one
    tables = caption_tables(["a small red circle at the top left"])
    everything = {"occupied": torch.ones(1, 9, dtype=torch.bool), "shape": torch.full((1, 9), 1),
                  "colour": torch.full((1, 9), 2)}
    got = score(tables, everything)
    assert got["accuracy_position"].item() == 1 and got["accuracy_colour"].item() == 0
    assert got["accuracy_shape"].item() == 0 and got["extra_objects"].item() == 8


@pytest.fixture(scope="module")
def feature_net():
    """A briefly trained feature network at 16 px (about 20 s on one thread)."""
    from ditlaws.feature_net.train import train_feature_net

    net, held_out = train_feature_net(steps=400, batch_size=32, resolution=16, complexity=2, lr=3e-3, seed=0,
                                      progress=False)
    return net


def render(scenes_, resolution=16):
    pixels = np.stack([builtin.render_scene(s, resolution) for s in scenes_])
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1


@pytest.mark.slow
def test_feature_network_reads_real_images_as_captioned_and_corrupted_ones_at_chance(feature_net):
    rng = np.random.default_rng(1)
    truth = scenes(512)
    captions = captions_of(truth)
    results = {}
    for name, corrupt in (("real", None), ("colour", recolour), ("position", move)):
        meter = Accuracy(feature_net)
        shown = truth if corrupt is None else [corrupt(s, rng, builtin.IN_DOMAIN_COLOURS) for s in truth]
        images = render(shown)
        for i in range(0, len(images), 128):
            meter.update(images[i : i + 128], captions[i : i + 128])
        results[name] = meter.result()
    real, chance_ = results["real"], results["real"]["chance"]
    assert real["accuracy_position"] > 0.97 and real["accuracy_colour"] > 0.95
    assert real["extra_objects_per_image"] < 0.05
    assert results["colour"]["accuracy_position"] > 0.97
    assert results["colour"]["accuracy_colour"] == pytest.approx(chance_["accuracy_colour"], abs=0.06)
    assert results["position"]["accuracy_colour"] > 0.95
    assert results["position"]["accuracy_position"] == pytest.approx(chance_["accuracy_position"], abs=0.06)
    assert results["colour"]["accuracy"] < 0.5 * real["accuracy"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"))


def test_cli_accuracy_shares_one_generation_with_fid_and_samples(run_dir, tmp_path, monkeypatch):
    calls = []
    original = generation.generate
    monkeypatch.setattr(generation, "generate", lambda *a, **k: calls.append(k["num_samples"]) or original(*a, **k))
    out = tmp_path / "e.json"
    args = eval_args(run_dir, "--metrics", "fid,accuracy,samples", "--splits", "val,ood", "--accuracy-samples", "6",
                     "--out", str(out))
    assert evaluate_dit.main(args) == 0
    assert calls == [8, 8]  # one pass per split: max(fid 8, accuracy 6, grid 4)
    report = json.loads(out.read_text())
    summary = report["summary"]
    for prefix in ("", "ood_"):
        assert {f"{prefix}{k}" for k in KEYS} <= set(summary)
        assert all(0 <= summary[f"{prefix}{k}"] <= 1 for k in KEYS)
        assert set(summary[f"{prefix}accuracy_chance"]) == set(KEYS)
    assert summary["accuracy_chance"]["accuracy_colour"] < summary["ood_accuracy_chance"]["accuracy_colour"]
    val = report["results"]["val"]
    assert val["accuracy"]["n_images"] == 6 and val["fid"]["n_generated"] == 8 and val["samples"]["n"] == 4
    assert val["accuracy"]["real_images"]["n_images"] == 6  # the reader's ceiling on the split's real images
    assert {"val/generate", "val/fid", "val/accuracy", "val/samples"} <= set(report["timing_s"])
