"""μP (`model.parametrization: mup`): SP unchanged, μP = SP at the base width, the rules at other widths, save/load,
exact resume, unchanged N and FLOPs, config checks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ditlaws.config import identity, load_config
from ditlaws.errors import UserError
from ditlaws.models import MODEL_FAMILIES, build_model
from ditlaws.training import TrainingInterrupted, train
from ditlaws.training.optim import build_optimizer, param_groups

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = list(MODEL_FAMILIES)
TINY = dict(sample_size=8, in_channels=3, patch_size=2, depth=2, text_dim=16, text_len=6, heads=2)
TRAIN = ["--model.depth", "2", "--model.heads", "2", "--model.patch_size", "4", "--data.resolution", "16",
         "--data.text_dim", "16", "--data.text_len", "8", "--train.global_batch", "8", "--train.log_every", "1",
         "--train.mixed_precision", "no", "--train.lr", "3e-3"]
MUP = ["--model.parametrization", "mup", "--model.base_width", "16"]
BEFORE_MUP = "57a3694"  # the last commit before the parametrization existed


def _inputs(model, batch=3, seed=0):
    c = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c.in_channels, c.sample_size, c.sample_size, generator=g)
    t = torch.rand(batch, generator=g)
    states = torch.randn(batch, c.text_len, c.text_dim, generator=g)
    mask = torch.arange(c.text_len)[None, :] < (torch.arange(batch) % c.text_len + 1)[:, None]
    return x, t, states, mask


def _perturbed(model):
    """Zero-initialised output layers make every output 0 at init; perturb every weight so outputs differ."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


def _config(out, *extra):
    return load_config(None, [*TRAIN, "--train.output_dir", str(out), *extra])


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


# The same script runs on the code before μP (exported from git) and on this code, in fresh processes.
REFERENCE_SCRIPT = """
import json, sys
import torch
from safetensors.torch import save_file
from ditlaws.config import load_config
from ditlaws.models import build_model
from ditlaws.training import train
out = sys.argv[1]
tiny = dict(sample_size=8, in_channels=3, patch_size=2, depth=2, text_dim=16, text_len=6, heads=2, width=32)
tensors, losses = {}, {}
for family in ("in_context", "cross_attn"):
    torch.manual_seed(0)
    model = build_model(family, **tiny)
    tensors.update({f"{family}.init.{k}": v.contiguous() for k, v in model.state_dict().items()})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, 3, 8, 8, generator=g), torch.rand(3, generator=g)
    states = torch.randn(3, 6, 16, generator=g)
    mask = torch.arange(6)[None, :] < (torch.arange(3) + 1)[:, None]
    with torch.no_grad():
        tensors[f"{family}.out"] = model.eval()(x, t, states, mask).contiguous()
    cfg = load_config(None, sys.argv[2:] + ["--model.family", family, "--model.width", "32", "--train.steps", "3",
                                            "--train.output_dir", f"{out}/{family}"])
    train(cfg)
    losses[family] = [json.loads(l)["loss"] for l in open(f"{out}/{family}/metrics.jsonl")]
save_file(tensors, f"{out}/tensors.safetensors")
json.dump(losses, open(f"{out}/losses.json", "w"))
"""


def _reference(src: Path, out: Path) -> tuple[dict, dict]:
    out.mkdir(parents=True)
    env = {"PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", REFERENCE_SCRIPT, str(out), *TRAIN], check=True, env=env, cwd=out,
                   capture_output=True)
    return load_file(out / "tensors.safetensors"), json.loads((out / "losses.json").read_text())


def test_sp_models_and_trained_losses_equal_the_code_before_mup(tmp_path):
    """SP (the default) is bit-identical to the code before μP: init, outputs and 3 fp32 training steps' losses,
    computed by the code of commit BEFORE_MUP (exported from git) and by this code, on this machine."""
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BEFORE_MUP}^{{commit}}"],
                      capture_output=True).returncode:
        pytest.skip(f"commit {BEFORE_MUP} (the code before μP) is not in this checkout (shallow clone)")
    old = tmp_path / "old"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_MUP, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    before_tensors, before_losses = _reference(old / "src", tmp_path / "before")
    now_tensors, now_losses = _reference(ROOT / "src", tmp_path / "now")
    assert before_tensors.keys() == now_tensors.keys()
    assert all(torch.equal(before_tensors[k], now_tensors[k]) for k in before_tensors)
    assert now_losses == before_losses and len(now_losses["in_context"]) == 3


