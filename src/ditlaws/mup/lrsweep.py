"""Learning-rate transfer, measured: loss against learning rate for a few widths, under `sp` and `mup`.

    ditlaws lrsweep --config configs/train/demo.yaml --widths 16,32,64 --heads 2 \\
        --lrs 5e-4,1e-3,2e-3,4e-3,8e-3,1.6e-2 --steps 200 --out outputs/lrsweep

Every (parametrization, width, lr) is one ordinary training run (`ditlaws.training.train`, so a rerun skips finished
runs and resumes interrupted ones) of the config at that width, with `--steps` steps (the same data for every width;
without `--steps`, the config's `train.steps` or `train.budget`). Its loss is the mean training loss over the last
10 % of steps (fresh samples every step, so an unbiased estimate of the expected loss). At the base width μP is the
SP model bit for bit, so those runs are trained once and reported under both. A run whose loss becomes NaN / inf
counts as diverged. Per width, the best learning rate is the vertex of a parabola in ln lr through the grid's lowest
point and up to two neighbours on each side (the grid's best point when the vertex is not inside them).

Writes <out>/lrsweep.json, <out>/lrsweep.png and <out>/tuned.yaml: the config with `model.parametrization: mup`,
`model.base_width` and `train.lr` = μP's best learning rate at the base width, for a sweep's `base_config`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

WINDOW = 2  # grid points on each side of the lowest one that the parabola uses


def best_lr(lrs: list[float], losses: list[float]) -> dict:
    """{"lr", "interior", "points"}: the vertex of a parabola in ln lr around the lowest finite loss, or that grid
    point ("interior": False) when fewer than 3 points or the vertex is not a minimum inside the fitted points."""
    finite = [(lr, loss) for lr, loss in sorted(zip(lrs, losses)) if math.isfinite(loss)]
    if not finite:
        return {"lr": None, "interior": False, "points": 0}
    i = min(range(len(finite)), key=lambda k: finite[k][1])
    window = finite[max(0, i - WINDOW): i + WINDOW + 1]
    x = np.log([lr for lr, _ in window])
    y = np.array([loss for _, loss in window])
    if len(window) >= 3 and 0 < i < len(finite) - 1:
        a, b, _ = np.polyfit(x, y, 2)
        if a > 0 and x.min() < -b / (2 * a) < x.max():
            return {"lr": float(math.exp(-b / (2 * a))), "interior": True, "points": len(window)}
    return {"lr": finite[i][0], "interior": False, "points": len(window)}


def run_one(cfg, out: Path, name: str) -> float:
    """Train (or reuse) one run; its loss, or inf when it diverged."""
    from ditlaws.training import NonFiniteLossError, train

    cfg.train.output_dir, cfg.train.run_id = str(out / "runs" / name), name
    try:
        summary = train(cfg)
    except NonFiniteLossError:
        return float("inf")
    loss = summary.get("loss_last10pct")
    return float(loss) if loss is not None and math.isfinite(loss) else float("inf")


def lrsweep(cfg, widths: list[int], lrs: list[float], heads: int, out: Path, base_width: int | None = None,
            steps: int | None = None, progress=None) -> dict:
    from ditlaws.mup.widths import PARAMETRIZATIONS, at_width

    base_width = base_width or widths[0]
    if steps is not None:
        cfg.train.steps, cfg.train.budget = steps, None
    cfg.hub.org = None  # nothing of a tuning sweep is pushed
    cfg.train.checkpoint_every, cfg.train.keep_checkpoints, cfg.train.resume = 0, 1, "latest"
    results: dict[str, dict[str, dict[str, float]]] = {p: {} for p in PARAMETRIZATIONS}
    for width in widths:
        for p in PARAMETRIZATIONS:
            row = results[p].setdefault(str(width), {})
            for lr in lrs:
                if p == "mup" and width == base_width:  # μP at its base width is the SP model
                    row[repr(lr)] = results["sp"][str(width)][repr(lr)]
                    continue
                if progress:
                    progress(f"{p} width {width} lr {lr:g}")
                run_cfg = at_width(cfg, width, heads, p, base_width)
                run_cfg.train.lr = lr
                row[repr(lr)] = run_one(run_cfg, out, f"{p}-w{width}-lr{lr:g}")
    best = {p: {w: best_lr(lrs, [row[repr(lr)] for lr in lrs]) for w, row in results[p].items()}
            for p in PARAMETRIZATIONS}
    shift = {}
    for p in PARAMETRIZATIONS:
        found = [b["lr"] for b in best[p].values() if b["lr"] is not None]
        shift[p] = max(found) / min(found) if found else None
    return {"widths": widths, "lrs": lrs, "heads": heads, "base_width": base_width, "steps": cfg.train.steps,
            "budget": cfg.train.budget, "global_batch": cfg.train.global_batch, "loss": "mean training loss over "
            "the last 10% of steps", "results": results, "best": best, "best_lr_shift": shift}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    lrs = result["lrs"]
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(result["widths"])))
    finite = [v for p in result["results"].values() for row in p.values() for v in row.values() if math.isfinite(v)]
    top = max(finite) if finite else 1.0
    for ax, p in zip(axes, ("sp", "mup")):
        for color, width in zip(colors, result["widths"]):
            losses = [result["results"][p][str(width)][repr(lr)] for lr in lrs]
            ax.plot(lrs, [v if math.isfinite(v) else np.nan for v in losses], marker="o", color=color,
                    label=f"width {width}")
            diverged = [lr for lr, v in zip(lrs, losses) if not math.isfinite(v)]
            ax.plot(diverged, [top] * len(diverged), "x", color=color)
            best = result["best"][p][str(width)]
            if best["lr"] is not None:
                ax.axvline(best["lr"], color=color, ls=":", lw=1)
        shift = result["best_lr_shift"][p]
        title = f"{p}: best lr moves {shift:.2f}x over widths" if shift else p
        ax.set(xscale="log", xlabel="learning rate", title=title)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("training loss (last 10% of steps)")
    amount = f"{result['steps']} steps" if result["steps"] else f"budget {result['budget']:.3g}"
    fig.suptitle(f"learning-rate transfer: {amount} of batch {result['global_batch']}, heads {result['heads']}, "
                 f"μP base width {result['base_width']} (dotted: best lr, parabola in ln lr; x: diverged)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_tuned(config_path: str, result: dict, path: Path) -> float | None:
    """The input config with μP and the base width's best learning rate; None when that width has no best lr."""
    import yaml

    from ditlaws.config import read_yaml

    lr = result["best"]["mup"][str(result["base_width"])]["lr"]
    if lr is None:
        return None
    raw = read_yaml(config_path)
    raw.setdefault("model", {}).update(parametrization="mup", base_width=result["base_width"])
    raw.setdefault("train", {})["lr"] = float(f"{lr:.4g}")
    header = (f"# {config_path} with μP and the learning rate of `ditlaws lrsweep` ({path.parent}):\n"
              f"# the best lr at the base width {result['base_width']}, which transfers to every width.\n")
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return lr


