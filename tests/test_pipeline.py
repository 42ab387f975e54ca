"""DiTPipeline: exact Euler integration, classifier-free guidance, seeding, text encoders, save/load."""

import json

import pytest
import torch
from diffusers import AutoencoderKL, ConfigMixin, FlowMatchEulerDiscreteScheduler, ModelMixin
from diffusers.configuration_utils import register_to_config
from hub_server import hub_server  # noqa: F401  (the fixture)

from ditlaws.data.encoders import BuiltinTextEncoder
from ditlaws.errors import UserError
from ditlaws.models import build_model
from ditlaws.pipeline import DiTPipeline

TEXT_DIM, TEXT_LEN = 16, 6


class AnalyticVelocity(ModelMixin, ConfigMixin):
    """The exact rectified-flow velocity when the data is N(mu, std²) per pixel (std = 0: a point mass).

    x_t = (1 - t)·mu + sigma(t)·z with sigma(t)² = (1 - t)²·std² + t², so v(x, t) = -mu + sigma'/sigma·(x - (1 - t)·mu)
    and the ODE maps x_1 = z to x_0 = mu + std·z. The conditional mean is `mu_cond`, the null-text one `mu_null`.
    """

    @register_to_config
    def __init__(self, sample_size=4, in_channels=3, text_len=TEXT_LEN, text_dim=TEXT_DIM, mu_cond=0.5, mu_null=-0.5,
                 std=0.0):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(1))  # gives the module a dtype / device

    def forward(self, x_t, t, text_states, text_mask=None, pooled=None, drop_text=None):
        c = self.config
        mu = torch.full((x_t.shape[0],), c.mu_cond, dtype=x_t.dtype)
        if drop_text is not None:
            mu = torch.where(drop_text, torch.full_like(mu, c.mu_null), mu)
        mu, t = mu[:, None, None, None], t[:, None, None, None]
        sigma_sq = (1 - t) ** 2 * c.std**2 + t**2
        return -mu + (t - (1 - t) * c.std**2) / sigma_sq * (x_t - (1 - t) * mu)


def _text(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, TEXT_LEN, TEXT_DIM, generator=g)
    mask = torch.arange(TEXT_LEN)[None, :] < torch.tensor([[3], [TEXT_LEN]])[:batch]
    return states, mask, torch.randn(batch, TEXT_DIM, generator=g)


def _tiny_dit(family="in_context", seed=0):
    torch.manual_seed(seed)
    model = build_model(family, sample_size=8, in_channels=3, depth=2, text_dim=TEXT_DIM, text_len=TEXT_LEN)
    with torch.no_grad():  # move away from the zero-init output so samples depend on the weights
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _pipe(transformer, **components):
    pipe = DiTPipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), **components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_point_mass_is_reached_exactly_with_guided_mean(guidance):
    # v_uncond + g·(v_cond − v_uncond) is the velocity of the point mass at mu_null + g·(mu_cond − mu_null).
    pipe = _pipe(AnalyticVelocity(std=0.0))
    states, mask, pooled = _text()
    latents = pipe(text_states=states, text_mask=mask, num_inference_steps=7, guidance_scale=guidance,
                   generator=torch.Generator().manual_seed(0), output_type="latent").images
    target = -0.5 + guidance * (0.5 - -0.5)
    assert torch.allclose(latents, torch.full_like(latents, target), atol=1e-5)


def test_gaussian_data_endpoint_matches_the_analytic_flow_map():
    pipe = _pipe(AnalyticVelocity(std=0.7, mu_cond=0.3))
    states, mask, _ = _text()
    noise = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    exact = 0.3 + 0.7 * noise

    def error(steps):
        out = pipe(text_states=states, text_mask=mask, latents=noise, num_inference_steps=steps, guidance_scale=1.0,
                   output_type="latent").images
        return (out - exact).abs().max().item()

    coarse, fine = error(100), error(200)
    assert fine < 0.02
    assert 1.7 < coarse / fine < 2.3  # Euler is first order: twice the steps, half the error