@pytest.mark.parametrize("family", FAMILIES)
def test_mup_at_its_base_width_is_the_sp_model_bit_for_bit(family):
    torch.manual_seed(0)
    sp = build_model(family, width=32, **TINY)
    torch.manual_seed(0)
    mup = build_model(family, width=32, parametrization="mup", base_width=32, **TINY)
    assert all(torch.equal(a, b) for a, b in zip(sp.state_dict().values(), mup.state_dict().values()))
    assert set(mup.lr_scales().values()) == {1.0}
    assert [g["names"] for g in param_groups(sp, 0.01)] == [g["names"] for g in param_groups(mup, 0.01)]
    inputs = _inputs(sp)
    with torch.no_grad():
        assert torch.equal(_perturbed(sp)(*inputs), _perturbed(mup)(*inputs))


@pytest.mark.parametrize("family", FAMILIES)
def test_mup_rules_at_four_times_the_base_width(family):
    torch.manual_seed(0)
    base = build_model(family, width=32, parametrization="mup", base_width=32, **TINY)
    torch.manual_seed(0)
    wide = build_model(family, width=128, parametrization="mup", base_width=32, **TINY)
    torch.manual_seed(0)
    sp_wide = build_model(family, width=128, **TINY)
    scales, params, sp_params = wide.lr_scales(), dict(wide.named_parameters()), dict(sp_wide.named_parameters())
    base_params = dict(base.named_parameters())
    # hidden and output matrices (fan_in grows 4x): lr / 4; input matrices, vectors, null texts: base lr
    assert scales["blocks.0.attn.to_qkv.weight"] == scales["blocks.1.mlp.fc2.weight"] == 0.25
    assert scales["proj_out.weight"] == scales["time_embed.linear_2.weight"] == 0.25
    for name in ("patch_embed.weight", "text_embed.linear.weight", "time_embed.linear_1.weight", "proj_out.bias",
                 "blocks.0.attn.q_norm.weight", "blocks.0.mlp.fc1.bias", "null_text_states"):
        assert scales[name] == 1.0, name
    # input matrices keep the base width's init scale (SP's xavier shrinks it); hidden ones keep xavier ∝ 1/fan_in
    bound = lambda p: p.abs().max().item()  # noqa: E731  (xavier-uniform bound)
    assert bound(params["patch_embed.weight"]) == pytest.approx(bound(base_params["patch_embed.weight"]), rel=0.05)
    assert bound(sp_params["patch_embed.weight"]) < 0.6 * bound(params["patch_embed.weight"])
    assert torch.equal(params["blocks.0.mlp.fc1.weight"], sp_params["blocks.0.mlp.fc1.weight"])
    assert params["time_embed.linear_2.weight"].std().item() == pytest.approx(0.01, rel=0.05)  # 0.02 / sqrt(4)
    assert torch.count_nonzero(params["proj_out.weight"]) == 0  # zero-initialised output kept
    # attention logits: sqrt(d_base)/d_head = sqrt(16)/64 (SP: SDPA's 1/sqrt(64))
    assert {m.scale for m in wide.modules() if hasattr(m, "scale")} == {0.0625}
    assert {m.scale for m in base.modules() if hasattr(m, "scale")} == {None}
    # weight decay: lr·wd constant across widths
    groups = {g["lr_scale"]: g["weight_decay"] for g in param_groups(wide, 0.01) if g["weight_decay"]}
    assert groups == {1.0: 0.01, 0.25: pytest.approx(0.04)}
    # N and FLOPs do not depend on the parametrization
    assert wide.parameter_counts() == sp_wide.parameter_counts()
    assert wide.flops_per_sample() == sp_wide.flops_per_sample()


