"""Loader throughput vs the training step's consumption (samples/s), on this machine's CPU by default.

    python benchmarks/bench_loader.py [--config configs/data/builtin32.yaml] [--batch 64] [--depth 4] [--patch 4]

Prints samples/s for (1) on-the-fly built-in data (draw + encode), (2) the prepared parquet cache streamed back,
(3) a DiT forward + backward + AdamW step at the demo size. The loader should be >= 5x the step.
"""

import argparse
import itertools
import tempfile
import time

import torch

from ditlaws.data.loader import make_dataloader
from ditlaws.data.prepare import load_data_config, prepare


def rate(batches, batch_size: int, warmup: int = 2) -> float:
    iterator = iter(batches)
    for _ in itertools.islice(iterator, warmup):
        pass
    start, n = time.perf_counter(), 0
    for _ in iterator:
        n += batch_size
    return n / (time.perf_counter() - start)


def step_rate(cfg, batch_size: int, depth: int, patch: int, steps: int) -> float:
    from ditlaws.models import build_model

    model = build_model("in_context", sample_size=cfg.resolution, in_channels=3, patch_size=patch, depth=depth,
                        text_dim=cfg.text_dim, text_len=cfg.text_len)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = next(iter(make_dataloader(cfg, "train", batch_size)))

    def step():
        t = torch.rand(batch_size)
        noise = torch.randn_like(batch["latent"])
        x_t = (1 - t[:, None, None, None]) * batch["latent"] + t[:, None, None, None] * noise
        v = model(x_t, t, batch["text_states"], text_mask=batch["text_mask"], pooled=batch["pooled"])
        loss = (v - (noise - batch["latent"])).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"  model: in_context depth {depth}, patch {patch}, {n_params / 1e6:.2f}M params")
    return steps * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/data/builtin32.yaml")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--cache-samples", type=int, default=4096)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--patch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = load_data_config(args.config)
    print(f"torch threads: {torch.get_num_threads()}, resolution {cfg.resolution}, batch {args.batch}")
    fly = rate(itertools.islice(make_dataloader(cfg, "train", args.batch), args.batches + 2), args.batch)
    print(f"on-the-fly built-in (draw + encode): {fly:9.0f} samples/s")
    with tempfile.TemporaryDirectory() as folder:
        cfg.cache_dir = folder
        prepare(cfg, "train", num_samples=args.cache_samples, batch_size=256)
        batches = args.cache_samples // args.batch
        cached = rate(itertools.islice(make_dataloader(cfg, "train", args.batch), batches), args.batch)
        cfg.cache_dir = None
    print(f"cached parquet shards (stream + decode): {cached:9.0f} samples/s")
    try:
        train = step_rate(cfg, args.batch, args.depth, args.patch, args.steps)
    except ImportError as err:
        print(f"training step: skipped ({err})")
        return
    print(f"training step (forward + backward + AdamW): {train:9.0f} samples/s")
    print(f"loader / step: on-the-fly {fly / train:.1f}x, cached {cached / train:.1f}x (goal >= 5x)")


if __name__ == "__main__":
    main()