@pytest.mark.parametrize("family", ["in_context", "cross_attn"])
def test_guidance_one_is_a_plain_conditional_euler_run(family):
    model = _tiny_dit(family)
    pipe = _pipe(model)
    states, mask, pooled = _text()
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    batch_sizes = []
    hook = model.register_forward_hook(lambda mod, args, out: batch_sizes.append(out.shape[0]))
    images = pipe(text_states=states, text_mask=mask, pooled=pooled, latents=noise, num_inference_steps=5,
                  guidance_scale=1.0).images
    hook.remove()
    assert batch_sizes == [2] * 5  # one conditional evaluation per step, no null branch

    x, ts = noise.clone(), torch.linspace(1.0, 0.0, 6)
    with torch.no_grad():
        for i in range(5):
            x = x + (ts[i + 1] - ts[i]) * model(x, ts[i].expand(2), states, mask, pooled)
    assert torch.allclose(images, (x / 2 + 0.5).clamp(0, 1), atol=1e-5)
    guided = pipe(text_states=states, text_mask=mask, pooled=pooled, latents=noise, num_inference_steps=5,
                  guidance_scale=4.0).images
    assert not torch.allclose(images, guided, atol=1e-3)


def test_same_seed_same_images_and_output_types():
    pipe = _pipe(_tiny_dit())
    states, mask, pooled = _text()

    def run(seed, **kw):
        return pipe(text_states=states, text_mask=mask, num_inference_steps=3,
                    generator=torch.Generator().manual_seed(seed), **kw).images

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert a.shape == (2, 3, 8, 8) and a.min() >= 0 and a.max() <= 1
    arr = run(0, output_type="np")
    assert arr.shape == (2, 8, 8, 3) and torch.allclose(torch.from_numpy(arr).permute(0, 3, 1, 2), a)
    pil = run(0, output_type="pil")
    assert len(pil) == 2 and pil[0].size == (8, 8)


