"""Evaluate one checkpoint on the validation (and out-of-domain) split: loss, VLB, NLL, FID, sample grids.

``evaluate_checkpoint`` returns (and ``write_report`` writes) the eval.json record; its ``summary`` holds the
numbers the run record and the law fits read: val_loss {mean, sem}, vlb_bpd, nll_bpd, fid (ood_* for the shifted
split).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ditlaws.errors import UserError
from ditlaws.evaluation import frechet
from ditlaws.evaluation.features import get_feature_extractor
from ditlaws.evaluation.likelihood import ode_nll
from ditlaws.evaluation.samples import generate, save_grid
from ditlaws.evaluation.validation_loss import validation_loss
from ditlaws.evaluation.vlb import vlb
from ditlaws.feature_net import default_weights
from ditlaws.jsonio import write_json_atomic
from ditlaws.paths import cache_root

METRICS = ("loss", "vlb", "nll", "fid", "samples")


@dataclass
class EvalOptions:
    metrics: tuple[str, ...] = METRICS
    splits: tuple[str, ...] = ("val",)  # add "ood" for the out-of-domain split
    seed: int = 0
    batch_size: int = 64
    max_samples: int | None = None  # validation samples for loss / VLB (None: the whole split; paper: 10,000)
    loss_timesteps: int = 100  # stratified logit-normal t per sample (paper: 1,000)
    vlb_timesteps: int = 100
    vlb_proposal: str = "logsnr_uniform"
    nll_samples: int = 64
    nll_method: str = "euler"
    nll_steps: int = 500
    nll_divergence: str = "hutchinson"
    nll_probes: int = 1
    fid_samples: int = 256
    fid_features: str = "builtin-cnn"
    fid_weights: str | None = None
    sample_steps: int = 25
    guidance_scale: float = 10.0
    grid_samples: int = 32
    t_loc: float = 0.0
    t_scale: float = 1.0
    device: str | None = None

    def validate(self) -> EvalOptions:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise UserError(f"--metrics: unknown metric {unknown[0]!r}; valid: {', '.join(METRICS)}")
        bad = [s for s in self.splits if s not in ("val", "ood")]
        if bad:
            raise UserError(f"--splits: unknown split {bad[0]!r}; valid: val, ood")
        for name in ("batch_size", "loss_timesteps", "vlb_timesteps", "nll_samples", "nll_steps", "nll_probes",
                     "fid_samples", "sample_steps", "grid_samples"):
            if getattr(self, name) <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if "fid" in self.metrics and self.fid_samples < 2:
            raise UserError("--fid-samples must be at least 2 (a covariance needs two samples)")
        return self


def _cap(batches: Iterable[dict], n: int | None) -> Iterable[dict]:
    return batches if n is None else _take(batches, n)


def _take(batches, n):
    seen = 0
    for batch in batches:
        if seen >= n:
            return
        yield batch
        seen += batch["latent"].shape[0] if "latent" in batch else batch["pixels"].shape[0]


def reference_stats(extractor, real_images: Callable[[], Iterable[torch.Tensor]], n: int, cache: Path | None):
    """Feature statistics of the first n real images, cached (npz) when ``cache`` is given."""
    if cache is not None and cache.is_file():
        stats = frechet.FeatureStats.load(cache)
        if stats.n == n and stats.extractor == extractor.name:
            return stats, True
    stats = frechet.FeatureStats(extractor=extractor.name)
    for images in real_images():
        stats.update(extractor(images[: n - stats.n]))
        if stats.n >= n:
            break
    if cache is not None:
        stats.save(cache)
    return stats, False


def fid_metric(pipeline, batches, real_images, extractor, options: EvalOptions, cache: Path | None, split: str):
    ref, cached = reference_stats(extractor, real_images, options.fid_samples, cache)
    gen = frechet.FeatureStats(extractor=extractor.name)
    for out in generate(pipeline, batches, num_samples=options.fid_samples, num_inference_steps=options.sample_steps,
                        guidance_scale=options.guidance_scale, seed=options.seed):
        gen.update(extractor(out["images"]))
    return {"fid": gen.frechet_distance(ref), "feature_extractor": extractor.name, "n_generated": gen.n,
            "n_reference": ref.n, "reference_stats": str(cache) if cache else None, "reference_cached": cached,
            "num_inference_steps": options.sample_steps, "guidance_scale": options.guidance_scale, "split": split}


def stats_cache_path(root: Path, data_fingerprint: dict, split: str, n: int, extractor: str, weights: str | None):
    if extractor == "builtin-cnn":
        path = Path(weights) if weights else default_weights()
        weights = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else str(path)
    key = json.dumps({"data": data_fingerprint, "split": split, "n": n, "extractor": extractor, "weights": weights},
                     sort_keys=True)
    return root / f"{extractor}-{split}-{n}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def evaluate_model(
    model,
    *,
    batches: Callable[[str], Iterable[dict]],
    real_images: Callable[[str], Iterable[torch.Tensor]] | None,
    pipeline,
    options: EvalOptions,
    out_dir: Path,
    pixel_8bit: bool,
    stats_cache: Callable[[str, str], Path | None] = lambda split, extractor: None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the chosen metrics on each split. ``batches(split)`` makes a fresh iterable of encoded batches."""
    options.validate()
    results, timing, summary = {}, {}, {}
    extractor = None
    for split in options.splits:
        results[split] = {}
        prefix = "" if split == "val" else f"{split}_"
        for metric in options.metrics:
            started = time.perf_counter()
            if metric == "loss":
                r = validation_loss(model, batches(split), timesteps_per_sample=options.loss_timesteps,
                                    loc=options.t_loc, scale=options.t_scale, seed=options.seed,
                                    max_samples=options.max_samples, device=options.device, progress=True)
                summary[f"{prefix}val_loss"] = {"mean": r["mean"], "sem": r["sem"]}
            elif metric == "vlb":
                r = vlb(model, batches(split), timesteps_per_sample=options.vlb_timesteps,
                        proposal=options.vlb_proposal, seed=options.seed, max_samples=options.max_samples,
                        pixel_8bit=pixel_8bit, device=options.device, progress=True)
                summary[f"{prefix}vlb_bpd"] = r["bits_per_dim"]
            elif metric == "nll":
                r = ode_nll(model, _cap(batches(split), options.nll_samples), method=options.nll_method,
                            steps=options.nll_steps, divergence=options.nll_divergence, n_probes=options.nll_probes,
                            seed=options.seed, max_samples=options.nll_samples, pixel_8bit=pixel_8bit,
                            device=options.device, progress=True)
                summary[f"{prefix}nll_bpd"] = r["bits_per_dim"]
            elif metric == "fid":
                if real_images is None:
                    raise UserError("fid needs the split's images; this data source gives none")
                extractor = extractor or get_feature_extractor(options.fid_features, options.fid_weights,
                                                               options.device)
                r = fid_metric(pipeline, batches(split), lambda split=split: real_images(split), extractor,
                               options, stats_cache(split, extractor.name), split)
                summary[f"{prefix}fid"] = r["fid"]
            else:
                chunks = list(generate(pipeline, batches(split), num_samples=options.grid_samples,
                                       num_inference_steps=options.sample_steps, guidance_scale=options.guidance_scale,
                                       seed=options.seed))
                images = torch.cat([c["images"] for c in chunks])
                captions = [cap for c in chunks for cap in c["caption"]]
                grid = save_grid(images, captions, out_dir / f"samples_{split}.png")
                r = {"grid": str(grid), "captions": str(grid.with_suffix(".json")), "n": len(captions),
                     "num_inference_steps": options.sample_steps, "guidance_scale": options.guidance_scale,
                     "seed": options.seed}
            timing[f"{split}/{metric}"] = round(time.perf_counter() - started, 3)
            results[split][metric] = r
            log(f"{split}/{metric}: {_headline(metric, r)} ({timing[f'{split}/{metric}']:.1f} s)")
    return {"summary": summary, "results": results, "timing_s": timing, "options": dataclasses.asdict(options)}


