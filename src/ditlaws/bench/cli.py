"""The `ditlaws bench` command line: run the chosen sections, print their tables, write the JSON."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

import torch

from ditlaws.bench import report
from ditlaws.bench.architectures import Size
from ditlaws.errors import UserError
from ditlaws.errors import report as report_error
from ditlaws.jsonio import write_json_atomic

SECTIONS = ("peaks", "step", "demo", "eval", "loader")
MODEL_NAMES = ("diffusers DiT", "diffusers PixArt", "ditlaws in_context", "ditlaws cross_attn")
SDPA_CHOICES = ("default", "math", "flash")
HEADLINE = Size(width=512, depth=8, heads=8, sample_size=16, in_channels=4, patch_size=2, text_len=16, text_dim=64,
                batch=32)
QUICK_HEADLINE = Size(width=64, depth=2, heads=2, sample_size=8, in_channels=4, patch_size=2, text_len=8, text_dim=16,
                      batch=4)
DEMO_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "sweeps" / "demo.yaml"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ditlaws bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes and few steps (seconds; for tests)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--repeats", type=int, help="timed steps per measurement (default 10; --quick 3)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--demo-config", default=str(DEMO_CONFIG), help="the sweep whose sizes are 'demo scale'")
    p.add_argument("--rounds", type=int, default=1,
                   help="step sections: time the models in turns, this many rounds of --repeats steps each "
                        "(so a change of load during the run falls on every model); default 1")
    p.add_argument("--sdpa", default="default", choices=sorted(SDPA_CHOICES),
                   help="attention kernel of the timed steps (FLOPs are always counted under math); default: "
                        "torch's choice")
    p.add_argument("--models", help=f"step section: comma-separated subset of {', '.join(MODEL_NAMES)}")
    p.add_argument("--allocator", default="train", choices=["train", "default"],
                   help="CPU memory allocator settings for every model: 'train' = those train() uses "
                        "(glibc keeps freed memory, ditlaws.cpu_allocator); 'default' = glibc's own; default train")
    return p


def models_of(text: str | None) -> list[str] | None:
    if text is None:
        return None
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in chosen if s not in MODEL_NAMES]
    if bad or not chosen:
        raise UserError(f"--models: {', '.join(bad) or 'nothing'} is not a model; valid: {', '.join(MODEL_NAMES)}")
    return chosen


def kernel_path() -> dict:
    """What decides which CPU kernels run: ATen's vector ISA, AMX, and the environment variables that cap them."""
    flags = ""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        pass
    return {"aten_capability": torch.backends.cpu.get_cpu_capability(), "amx_bf16": " amx_bf16" in flags,
            "avx512_bf16": " avx512_bf16" in flags,
            "env": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS")
                    if k in os.environ}}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sections_of(text: str) -> list[str]:
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in chosen if s not in SECTIONS]
    if bad or not chosen:
        raise UserError(f"--only: {', '.join(bad) or 'nothing'} is not a section; valid: {', '.join(SECTIONS)}")
    return chosen


def run(args) -> dict:
    from ditlaws.bench.step import compare
    from ditlaws.bench.timing import matmul_peak

    chosen = sections_of(args.only)
    names = models_of(args.models)
    repeats = args.repeats or (3 if args.quick else 10)
    say = lambda text: print(text, flush=True)  # noqa: E731
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu_model(),
              "torch": torch.__version__, "threads": torch.get_num_threads(), "quick": args.quick,
              "repeats": repeats, "rounds": args.rounds, "sdpa": args.sdpa, "sections": chosen,
              "kernels": kernel_path(), "allocator": args.allocator}
    peaks = {"float32": matmul_peak(torch.float32, 512 if args.quick else 2048, repeats),
             "bfloat16": matmul_peak(torch.bfloat16, 512 if args.quick else 2048, repeats)}
    result["peaks"] = peaks
    bf16_peak = peaks["bfloat16"]["flops_per_s"]
    kernels = result["kernels"]
    yes = lambda flag: "yes" if kernels[flag] else "no"  # noqa: E731
    say(f"# ditlaws bench: {result['cpu']}, torch {result['torch']}, {result['threads']} threads, {result['date']}\n"
        f"# kernels: ATen {kernels['aten_capability']}, AMX-BF16 {yes('amx_bf16')}, AVX512-BF16 {yes('avx512_bf16')}, "
        f"env {kernels['env'] or '{}'}; timed attention: {args.sdpa}; allocator: {args.allocator}; {args.rounds} "
        f"round(s) of {repeats} steps per model\n")
    say(report.peaks_table(peaks) + "\n")
    if "step" in chosen:
        size = QUICK_HEADLINE if args.quick else HEADLINE
        result["step"] = compare(size, "bf16", repeats, bf16_peak, names=names, rounds=args.rounds, sdpa=args.sdpa)
        say(f"## training step, {size.label}, bf16 autocast\n\n" + report.step_table(result["step"]) + "\n")
    if {"demo", "eval", "loader"} & set(chosen):
        run_demo_sections(args, chosen, repeats, bf16_peak, result, say)
    return result


def run_demo_sections(args, chosen, repeats, bf16_peak, result, say) -> None:
    from ditlaws.bench.demo import demo_runs, demo_scale, geometry_size
    from ditlaws.bench.step import compare
    from ditlaws.training.plan import plan_run

    runs = demo_runs(args.demo_config, args.quick)
    if "demo" in chosen:
        steps = []
        for cfg in runs:
            size = geometry_size(cfg, plan_run(cfg))
            steps += compare(size, cfg.train.mixed_precision, repeats, bf16_peak, names=models_of(args.models),
                             padded_text=True, rounds=args.rounds, sdpa=args.sdpa)
        result["demo_step"] = steps
        say("## training step at demo scale (configs/sweeps/demo.yaml)\n\n" + report.step_table(steps) + "\n")
        result["demo_loop"] = demo_scale(args.demo_config, args.quick, repeats)
        say("## demo scale: bare forward/backward/AdamW vs the training loop\n\n"
            + report.loop_table(result["demo_loop"]) + "\n")
    middle = runs[len(runs) // 2]
    plan = plan_run(middle)
    if "eval" in chosen:
        from ditlaws.bench.evaluation import eval_throughput

        result["eval"] = eval_throughput(middle, plan, args.quick)
        say(f"## evaluation throughput ({geometry_size(middle, plan).label})\n\n" + report.eval_table(result["eval"])
            + "\n")
    if "loader" in chosen:
        from ditlaws.bench.demo import bare_loop
        from ditlaws.bench.loader import loader_rate

        row = loader_rate(middle.data, middle.train.global_batch, 5 if args.quick else 20)
        row["step_samples_per_s"] = bare_loop(middle, plan, repeats)["samples_per_s"]
        result["loader"] = row
        say("## data loader vs the step\n\n" + report.loader_table(row) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("error: --threads must be >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    if args.repeats is not None and args.repeats < 1:
        print("error: --repeats must be >= 1", file=sys.stderr)
        return 2
    if args.rounds < 1:
        print("error: --rounds must be >= 1", file=sys.stderr)
        return 2
    if args.allocator == "train":
        from ditlaws.cpu_allocator import keep_freed_memory

        keep_freed_memory()
    if args.out:
        from ditlaws.paths import check_writable

        try:
            check_writable(Path(args.out), "--out")  # before the benchmark, not after it
        except UserError as err:
            return report_error(err)
    try:
        result = run(args)
    except UserError as err:
        return report_error(err)
    if args.out:
        write_json_atomic(Path(args.out), result)
        print(f"wrote {args.out}")
    return 0
