"""The coordinate check: is μP wired in? Mean |activation| per layer type against width, over the first steps.

    ditlaws coordcheck --config configs/train/demo.yaml --widths 16,32,64,128,256 --heads 2 [--steps 5]

For `sp` and `mup` and every width, the run config's model is trained for `--steps` AdamW steps at the config's
learning rate (the config's data, batch, seed and step draws; no warmup, so step 1 already moves the weights by lr),
and the mean absolute coordinate of four activations is recorded in the forward pass of each step (step 0 = the
initial weights): the block input (embedding: patch + position, text and time tokens), the attention output and
the MLP output (averaged over blocks), and the model's output (the velocity). Under μP each curve is flat in width;
under SP the hidden ones grow with width after the first update (Yang et al. 2022, Fig. 5; Zheng et al. 2025, Fig. 2).
Writes <out>/coordcheck.json and <out>/coordcheck.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

LAYERS = ("embedding", "attention_out", "mlp_out", "output")


def _recorder(model):
    """Forward hooks that add each layer type's mean |activation| of the current forward pass to `sums`."""
    from ditlaws.models.layers import Attention, Mlp

    sums: dict[str, list[float]] = {name: [] for name in LAYERS}

    def keep(name):
        return lambda _module, _inputs, output: sums[name].append(output.detach().abs().mean().item())

    handles = [model.blocks[0].register_forward_pre_hook(
        lambda _module, args: sums["embedding"].append(args[0].detach().abs().mean().item()))]
    for module in model.modules():
        if isinstance(module, Attention) and not module.cross:
            handles.append(module.register_forward_hook(keep("attention_out")))
        elif isinstance(module, Mlp):
            handles.append(module.register_forward_hook(keep("mlp_out")))
    handles.append(model.register_forward_hook(keep("output")))
    return sums, handles


def coordinates(cfg, steps: int) -> list[dict[str, float]]:
    """Mean |activation| per layer type in the forward pass of steps 0..steps (fp32, this process, CPU or GPU)."""
    import torch

    from ditlaws.data.loader import make_dataloader
    from ditlaws.flow import flow_loss
    from ditlaws.training.optim import build_optimizer, set_lr
    from ditlaws.training.plan import plan_run
    from ditlaws.training.rng import draw_step

    t = cfg.train
    plan = plan_run(cfg, check_warmup=False)
    torch.manual_seed(t.seed)
    model = plan.build_model().train()
    optimizer = build_optimizer(model, lr=t.lr, weight_decay=t.weight_decay, betas=t.betas, eps=t.eps, fused=True)
    set_lr(optimizer, t.lr)
    params = [p for p in model.parameters() if p.requires_grad]
    batches = iter(make_dataloader(cfg.data, "train", batch_size=t.global_batch))
    sums, handles = _recorder(model)
    rows = []
    for step in range(steps + 1):
        batch = next(batches)
        draws = draw_step(t.seed, step, t.global_batch, tuple(batch["latent"].shape[1:]), sampler=t.t_sampler,
                          loc=t.t_loc, scale=t.t_scale, caption_drop=t.caption_drop)
        for values in sums.values():
            values.clear()
        loss = flow_loss(model, batch["latent"], batch["text_states"], batch["text_mask"], batch["pooled"],
                         t=draws["t"], noise=draws["noise"], drop_text=draws["drop"]).mean()
        rows.append({name: sum(v) / len(v) for name, v in sums.items()} | {"loss": loss.item()})
        if step == steps:
            break
        loss.backward()
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for handle in handles:
        handle.remove()
    return rows


