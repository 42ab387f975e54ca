"""The CPU paths for bf16 steps (`ditlaws.models.cpu_kernels`) compute what the plain ops compute, fp32 steps never
take them, and `ditlaws.cpu_allocator` keeps freed memory in the process."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ditlaws import CrossAttnDiT, InContextDiT
from ditlaws.models import cpu_kernels
from ditlaws.models.layers import RMSNorm, modulate

# Tolerances, relative to the largest reference value, against a float64 reference: fp32 inputs (the residual stream
# under autocast) are computed in fp32 throughout (measured ≤ 2e-7, one fp32 ulp); bf16 inputs carry their own
# rounding (measured ≤ 4e-3, one bf16 ulp at 2^-8): 4 ulps of each.
TOL = {torch.float32: 5e-7 * 4, torch.bfloat16: 2**-8 * 4}


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).abs().max() / ref.abs().max()).item()


def _leaves(dtype, *arrays):
    low = [a.to(dtype).requires_grad_() for a in arrays]
    ref = [a.detach().double().requires_grad_() for a in low]
    return low, ref


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("affine", [True, False])
def test_rms_norm_and_its_gradients_match_a_float64_reference(dtype, affine):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 20, 64, generator=gen, dtype=torch.float64) * 3
    weight = torch.rand(64, generator=gen, dtype=torch.float64) + 0.5
    grad = torch.randn(4, 20, 64, generator=gen, dtype=torch.float64)
    (x_low,), (x_ref,) = _leaves(dtype, x)
    w_low = weight.float().requires_grad_() if affine else None
    w_ref = w_low.detach().double().requires_grad_() if affine else None
    F.rms_norm(x_ref, (64,), w_ref, 1e-6).backward(grad)
    with torch.autocast("cpu", torch.bfloat16):
        y = cpu_kernels.rms_norm(x_low, w_low, 1e-6, torch.float32)
    y.backward(grad.float())
    assert y.dtype == torch.float32
    expected = F.rms_norm(x_ref.detach(), (64,), None if w_ref is None else w_ref.detach(), 1e-6)
    assert _rel(y.detach(), expected) < TOL[dtype]
    assert x_low.grad.dtype == dtype and _rel(x_low.grad, x_ref.grad) < TOL[dtype]
    if affine:
        assert w_low.grad.dtype == torch.float32 and _rel(w_low.grad, w_ref.grad) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_norm_and_modulation_in_one_function_match_a_float64_reference(dtype):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 20, 64, generator=gen, dtype=torch.float64) * 3
    shift = torch.randn(4, 64, generator=gen, dtype=torch.float64)
    scale = torch.randn(4, 64, generator=gen, dtype=torch.float64) * 0.3
    grad = torch.randn(4, 20, 64, generator=gen, dtype=torch.float64)
    low, ref = _leaves(dtype, x, shift, scale)
    expected = modulate(F.rms_norm(ref[0], (64,), None, 1e-6), ref[1], ref[2])
    expected.backward(grad)
    y = cpu_kernels.rms_norm_modulate(*low, 1e-6, torch.float32)
    y.backward(grad.float())
    assert _rel(y.detach(), expected.detach()) < TOL[dtype]
    for got, want in zip(low, ref):
        assert got.grad.dtype == dtype and _rel(got.grad, want.grad) < TOL[dtype]


def test_a_norm_feeding_a_linear_gives_the_bits_autocast_would_have_cast():
    norm = RMSNorm(64, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 20, 64)
    with torch.autocast("cpu", torch.bfloat16):
        direct = norm.for_linear(x)
        cast_later = norm(x).to(torch.bfloat16)
    assert direct.dtype == torch.bfloat16 and torch.equal(direct, cast_later)
    assert torch.equal(norm.for_linear(x), norm(x))  # without autocast: the plain fp32 norm


def test_attention_in_fp32_merges_the_heads_of_plain_sdpa():
    gen = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 4, 9, 8, generator=gen).to(torch.bfloat16) for _ in range(3))
    mask = torch.ones(2, 1, 1, 9, dtype=torch.bool)
    mask[1, ..., 6:] = False
    with torch.autocast("cpu", torch.bfloat16):
        out = cpu_kernels.attention(q, k, v, mask, 0.3)
    plain = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=0.3)
    assert out.shape == (2, 9, 32) and out.dtype == torch.bfloat16 and out.is_contiguous()
    assert torch.equal(out, plain.transpose(1, 2).reshape(2, 9, 32).to(torch.bfloat16))


def _model(cls):
    torch.manual_seed(0)
    model = cls(sample_size=8, in_channels=4, patch_size=2, depth=2, width=32, heads=2, text_dim=16, text_len=6)
    with torch.no_grad():  # move the zero-initialised output layers off zero so every gradient is exercised
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


def _forward_backward(model, bf16: bool):
    gen = torch.Generator().manual_seed(3)
    x, t = torch.randn(3, 4, 8, 8, generator=gen), torch.rand(3, generator=gen)
    text, mask = torch.randn(3, 6, 16, generator=gen), torch.ones(3, 6, dtype=torch.bool)
    mask[1, 4:] = False
    model.zero_grad()
    with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
        out = model(x, t, text, mask)
    out.float().square().mean().backward()
    return out.detach().float(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("cls", [InContextDiT, CrossAttnDiT])
def test_fp32_steps_never_take_the_cpu_paths_and_bf16_steps_stay_close_to_them(cls, monkeypatch):
    model = _model(cls)
    out32, grad32 = _forward_backward(model, bf16=False)
    calls = []
    for name in ("rms_norm", "rms_norm_modulate", "attention"):
        real = getattr(cpu_kernels, name)
        counted = lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k)  # noqa: E731
        monkeypatch.setattr(cpu_kernels, name, counted)
    again32, _ = _forward_backward(model, bf16=False)
    assert calls == [] and torch.equal(again32, out32)
    out16, grad16 = _forward_backward(model, bf16=True)
    assert "attention" in calls and "rms_norm" in calls
    assert ("rms_norm_modulate" in calls) == (cls is CrossAttnDiT)
    # bf16 autocast against fp32: the matmuls' bf16 rounding over two blocks (measured 0.6 % / 0.4 % of the largest
    # value); 4x that: a wrong gradient formula is off by O(1)
    assert _rel(out16, out32.double()) < 0.03
    assert _rel(grad16, grad32.double()) < 0.03


def _minor_faults_per_step(allocator: str) -> int:
    """Page faults per bf16 training step of a one-block w512 model (the headline's activation sizes), in a fresh
    process with DITLAWS_CPU_ALLOCATOR=`allocator`."""
    code = (
        "import resource, torch\n"
        "from ditlaws import InContextDiT\n"
        "from ditlaws.cpu_allocator import keep_freed_memory\n"
        "print(keep_freed_memory())\n"
        "torch.manual_seed(0)\n"
        "m = InContextDiT(sample_size=16, in_channels=4, patch_size=2, depth=1, width=512, heads=8, text_dim=16,"
        " text_len=8)\n"
        "x, t, text = torch.randn(32, 4, 16, 16), torch.rand(32), torch.randn(32, 8, 16)\n"
        "def step():\n"
        "    m.zero_grad()\n"
        "    with torch.autocast('cpu', torch.bfloat16):\n"
        "        y = m(x, t, text)\n"
        "    y.float().square().mean().backward()\n"
        "step(); step()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "step(); step(); step()\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)\n"
    )
    env = {**os.environ, "DITLAWS_CPU_ALLOCATOR": allocator, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    applied, faults = out.split()
    assert applied == str(allocator != "default")
    return int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keeping_freed_memory_stops_most_page_faults_of_a_training_step():
    # Measured on the 2-core AMD EPYC (2026-12-07): 12338 faults per step with glibc's defaults, 1022 kept.
    default = _minor_faults_per_step("default")
    kept = _minor_faults_per_step("train")
    assert kept < default / 4
