"""Frozen encoders: the offline text encoder, tiny transformers text encoders and a tiny AutoencoderKL, all offline."""

import hashlib

import pytest
import torch
from diffusers import AutoencoderKL
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast, T5Config, T5EncoderModel

import ditlaws
from ditlaws.config import DataConfig
from ditlaws.data.encoders import (
    BuiltinTextEncoder,
    IdentityImageEncoder,
    TransformersTextEncoder,
    VAEImageEncoder,
    build_image_encoder,
    build_text_encoder,
    word_bucket,
)
from ditlaws.errors import UserError

CAPTIONS = ["a small red circle at the top left", "A LARGE blue square", ""]


def test_builtin_text_encoder_is_deterministic_and_saves(tmp_path):
    a = BuiltinTextEncoder(text_dim=8, text_len=6, seed=3)
    b = BuiltinTextEncoder(text_dim=8, text_len=6, seed=3)
    states, mask, pooled = a.encode(CAPTIONS)
    assert all(torch.equal(x, y) for x, y in zip((states, mask, pooled), b.encode(CAPTIONS)))
    assert not torch.equal(states, BuiltinTextEncoder(text_dim=8, text_len=6, seed=4).encode(CAPTIONS)[0])
    assert states.shape == (3, 6, 8) and pooled.shape == (3, 8) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [6, 5, 1]  # truncated to text_len; start token only for ""
    assert torch.all(states[~mask] == 0)
    assert torch.allclose(pooled[1], states[1, :5].mean(0))
    a.save_pretrained(tmp_path)
    loaded = ditlaws.BuiltinTextEncoder.from_pretrained(tmp_path)
    assert all(torch.equal(x, y) for x, y in zip((states, mask, pooled), loaded.encode(CAPTIONS)))
    assert a.name == loaded.name and (a.text_dim, a.text_len) == (8, 6)


def test_word_ids_are_case_and_process_independent():
    enc = BuiltinTextEncoder(text_dim=4, text_len=4)
    ids, _ = enc.tokenize(["Red circle", "red CIRCLE!"])
    assert torch.equal(ids[0], ids[1])
    digest = hashlib.blake2b(b"red", digest_size=8).digest()
    assert word_bucket("red", 4096) == 2 + int.from_bytes(digest, "little") % 4094


def test_builtin_text_encoder_from_data_config():
    enc = build_text_encoder(DataConfig(text_len=12, text_dim=32, text_seed=5))
    assert isinstance(enc, BuiltinTextEncoder) and enc.config.seed == 5 and enc.encode(["x"])[0].shape == (1, 12, 32)


def word_tokenizer(folder):
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "<s>", "</s>", "a", "small", "red", "circle", "large"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>",
                                   eos_token="</s>")
    fast.save_pretrained(folder)
    return len(vocab)


def test_tiny_clip_text_encoder_offline(tmp_path):
    vocab = word_tokenizer(tmp_path / "tokenizer")
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=12, bos_token_id=2, eos_token_id=3,
                            pad_token_id=0)
    CLIPTextModel(config).save_pretrained(tmp_path / "text_encoder")
    cfg = DataConfig(text_encoder=str(tmp_path), text_encoder_subfolder="text_encoder",
                     tokenizer_subfolder="tokenizer", text_len=8)
    enc = build_text_encoder(cfg)
    states, mask, pooled = enc.encode(["a red circle", "large"])
    assert states.shape == (2, 8, 16) and enc.text_dim == 16 and enc.text_len == 8
    assert mask.sum(1).tolist() == [5, 3]
    out = enc.model(input_ids=enc.tokenizer(["a red circle"], return_tensors="pt")["input_ids"])
    assert torch.allclose(pooled[0], out.pooler_output[0], atol=1e-5)  # CLIP's EOS-token pooling
    again = build_text_encoder(cfg).encode(["a red circle", "large"])
    assert torch.equal(states, again[0]) and torch.equal(pooled, again[2])


def test_tiny_t5_encoder_pools_masked_mean(tmp_path):
    vocab = word_tokenizer(tmp_path)
    torch.manual_seed(0)
    T5EncoderModel(T5Config(vocab_size=vocab, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)).save_pretrained(
        tmp_path)
    enc = TransformersTextEncoder(str(tmp_path), text_len=6)
    states, mask, pooled = enc.encode(["small red circle"])
    assert torch.allclose(pooled[0], states[0, mask[0]].mean(0), atol=1e-6)


def test_missing_text_encoder_is_user_error(tmp_path):
    with pytest.raises(UserError, match="data.text_encoder"):
        TransformersTextEncoder(str(tmp_path / "nope"))


def test_identity_image_encoder_round_trips():
    enc = build_image_encoder(DataConfig())
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert isinstance(enc, IdentityImageEncoder) and torch.equal(enc.decode(enc.encode(x)), x)
    assert (enc.latent_channels, enc.downsample, enc.scaling_factor) == (3, 1, 1.0)


@pytest.mark.parametrize("shift", [None, 0.1])
def test_tiny_autoencoder_kl_offline(tmp_path, shift):
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                        sample_size=16, scaling_factor=0.5, shift_factor=shift)
    vae.save_pretrained(tmp_path / "vae")
    enc = build_image_encoder(DataConfig(image_encoder=str(tmp_path), image_encoder_subfolder="vae"))
    assert isinstance(enc, VAEImageEncoder) and (enc.latent_channels, enc.downsample) == (4, 2)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    latents = enc.encode(x)
    assert latents.shape == (2, 4, 8, 8) and torch.equal(latents, enc.encode(x))  # posterior mean: deterministic
    expected = (vae.encode(x).latent_dist.mean - (shift or 0.0)) * 0.5
    assert torch.allclose(latents, expected, atol=1e-5)
    assert torch.allclose(enc.decode(latents), vae.decode(expected / 0.5 + (shift or 0.0)).sample.clamp(-1, 1),
                          atol=1e-5)


def test_missing_vae_is_user_error(tmp_path):
    with pytest.raises(UserError, match="data.image_encoder"):
        VAEImageEncoder(str(tmp_path / "nope"))
