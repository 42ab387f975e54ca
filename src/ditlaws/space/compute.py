"""A compute budget in FLOPs or in GPU-hours on an accelerator at a model-FLOPs utilisation (MFU), both ways.

    flops = gpu_hours · 3600 · peak_flops · mfu

Peak throughputs are the vendors' dense (no sparsity) BF16/FP16 tensor-core figures; MFU is the fraction of that
peak a training run achieves (0.3–0.5 is typical for well-tuned DiT training).
"""

from __future__ import annotations

import math

from ditlaws.errors import UserError

# name -> peak dense BF16 (FP16 where the chip has no BF16) FLOP/s, from the vendors' data sheets
ACCELERATORS: dict[str, float] = {
    "NVIDIA H100 SXM": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA B200": 2250e12,
    "NVIDIA A100": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA L4": 121e12,
    "NVIDIA V100 (FP16)": 125e12,
    "AMD MI300X": 1307e12,
    "Google TPU v5e": 197e12,
    "Google TPU v4": 275e12,
}
DEFAULT_ACCELERATOR = "NVIDIA H100 SXM"
DEFAULT_MFU = 0.4
SECONDS_PER_HOUR = 3600.0


def _check(name: str, value: float, upper: float | None = None) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0) or (upper is not None and value > upper):
        valid = f"in (0, {upper:g}]" if upper is not None else "> 0"
        raise UserError(f"{name} must be a finite number {valid}, got {value!r}")
    return value


def peak_flops(accelerator: str, custom_tflops: float | None = None) -> float:
    """Peak FLOP/s of a named accelerator, or ``custom_tflops`` (TFLOP/s) when given."""
    if custom_tflops:
        return _check("peak TFLOP/s", custom_tflops) * 1e12
    if accelerator not in ACCELERATORS:
        raise UserError(f"accelerator {accelerator!r} is unknown; valid: {', '.join(ACCELERATORS)} "
                        "(or give its peak TFLOP/s)")
    return ACCELERATORS[accelerator]


def gpu_hours_to_flops(gpu_hours: float, peak: float, mfu: float) -> float:
    return _check("GPU-hours", gpu_hours) * SECONDS_PER_HOUR * _check("peak FLOP/s", peak) * _check("MFU", mfu, 1.0)


def flops_to_gpu_hours(flops: float, peak: float, mfu: float) -> float:
    return _check("budget (FLOPs)", flops) / (SECONDS_PER_HOUR * _check("peak FLOP/s", peak) * _check("MFU", mfu, 1.0))


def parse_flops(text) -> float:
    """A budget typed by a person: '1.5e21', '1.5E+21', '3e18 ', '2,000,000'."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _check("budget (FLOPs)", text)
    cleaned = str(text).strip().replace(",", "").replace("_", "").replace(" ", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise UserError(f"budget (FLOPs) must be a number such as 1.5e21, got {text!r}") from None
    return _check("budget (FLOPs)", value)
