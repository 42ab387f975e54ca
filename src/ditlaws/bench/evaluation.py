"""Evaluation throughput at demo scale: validation loss, VLB, exact NLL and FID features, in samples/s.

Each metric runs on the fixed validation set of the demo's data config with a freshly built model of one demo size
(throughput does not depend on the weights); the settings are small versions of the demo's own.
"""

from __future__ import annotations

import time

import torch


def _rate(fn, samples: int) -> dict:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return {"samples": samples, "seconds": seconds, "samples_per_s": samples / seconds}


def eval_throughput(cfg, plan, quick: bool) -> list[dict]:
    from ditlaws.data.loader import make_dataloader
    from ditlaws.evaluation.likelihood import ode_nll
    from ditlaws.evaluation.validation_loss import validation_loss
    from ditlaws.evaluation.vlb import vlb
    from ditlaws.feature_net import BuiltinFeatureNet

    torch.manual_seed(0)
    model = plan.build_model().eval()
    n = 64 if quick else 128
    timesteps, nll_samples, nll_steps = (4, 8, 10) if quick else (8, 16, 50)

    def val_batches():
        return make_dataloader(cfg.data, "val", batch_size=64)

    rows = []
    loss = _rate(lambda: validation_loss(model, val_batches(), timesteps_per_sample=timesteps, max_samples=n), n)
    rows.append({"metric": f"validation loss ({timesteps} t per sample)", **loss})
    bound = _rate(lambda: vlb(model, val_batches(), timesteps_per_sample=timesteps, max_samples=n), n)
    rows.append({"metric": f"VLB ({timesteps} t per sample)", **bound})
    nll = _rate(lambda: ode_nll(model, val_batches(), steps=nll_steps, max_samples=nll_samples), nll_samples)
    rows.append({"metric": f"NLL (Euler, {nll_steps} steps, Hutchinson)", **nll})
    net = BuiltinFeatureNet(resolution=cfg.data.resolution).eval()
    images = torch.rand(n, 3, cfg.data.resolution, cfg.data.resolution) * 2 - 1
    with torch.no_grad():
        features = _rate(lambda: net.features(images), n)
    rows.append({"metric": "FID features (builtin-cnn)", **features})
    return rows