@pytest.mark.parametrize("family", FAMILIES)
def test_mup_model_saves_and_loads_exactly(family, tmp_path):
    torch.manual_seed(0)
    model = _perturbed(build_model(family, width=64, parametrization="mup", base_width=16, base_heads=1, **TINY))
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert (saved["parametrization"], saved["base_width"], saved["base_heads"]) == ("mup", 16, 1)
    loaded = MODEL_FAMILIES[family].from_pretrained(tmp_path).eval()
    inputs = _inputs(model)
    with torch.no_grad():
        assert torch.equal(model(*inputs), loaded(*inputs))
    assert loaded.lr_scales() == model.lr_scales() and set(model.lr_scales().values()) == {1.0, 0.25}
    assert {m.scale for m in loaded.modules() if hasattr(m, "scale")} == {16**0.5 / 32}


def test_mup_run_resumes_bit_identically_with_the_config_learning_rates(tmp_path, monkeypatch):
    args = [*MUP, "--model.width", "64", "--train.steps", "6", "--train.checkpoint_every", "2",
            "--train.keep_checkpoints", "1", "--train.warmup_steps", "2"]
    straight = train(_config(tmp_path / "a", *args))
    monkeypatch.setenv("DITLAWS_STOP_AFTER_STEP", "5")
    with pytest.raises(TrainingInterrupted):
        train(_config(tmp_path / "b", *args))
    monkeypatch.delenv("DITLAWS_STOP_AFTER_STEP")
    # a checkpoint whose saved groups carry other multipliers: the config's come back on resume
    state_file = tmp_path / "b" / "checkpoints" / "step_4" / "optimizer.bin"
    state = torch.load(state_file, weights_only=True)
    assert sorted({g["lr_scale"] for g in state["param_groups"]}) == [0.25, 1.0]
    for group in state["param_groups"]:
        group["lr_scale"] = 7.0
    torch.save(state, state_file)
    resumed = train(_config(tmp_path / "b", *args, "--train.resume", "latest"))
    a = load_file(tmp_path / "a" / "model" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b") and resumed["final_loss"] == straight["final_loss"]
    sp = train(_config(tmp_path / "sp", "--model.width", "64", "--train.steps", "6"))
    assert (straight["N"], straight["C"], straight["C_closed_form"]) == (sp["N"], sp["C"], sp["C_closed_form"])
    assert _losses(tmp_path / "a") != _losses(tmp_path / "sp")  # μP really trained differently
    assert straight["run_id"].endswith("-mup16-p4-steps6-s0") and "mup" not in sp["run_id"]


def test_mup_groups_train_at_scaled_learning_rates(tmp_path):
    torch.manual_seed(0)
    model = build_model("in_context", width=64, parametrization="mup", base_width=16, **TINY)
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.01, betas=(0.9, 0.95), eps=1e-15, fused=True)
    from ditlaws.training.optim import set_lr

    set_lr(optimizer, 2e-3)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == [2e-3 / 4, 2e-3]


def test_config_checks_and_identity():
    with pytest.raises(UserError, match="model.base_width must be set"):
        load_config(None, ["--model.parametrization", "mup", "--train.steps", "1"])
    with pytest.raises(UserError, match="μP settings"):
        load_config(None, ["--model.base_width", "64", "--train.steps", "1"])
    with pytest.raises(UserError, match="model.parametrization"):
        load_config(None, ["--model.parametrization", "mu", "--train.steps", "1"])
    with pytest.raises(UserError, match="base_width.*divisible"):
        load_config(None, ["--model.parametrization", "mup", "--model.base_width", "30", "--model.heads", "4",
                           "--model.width", "64", "--train.steps", "1"])
    sp = load_config(None, ["--train.steps", "1"])
    assert "parametrization" not in identity(sp)["model"]  # runs recorded before μP keep their identity
    mup = load_config(None, ["--train.steps", "1", *MUP, "--model.width", "32", "--model.heads", "2"])
    assert identity(mup)["model"]["parametrization"] == "mup" and identity(mup)["model"]["base_width"] == 16
