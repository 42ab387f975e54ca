"""CLIP score with open_clip: a tiny randomly initialised open_clip model built from a config (nothing downloads),
loaded the way ViT-L/14 is, scored against a direct computation; evaluate_dit.py --metrics clip on real data."""

import json

import pytest
import torch
import torch.nn.functional as F
from eval_helpers import eval_args, evaluate_dit, parquet_data, train_tiny_run
from safetensors.torch import save_file

from ditlaws.errors import UserError
from ditlaws.evaluation.clip import ClipScore, load_clip

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
MEAN, STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """An open_clip folder (open_clip_config.json + open_clip_model.safetensors) of a random tiny CLIP."""
    import open_clip

    folder = tmp_path_factory.mktemp("tiny_clip")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP,
                                                              "preprocess_cfg": {"mean": MEAN, "std": STD}}))
    torch.manual_seed(0)
    save_file(open_clip.CLIP(**TINY_CLIP).state_dict(), str(folder / "open_clip_model.safetensors"))
    return folder


def test_clip_score_matches_a_direct_computation(clip_dir):
    import open_clip

    clip = load_clip(f"local-dir:{clip_dir}")
    assert clip.size == (32, 32) and clip.mean == tuple(MEAN)
    images = torch.rand(5, 3, 20, 20, generator=torch.Generator().manual_seed(1)) * 2 - 1
    captions = ["a red circle", "a photo of a dog", "two blue squares", "", "a very long caption " * 10]
    meter = ClipScore(clip)
    meter.update(images[:2], captions[:2])
    meter.update(images[2:], captions[2:])
    got = meter.result()
    # by hand, on the same batches (so the same kernels run on the same shapes: equal bit for bit on any CPU): resize
    # to 32 px (bicubic, antialiased), normalise, cosine of the embeddings, 100 * max(cos, 0), mean in float64
    tokenizer = open_clip.get_tokenizer(f"local-dir:{clip_dir}")
    expected = []
    for part, texts in ((images[:2], captions[:2]), (images[2:], captions[2:])):
        x = F.interpolate((part + 1) / 2, size=(32, 32), mode="bicubic", antialias=True, align_corners=False)
        x = (x.clamp(0, 1) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
        with torch.no_grad():
            image = F.normalize(clip.model.encode_image(x), dim=-1)
            text = F.normalize(clip.model.encode_text(tokenizer(texts)), dim=-1)
        expected.append((100 * (image * text).sum(-1)).clamp(min=0).double())
    assert got["n"] == 5 and got["clip_score"] == float(torch.cat(expected).mean())
    assert 0 <= got["clip_score"] <= 100 and got["sem"] >= 0
    # Batching does not change the score beyond float32 rounding: one batch of 5 runs the matmuls on other shapes
    # (other blocking, other summation order). Measured (2026-12-07, AMD EPYC, torch 2.14.1; ATen AVX512 / AVX2 /
    # DEFAULT kernels, ONEDNN_MAX_CPU_ISA=AVX2, 1 and 2 threads): 2.9e-6 to 7.0e-6 points apart, 7e-8 in the cosine
    # (this random model's cosines are near 0, so relative differences look large: 1.3e-5). The tolerance is
    # absolute, 1e-4 points on the 0-100 scale: 14x the largest measured, far below any real difference.
    again = ClipScore(clip)
    again.update(images, captions)
    assert again.result()["clip_score"] == pytest.approx(got["clip_score"], abs=1e-4)


def test_clip_loads_safetensors_only(clip_dir, tmp_path):
    with pytest.raises(UserError, match="only .safetensors files are loaded"):
        load_clip("ViT-L-14", str(tmp_path / "open_clip_pytorch_model.bin"))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "open_clip_config.json").write_text((clip_dir / "open_clip_config.json").read_text())
    torch.save({}, pickled / "open_clip_pytorch_model.bin")
    with pytest.raises(UserError, match="no .safetensors weights"):
        load_clip(f"local-dir:{pickled}")
    with pytest.raises(UserError, match="file not found"):
        load_clip("ViT-L-14", str(tmp_path / "missing.safetensors"))
    with pytest.raises(UserError, match="CLIP model no-such-model .*cannot load it"):
        load_clip("no-such-model")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"))


def test_cli_clip_score_on_real_data(run_dir, clip_dir, tmp_path, capsys):
    data = parquet_data(tmp_path)
    out = tmp_path / "e.json"
    args = eval_args(run_dir, "--metrics", "clip,samples", "--clip-samples", "5", "--clip-model",
                     f"local-dir:{clip_dir}", "--data", str(data), "--out", str(out))
    assert evaluate_dit.main(args) == 0
    report = json.loads(out.read_text())
    assert 0 <= report["summary"]["clip_score"] <= 100 and set(report["summary"]) == {"clip_score"}
    clip = report["results"]["val"]["clip"]
    assert clip["n"] == 5 and clip["clip_model"].startswith("local-dir:")
    assert report["warnings"] == []