def _floats(text: str, option: str) -> list[float]:
    from ditlaws.errors import UserError

    try:
        values = sorted(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{option}: a comma-separated list of positive numbers, got {text!r}") from None
    if len(values) < 3 or len(set(values)) < len(values) or not all(math.isfinite(v) and v > 0 for v in values):
        raise UserError(f"{option}: at least three different positive learning rates, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    from ditlaws.config import load_config
    from ditlaws.errors import UserError, report
    from ditlaws.jsonio import write_json_atomic
    from ditlaws.mup.widths import parse_widths, resolve_heads
    from ditlaws.options import ArgumentParser

    parser = ArgumentParser(prog="ditlaws lrsweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a run config YAML (its model, data and train sections)")
    parser.add_argument("--widths", default="16,32,64", help="comma-separated widths")
    parser.add_argument("--lrs", required=True, help="comma-separated learning rates (a grid in log space)")
    parser.add_argument("--heads", type=int, help="attention heads at every width (default: the config's)")
    parser.add_argument("--steps", type=int, help="steps of every run (default: the config's steps or budget)")
    parser.add_argument("--base-width", type=int, help="μP base width (default: the smallest width)")
    parser.add_argument("--out", default="outputs/lrsweep", help="folder: runs/, lrsweep.json/.png, tuned.yaml")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.steps is not None and args.steps < 1:
            raise UserError(f"--steps must be a positive integer, got {args.steps}")
        cfg = load_config(args.config)
        widths, lrs = parse_widths(args.widths), _floats(args.lrs, "--lrs")
        heads = resolve_heads(cfg, widths, args.heads)
        base = args.base_width or widths[0]
        if base not in widths:
            raise UserError(f"--base-width ({base}) must be one of --widths {widths}")
        if cfg.train.warmup_steps >= (args.steps or cfg.train.steps or math.inf):
            raise UserError(f"train.warmup_steps ({cfg.train.warmup_steps}) must be below the steps of a run")
        out = Path(args.out)
        result = lrsweep(cfg, widths, lrs, heads, out, base, args.steps,
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    except UserError as err:
        return report(err)
    result["config"] = str(args.config)
    write_json_atomic(out / "lrsweep.json", result)
    plot(result, out / "lrsweep.png")
    tuned = write_tuned(args.config, result, out / "tuned.yaml")
    for p in ("sp", "mup"):
        best = ", ".join(f"w{w} {b['lr']:.3g}{'' if b['interior'] else ' (grid edge/point)'}"
                         for w, b in result["best"][p].items() if b["lr"] is not None)
        shift = result["best_lr_shift"][p]
        print(f"{p:>3}: best lr {best}; moves {shift:.2f}x across widths" if shift else f"{p:>3}: no finite run")
    if tuned:
        print(f"wrote {out / 'tuned.yaml'} (μP, base width {base}, train.lr {tuned:.4g})")
    print(f"wrote {out / 'lrsweep.json'} and {out / 'lrsweep.png'}")
    return 0
