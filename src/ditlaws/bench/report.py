"""The benchmark's tables as plain text (markdown pipes, so they paste into docs/performance.md)."""

from __future__ import annotations


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.rjust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def _ratio(value) -> str:
    return "" if value is None else f"{value:.2f}x"


def peaks_table(peaks: dict) -> str:
    rows = [[p["dtype"], f"{p['n']}²", f"{p['median_s'] * 1e3:.1f}", f"{p['flops_per_s'] / 1e9:.0f}"]
            for p in peaks.values()]
    return table(["torch.mm", "size", "ms", "GFLOP/s"], rows)


def step_table(rows: list[dict]) -> str:
    body = [[r["model"], r["size"], r["precision"], f"{r['params'] / 1e6:.2f}M", f"{r['flops_per_step'] / 1e9:.2f}",
             f"{r['median_s'] * 1e3:.1f}", f"{r['samples_per_s']:.0f}", f"{r['tokens_per_s']:.0f}",
             f"{r['flops_per_s'] / 1e9:.0f}", f"{r['pct_bf16_peak']:.0f} %", _ratio(r["vs_diffusers_dit"]),
             f"{r['min_s'] * 1e3:.1f}", _ratio(r.get("vs_diffusers_dit_best")),
             f"{r['cpu_median_s'] * 1e3:.0f}" if "cpu_median_s" in r else "", _ratio(r.get("vs_diffusers_dit_cpu"))]
            for r in rows]
    return table(["model", "size", "prec", "params", "GFLOP/step", "step ms", "samples/s", "tokens/s", "GFLOP/s",
                  "of bf16 peak", "vs DiT", "best ms", "vs DiT (best)", "CPU ms", "vs DiT (CPU)"], body)


def loop_table(rows: list[dict]) -> str:
    body = [[r["model"], r["size"], r["precision"], f"{r['params'] / 1e3:.0f}k", f"{r['bare_step_s'] * 1e3:.1f}",
             f"{r['bare_samples_per_s']:.0f}", f"{r['loop_samples_per_s']:.0f}", _ratio(r["loop_vs_bare"])]
            for r in rows]
    return table(["model", "size", "prec", "params", "bare step ms", "bare samples/s", "train() samples/s",
                  "train / bare"], body)


def eval_table(rows: list[dict]) -> str:
    return table(["evaluation", "samples", "s", "samples/s"],
                 [[r["metric"], r["samples"], f"{r['seconds']:.2f}", f"{r['samples_per_s']:.1f}"] for r in rows])


def loader_table(row: dict) -> str:
    return table(["data loader (built-in, on the fly)", "batch", "samples/s", "step consumes samples/s", "ratio"],
                 [["train stream", row["batch"], f"{row['samples_per_s']:.0f}", f"{row['step_samples_per_s']:.0f}",
                   _ratio(row["samples_per_s"] / row["step_samples_per_s"])]])