def test_pipeline_with_builtin_text_encoder_round_trips(tmp_path):
    encoder = BuiltinTextEncoder(text_dim=TEXT_DIM, text_len=TEXT_LEN, seed=3)
    pipe = _pipe(_tiny_dit("cross_attn"), text_encoder=encoder)
    prompts = ["a red circle top left", "a small blue square"]
    images = pipe(prompts, num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images
    states, mask, pooled = encoder.encode(prompts)
    direct = pipe(text_states=states, text_mask=mask, pooled=pooled, num_inference_steps=3,
                  generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(images, direct)

    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["transformer"][1] == "CrossAttnDiT" and index["vae"] == [None, None]
    loaded = DiTPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    again = loaded(prompts, num_inference_steps=3, generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(images, again)


def _word_level_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "a", "red", "blue", "circle", "square", "small", "top", "left"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")


def test_pipeline_with_transformers_clip_and_vae_round_trips(tmp_path):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=10, hidden_size=TEXT_DIM, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=TEXT_LEN, pad_token_id=0,
                                        eos_token_id=1)).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                        latent_channels=3, norm_num_groups=4, sample_size=16).eval()
    pipe = _pipe(_tiny_dit(), text_encoder=clip, tokenizer=_word_level_tokenizer(tmp_path), vae=vae)
    prompts = ["a red circle", "small blue square top left zebra"]
    images = pipe(prompts, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert images.shape == (2, 3, 16, 16)  # the VAE upsamples the 8x8 latents by 2

    states, mask, pooled = pipe.encode_prompt(prompts)
    assert states.shape == (2, TEXT_LEN, TEXT_DIM) and mask.sum(1).tolist() == [3, 6] and pooled.shape == (2, TEXT_DIM)

    pipe.save_pretrained(tmp_path / "pipe")
    loaded = DiTPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    again = loaded(prompts, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(images, again)


def test_bad_inputs_are_user_errors():
    pipe = _pipe(_tiny_dit())
    states, mask, _ = _text()
    with pytest.raises(UserError, match="prompt"):
        pipe()
    with pytest.raises(UserError, match="text_encoder"):
        pipe(["a red circle"])
    with pytest.raises(UserError, match="text_states"):
        pipe(text_states=states[:, :-1])
    with pytest.raises(UserError, match="output_type"):
        pipe(text_states=states, output_type="jpeg")
    with pytest.raises(UserError, match="latents"):
        pipe(text_states=states, latents=torch.zeros(2, 3, 4, 4))


# ---- loading a saved pipeline in a fresh interpreter (nothing of ditlaws imported beforehand) -------------------
FRESH_LOAD = """
import sys
import torch
from safetensors.torch import save_file
where, how, out = sys.argv[1:4]
if how == "ditlaws":
    from ditlaws import DiTPipeline
    pipe = DiTPipeline.from_pretrained(where)
else:  # diffusers' own loader; a Hub repo through one snapshot (its download wants component code files)
    import diffusers
    if how == "diffusers-hub":
        from huggingface_hub import snapshot_download
        where = snapshot_download(where)
    pipe = diffusers.DiffusionPipeline.from_pretrained(where, trust_remote_code=True)
pipe.set_progress_bar_config(disable=True)
images = pipe(["a red circle top left"], num_inference_steps=3, guidance_scale=2.0,
              generator=torch.Generator().manual_seed(0)).images
save_file({"images": images.contiguous(), "cls": torch.tensor([type(pipe).__module__ == "ditlaws.pipeline"])}, out)
"""


def _load_in_fresh_process(where, how, tmp_path, env=None):
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    out = tmp_path / f"{how}.safetensors"
    done = subprocess.run([sys.executable, "-c", FRESH_LOAD, str(where), how, str(out)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})
    assert done.returncode == 0, f"{how}: {done.stderr[-3000:]}"
    loaded = load_file(out)
    assert bool(loaded["cls"])
    return loaded["images"]


def _encoder_pipe():
    pipe = _pipe(_tiny_dit("in_context"), text_encoder=BuiltinTextEncoder(text_dim=TEXT_DIM, text_len=TEXT_LEN, seed=3))
    images = pipe(["a red circle top left"], num_inference_steps=3, guidance_scale=2.0,
                  generator=torch.Generator().manual_seed(0)).images
    return pipe, images


@pytest.mark.slow  # two fresh interpreters importing torch + diffusers (~10 s each on a busy machine)
def test_a_saved_pipeline_loads_in_a_fresh_interpreter_with_either_class(tmp_path):
    pipe, images = _encoder_pipe()
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "DiTPipeline"]
    assert torch.equal(_load_in_fresh_process(tmp_path / "pipe", "ditlaws", tmp_path), images)
    assert torch.equal(_load_in_fresh_process(tmp_path / "pipe", "diffusers", tmp_path), images)


def test_a_folder_saved_before_the_shim_still_loads(tmp_path):
    # Older saves name the class as a plain string and ship no pipeline.py; DiTPipeline still resolves them.
    pipe, images = _encoder_pipe()
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    index["_class_name"] = "DiTPipeline"
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    (tmp_path / "pipeline.py").unlink()
    loaded = DiTPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    again = loaded(["a red circle top left"], num_inference_steps=3, guidance_scale=2.0,
                   generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(again, images)


@pytest.mark.slow  # fresh interpreters over HTTP
def test_a_model_repo_on_the_hub_loads_in_a_fresh_interpreter(hub_server, tmp_path):  # noqa: F811
    from huggingface_hub import CommitOperationAdd, HfApi

    from ditlaws.config import DataConfig
    from ditlaws.publish.model_repo import stage_model_repo
    from ditlaws.store.layout import model_files

    pipe, images = _encoder_pipe()
    pipe.transformer.save_pretrained(tmp_path / "model")
    staged = tmp_path / "staged"
    staged.mkdir()
    data = DataConfig(text_dim=TEXT_DIM, text_len=TEXT_LEN, text_seed=3)
    files = model_files(stage_model_repo(tmp_path / "model", staged, data_config=data))  # path in repo -> file
    assert "pipeline.py" in files and "model_index.json" in files
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api.create_repo("org/pipe")
    api.create_commit("org/pipe", [CommitOperationAdd(name, str(path)) for name, path in files.items()],
                      commit_message="the run's model repo, as ditlaws stages it")
    env = hub_server.env(tmp_path / "fresh_cache")
    assert torch.equal(_load_in_fresh_process("org/pipe", "ditlaws", tmp_path, env), images)
    assert torch.equal(_load_in_fresh_process("org/pipe", "diffusers-hub", tmp_path, env), images)