def coordcheck(cfg, widths: list[int], heads: int, steps: int, base_width: int | None = None,
               progress=None) -> dict:
    """{"widths", "steps", "base_width", "heads", "lr", "results": {param: {layer: [[value per width] per step]}},
    "spread": {param: {layer: max/min over widths at the last step}}, "growth": {...: last width / first}}."""
    from ditlaws.mup.widths import PARAMETRIZATIONS, at_width

    base_width = base_width or widths[0]
    cfg = _fp32_no_warmup(cfg)
    results = {p: {layer: [[0.0] * len(widths) for _ in range(steps + 1)] for layer in LAYERS}
               for p in PARAMETRIZATIONS}
    losses = {p: [[0.0] * len(widths) for _ in range(steps + 1)] for p in PARAMETRIZATIONS}
    for p in PARAMETRIZATIONS:
        for i, width in enumerate(widths):
            if progress:
                progress(f"{p} width {width}")
            rows = coordinates(at_width(cfg, width, heads, p, base_width), steps)
            for s, row in enumerate(rows):
                for layer in LAYERS:
                    results[p][layer][s][i] = row[layer]
                losses[p][s][i] = row["loss"]
    last = {p: {layer: results[p][layer][steps] for layer in LAYERS} for p in PARAMETRIZATIONS}
    return {"widths": widths, "steps": steps, "base_width": base_width, "heads": heads, "lr": cfg.train.lr,
            "results": results, "losses": losses,
            "spread": {p: {k: max(v) / min(v) if min(v) > 0 else float("inf") for k, v in last[p].items()}
                       for p in PARAMETRIZATIONS},
            "growth": {p: {k: v[-1] / v[0] if v[0] > 0 else float("inf") for k, v in last[p].items()}
                       for p in PARAMETRIZATIONS}}


def _fp32_no_warmup(cfg):
    import copy

    cfg = copy.deepcopy(cfg)
    cfg.train.warmup_steps, cfg.train.mixed_precision = 0, "no"
    cfg.train.steps, cfg.train.budget = 1, None  # the plan needs an amount; the check's steps are its own
    return cfg


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(LAYERS), figsize=(3.2 * len(LAYERS), 5.6), sharex=True, sharey="col", squeeze=False)
    widths, steps = result["widths"], result["steps"]
    colors = plt.cm.viridis([s / max(1, steps) for s in range(steps + 1)])
    for row, p in enumerate(("sp", "mup")):
        for col, layer in enumerate(LAYERS):
            ax = axes[row][col]
            for s in range(steps + 1):
                values = result["results"][p][layer][s]
                if max(values) > 0:
                    ax.plot(widths, values, marker="o", ms=3, color=colors[s], label=f"step {s}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{p}: {layer.replace('_', ' ')}", fontsize=9)
            if row == 1:
                ax.set_xlabel("width")
            if col == 0:
                ax.set_ylabel("mean |activation|")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"coordinate check: lr {result['lr']:g}, heads {result['heads']}, μP base width "
                 f"{result['base_width']} (flat = width-independent)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from ditlaws.config import load_config
    from ditlaws.errors import UserError, report
    from ditlaws.jsonio import write_json_atomic
    from ditlaws.mup.widths import parse_widths, resolve_heads
    from ditlaws.options import ArgumentParser

    parser = ArgumentParser(prog="ditlaws coordcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a run config YAML (its model, data and train sections)")
    parser.add_argument("--widths", default="16,32,64,128,256", help="comma-separated widths")
    parser.add_argument("--heads", type=int, help="attention heads at every width (default: the config's)")
    parser.add_argument("--steps", type=int, default=5, help="AdamW steps (activations at steps 0..steps)")
    parser.add_argument("--base-width", type=int, help="μP base width (default: the smallest width)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the config's train.lr)")
    parser.add_argument("--out", default="outputs/coordcheck", help="folder for coordcheck.json / .png")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.steps < 1:
            raise UserError(f"--steps must be a positive integer, got {args.steps}")
        if args.lr is not None and not args.lr > 0:
            raise UserError(f"--lr must be positive, got {args.lr}")
        cfg = load_config(args.config, ["--train.lr", str(args.lr)] if args.lr else [])
        widths = parse_widths(args.widths)
        heads = resolve_heads(cfg, widths, args.heads)
        base = args.base_width or widths[0]
        if base % heads or base % 4:
            raise UserError(f"--base-width ({base}) must be divisible by 4 and by the heads ({heads})")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        result = coordcheck(cfg, widths, heads, args.steps, base,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    except UserError as err:
        return report(err)
    result["config"] = str(args.config)
    write_json_atomic(out / "coordcheck.json", result)
    plot(result, out / "coordcheck.png")
    for p in ("sp", "mup"):
        spread = ", ".join(f"{k} {v:.2f}x" for k, v in result["spread"][p].items())
        print(f"{p:>3}: spread over widths at step {args.steps} (max/min): {spread}")
    print(f"wrote {out / 'coordcheck.json'} and {out / 'coordcheck.png'}")
    return 0
