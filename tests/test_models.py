"""DiT families: save/load, closed-form parameter counts and FLOPs, masking, null text, checkpointing, learning."""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ditlaws.errors import UserError
from ditlaws.flow import flow_loss
from ditlaws.models import MODEL_FAMILIES, CrossAttnDiT, InContextDiT, build_model, preset
from ditlaws.models import flops as closed_form
from ditlaws.models.presets import input_mismatch, resolve_dims

FAMILIES = list(MODEL_FAMILIES)
TINY = dict(sample_size=8, in_channels=3, patch_size=2, depth=2, text_dim=16, text_len=6)


def _inputs(model, batch=3, seed=0):
    c = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c.in_channels, c.sample_size, c.sample_size, generator=g)
    t = torch.rand(batch, generator=g)
    states = torch.randn(batch, c.text_len, c.text_dim, generator=g)
    lengths = torch.arange(batch) % c.text_len + 1  # row 0 has one real token, row 1 two, ...
    mask = torch.arange(c.text_len)[None, :] < lengths[:, None]
    pooled = torch.randn(batch, c.text_dim, generator=g)
    return x, t, states, mask, pooled


def _tiny(family, seed=0, **overrides):
    torch.manual_seed(seed)
    model = build_model(family, **{**TINY, **overrides})
    # Zero-init output layers make every output 0 at init; perturb all weights so the tests can see differences.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_round_trip_is_exact(family, tmp_path):
    model = _tiny(family)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = MODEL_FAMILIES[family].from_pretrained(tmp_path).eval()
    assert dict(loaded.config)["width"] == 128 and dict(loaded.config)["heads"] == 2
    x, t, states, mask, pooled = _inputs(model)
    with torch.no_grad():
        assert torch.equal(model(x, t, states, mask, pooled), loaded(x, t, states, mask, pooled))
    assert torch.equal(model.pos_embed, loaded.pos_embed)


@pytest.mark.parametrize("family", FAMILIES)
def test_fresh_model_predicts_zero_velocity(family):
    model = build_model(family, **TINY)
    x, t, states, mask, pooled = _inputs(model)
    assert torch.equal(model(x, t, states, mask, pooled), torch.zeros_like(x))


def test_presets_follow_width_64_depth_heads_depth():
    assert preset(6) == {"depth": 6, "width": 384, "heads": 6}
    model = InContextDiT(sample_size=8, depth=3, text_dim=8, text_len=4)
    assert (model.config.width, model.config.heads) == (192, 3)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_parameter_counts_match_closed_form(family, depth):
    config = dict(sample_size=8, in_channels=4, patch_size=2, depth=depth, text_dim=24, text_len=7)
    model = build_model(family, **config)
    dims = resolve_dims(**config, width=None, heads=None, mlp_ratio=4.0)
    assert model.parameter_counts() == closed_form.parameter_counts(family, dims)
    assert model.parameter_counts()["total"] == sum(p.numel() for p in model.parameters())


def test_in_context_depth4_non_embedding_is_12_width2_depth_plus_norms_and_biases():
    model = build_model("in_context", sample_size=8, in_channels=4, depth=4, text_dim=32, text_len=8)
    d, depth, head_dim = 256, 4, 64
    # per block: 12·d² weights + 9·d biases + 2·d RMSNorm weights + 2·head_dim QK-norm weights; + d final norm
    expected = 12 * d * d * depth + depth * (9 * d + 2 * d + 2 * head_dim) + d
    assert model.parameter_counts()["non_embedding"] == expected


def test_cross_attn_block_closed_form():
    model = build_model("cross_attn", sample_size=8, in_channels=4, depth=3, text_dim=32, text_len=8)
    d, head_dim = 192, 64
    assert sum(p.numel() for p in model.blocks[0].parameters()) == 22 * d * d + 20 * d + 4 * head_dim


