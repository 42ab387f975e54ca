"""GPU benchmark (`benchmarks/gpu.sh`): MFU of a >= 100M-parameter in-context DiT at 256 image tokens in bf16, eager
and with each block compiled (`torch.compile`, regional), against diffusers' DiT of the same size.

    python -m ditlaws.bench.gpu [--out gpu.json] [--repeats 20]

MFU = counted FLOPs per step (FlopCounterMode) / step time / the device's dense bf16 peak (the datasheet's when the
device is known, and the same run's 8192³ matmul as a practical peak). Without a CUDA device it says so, runs one
tiny step of each model on the CPU (so the script's imports and code paths are checked) and exits 0.
"""

from __future__ import annotations

import argparse
import sys

import torch

from ditlaws.bench.architectures import Size

# Dense bf16 tensor-core peaks from the datasheets (SXM parts), FLOP/s.
DATASHEET_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
MODELS = ("ditlaws in_context", "diffusers DiT")
SIZE = Size(width=768, depth=16, heads=12, sample_size=32, in_channels=4, patch_size=2, text_len=32, text_dim=768,
            batch=64)  # 256 image tokens; in-context: ~115M parameters
SMOKE = Size(width=64, depth=2, heads=2, sample_size=8, in_channels=4, patch_size=2, text_len=4, text_dim=16, batch=2)


def datasheet_peak(name: str) -> float | None:
    return next((peak for key, peak in DATASHEET_BF16.items() if key in name), None)


def matmul_peak_cuda(n: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (start.elapsed_time(end) / 1e3)


def smoke() -> int:
    from ditlaws.bench.step import measure

    print("no CUDA device here: the GPU benchmark needs an H100/H200; running a tiny CPU smoke step instead")
    for name in MODELS:
        row = measure(name, SMOKE, "bf16", repeats=1, warmup=1)
        print(f"  {name}: {row['params']} parameters, {row['flops_per_step']} FLOPs per step, "
              f"{row['median_s'] * 1e3:.1f} ms (CPU smoke step, not a measurement)")
    print("GPU numbers: not measured (no GPU)")
    return 0


def run(repeats: int) -> dict:
    from ditlaws.bench import report
    from ditlaws.bench.step import measure

    name = torch.cuda.get_device_name()
    measured_peak = matmul_peak_cuda()
    peak = datasheet_peak(name) or measured_peak
    torch.backends.cuda.matmul.allow_tf32 = True
    rows = []
    for model in MODELS:
        for compiled in (False, True):
            row = measure(model, SIZE, "bf16", repeats, device="cuda", compile_blocks=compiled,
                          warmup=5 if compiled else 3)
            row["mfu"] = row["flops_per_s"] / peak
            row["of_measured_matmul"] = row["flops_per_s"] / measured_peak
            rows.append(row)
            print(f"{row['model']}: {row['median_s'] * 1e3:.1f} ms/step, MFU {100 * row['mfu']:.1f} %", flush=True)
            torch.cuda.empty_cache()
    reference = {r["model"].removesuffix(" (compiled blocks)"): r for r in rows if "compiled" not in r["model"]}
    for row in rows:
        row["pct_bf16_peak"] = 100 * row["mfu"]
        row["vs_diffusers_dit"] = row["flops_per_s"] / reference["diffusers DiT"]["flops_per_s"]
    print(f"\n{name}, torch {torch.__version__}; peak bf16 {peak / 1e12:.0f} TFLOP/s (datasheet), "
          f"{measured_peak / 1e12:.0f} TFLOP/s (8192³ matmul, this run)\n")
    print(report.step_table(rows).replace("of bf16 peak", "MFU"))
    return {"device": name, "torch": torch.__version__, "peak_bf16_flops": peak,
            "measured_matmul_flops": measured_peak, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ditlaws.bench.gpu", description=__doc__)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        return smoke()
    result = run(args.repeats)
    if args.out:
        from ditlaws.jsonio import write_json_atomic

        write_json_atomic(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