def _headline(metric: str, r: dict) -> str:
    if metric == "loss":
        return f"{r['mean']:.5f} ± {r['sem']:.5f}"
    if metric in ("vlb", "nll"):
        return f"{r['bits_per_dim']:.4f} bits/dim ({r['nats_per_dim']:.4f} nats/dim)"
    if metric == "fid":
        return f"FID {r['fid']:.3f} [{r['feature_extractor']}]"
    return r["grid"]


def evaluate_checkpoint(checkpoint: str, data: str | None, options: EvalOptions, out: str | None = None,
                        data_overrides: list[str] | None = None, stats_dir: str | None = None) -> tuple[dict, Path]:
    """Load a checkpoint and its data, run ``evaluate_model``, write eval.json; returns (report, path)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ditlaws.data import build_dataset, build_image_encoder, build_text_encoder, collate_samples, make_dataloader
    from ditlaws.evaluation.loading import load_data_config, load_model, resolve_checkpoint
    from ditlaws.pipeline import DiTPipeline

    options.validate()
    model_dir, run_dir = resolve_checkpoint(checkpoint)
    data_cfg = load_data_config(data, run_dir, data_overrides or [])
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    options.device = device
    model = load_model(model_dir).to(device).eval()
    image_encoder, text_encoder = build_image_encoder(data_cfg), build_text_encoder(data_cfg)  # once, not per metric
    out_path = Path(out) if out else (run_dir or model_dir) / "eval.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    vae = getattr(image_encoder, "vae", None)
    pipeline = DiTPipeline(transformer=model, scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=vae)
    pipeline.set_progress_bar_config(disable=True)

    def batches(split: str):
        return make_dataloader(data_cfg, split, batch_size=options.batch_size, seed=data_cfg.seed,
                               text_encoder=text_encoder, image_encoder=image_encoder)

    def real_images(split: str):
        dataset = build_dataset(data_cfg, split)
        loader = torch.utils.data.DataLoader(dataset, batch_size=options.batch_size, collate_fn=collate_samples)
        return (batch["pixels"] for batch in loader)

    fingerprint = {k: v for k, v in dataclasses.asdict(data_cfg).items() if k not in ("num_workers", "cache_dir")}
    stats_root = Path(stats_dir) if stats_dir else cache_root() / "fid_stats"
    report = evaluate_model(
        model, batches=batches, real_images=real_images, pipeline=pipeline, options=options,
        out_dir=out_path.parent, pixel_8bit=data_cfg.image_encoder == "identity",
        stats_cache=lambda split, name: stats_cache_path(stats_root, fingerprint, split, options.fid_samples, name,
                                                         options.fid_weights),
    )
    report = {"checkpoint": checkpoint, "model_dir": str(model_dir), "data": dataclasses.asdict(data_cfg),
              "latent_space": "pixels in [-1, 1] (8-bit images)" if data_cfg.image_encoder == "identity"
              else f"VAE latents of {data_cfg.image_encoder} (VAE terms omitted from VLB / NLL)", **report}
    write_json_atomic(out_path, report)
    return report, out_path


def run_record_for_store(run_dir: Path | None) -> dict:
    """The run's summary.json, which names its study and run id in the store; checked before any evaluation."""
    if run_dir is None or not (run_dir / "summary.json").is_file():
        raise UserError("--store: the checkpoint is not a train_dit.py run folder (no summary.json), so its study "
                        "and run id are unknown")
    return json.loads((run_dir / "summary.json").read_text())


def store_eval(store: str | Path, record: dict, summary: dict) -> Path:
    """Merge an evaluation summary into the run's record in a LocalStore (created from `record` if absent)."""
    from ditlaws.store import LocalStore, merge

    local = LocalStore(store)
    path = local.run_path(record["study"], record["run_id"])
    if path.is_file():
        local.update_run(record["study"], record["run_id"], {"eval": summary})
    else:
        local.put_run(merge(record, {"eval": summary}))
    return path