FLOP_SIZES = [
    dict(sample_size=8, in_channels=3, patch_size=2, depth=2, text_dim=16, text_len=6),
    dict(sample_size=16, in_channels=4, patch_size=2, depth=3, text_dim=32, text_len=10),
    dict(sample_size=16, in_channels=4, patch_size=4, depth=4, text_dim=24, text_len=12, mlp_ratio=2.0),
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", range(len(FLOP_SIZES)))
def test_closed_form_flops_match_flop_counter(family, size):
    model = build_model(family, **FLOP_SIZES[size])
    x, t, states, mask, pooled = _inputs(model, batch=2)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(x, t, states, mask, pooled)
    measured = counter.get_total_flops() / 2
    assert measured == pytest.approx(model.flops_per_sample(), rel=0.02)


@pytest.mark.parametrize("family", FAMILIES)
def test_padded_text_positions_do_not_change_the_output(family):
    model = _tiny(family)
    x, t, states, mask, pooled = _inputs(model)
    garbage = torch.where(mask[..., None], states, 100 * torch.randn_like(states))
    with torch.no_grad():
        out = model(x, t, states, mask, pooled)
        assert torch.allclose(out, model(x, t, garbage, mask, pooled), atol=1e-5)
        assert not torch.allclose(out, model(x, t, garbage, None, pooled), atol=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_drop_text_rows_use_the_learned_null(family):
    model = _tiny(family)
    x, t, states, mask, pooled = _inputs(model)
    drop = torch.tensor([True, False, True])
    b = x.shape[0]
    null_states = model.null_text_states[None].expand(b, -1, -1)
    null_pooled = model.null_pooled[None].expand(b, -1) if family == "cross_attn" else pooled
    with torch.no_grad():
        out = model(x, t, states, mask, pooled, drop_text=drop)
        as_null = model(x, t, null_states, None, null_pooled)
        as_cond = model(x, t, states, mask, pooled)
    assert torch.allclose(out[drop], as_null[drop], atol=1e-5)
    assert torch.allclose(out[~drop], as_cond[~drop], atol=1e-5)
    assert not torch.allclose(out[drop], as_cond[drop], atol=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_gradients(family):
    model = _tiny(family).train()
    x, t, states, mask, pooled = _inputs(model)

    def grads():
        model.zero_grad()
        model(x, t, states, mask, pooled, drop_text=torch.tensor([False, True, False])).square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing
    checkpointed = grads()
    model.disable_gradient_checkpointing()
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5), name


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_overfits_one_batch(family):
    torch.manual_seed(0)
    model = build_model(family, sample_size=8, in_channels=3, depth=2, text_dim=16, text_len=4)
    x0, _, states, mask, pooled = _inputs(model, batch=4)
    g = torch.Generator().manual_seed(1)
    t = torch.rand(4, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for _ in range(150):
        loss = flow_loss(model, x0, states, mask, pooled, t=t, noise=noise).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(width=100, heads=3), "width"),
        (dict(sample_size=9), "sample_size"),
        (dict(depth=0), "depth"),
        (dict(mlp_ratio=-1.0), "mlp_ratio"),
        (dict(text_len=0), "text_len"),
    ],
)
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(UserError, match=field):
        CrossAttnDiT(**{**TINY, **overrides})


def test_bad_family_and_shapes_are_user_errors():
    with pytest.raises(UserError, match="in_context"):
        build_model("unet", **TINY)
    with pytest.raises(UserError, match="colour"):
        build_model("in_context", colour=3, **TINY)


def test_wrong_input_shapes_are_named_by_the_check_callers_use_and_by_forward():
    """Callers that take user data check with `input_mismatch` (and raise UserError); forward raises ValueError."""
    model = build_model("in_context", **TINY)
    x, t, states, mask, pooled = _inputs(model)
    assert input_mismatch(model.config, x.shape, states.shape) is None
    assert "text_len" in input_mismatch(model.config, x.shape, states[:, :-1].shape)
    assert "in_channels" in input_mismatch(model.config, x[:, :2].shape, states.shape)
    for args, field in [((x, t, states[:, :-1], mask[:, :-1]), "text_len"), ((x[:, :2], t, states, mask),
                                                                            "in_channels")]:
        with pytest.raises(ValueError, match=field) as raised:
            model(*args)
        assert not isinstance(raised.value, UserError)  # a bad call, not a CLI concern inside the model
