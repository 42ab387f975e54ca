"""Evaluate one checkpoint on the validation (and out-of-domain) split: loss, VLB, NLL, FID, accuracy, CLIP score,
sample grids.

``evaluate_checkpoint`` returns (and writes, as strict JSON) the eval.json record; its ``summary`` holds the numbers
the run record and the law fits read: val_loss {mean, sem}, vlb_bpd, nll_bpd, fid, accuracy, accuracy_colour,
accuracy_position, accuracy_shape (with their chance levels in accuracy_chance), clip_score; ood_* for the shifted
split. Everything that can be checked without computing (paths, device, weights, data/metric fit) is checked first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from ditlaws.config import EvalConfig
from ditlaws.devices import resolve_device
from ditlaws.errors import UserError
from ditlaws.evaluation import accuracy as accuracy_lib
from ditlaws.evaluation.generation import FidMeter, GridMeter, run_generation
from ditlaws.evaluation.likelihood import ode_nll
from ditlaws.evaluation.merge import merge_reports, previous_report, weights_fingerprint
from ditlaws.evaluation.reference import reference_stats
from ditlaws.evaluation.validation_loss import validation_loss
from ditlaws.evaluation.vlb import vlb
from ditlaws.jsonio import write_json_atomic
from ditlaws.paths import check_writable

GENERATION = ("fid", "accuracy", "clip", "samples")


def _cap(batches: Iterable[dict], n: int) -> Iterable[dict]:
    seen = 0
    for batch in batches:
        if seen >= n:
            return
        yield batch
        seen += batch["latent"].shape[0] if "latent" in batch else batch["pixels"].shape[0]


def fitting(batches: Iterable[dict], model_config, split: str) -> Iterable[dict]:
    """The batches, each checked to fit the model's input geometry (a data config for another model is a user
    error here, before the model sees it)."""
    from ditlaws.models.presets import input_mismatch

    for batch in batches:
        problem = input_mismatch(model_config, batch["latent"].shape, batch["text_states"].shape)
        if problem:
            raise UserError(f"--data: the {split} split does not fit the checkpoint's model: {problem}")
        yield batch


def strict_json(value):
    """The report with every non-finite float as null, so eval.json is strict JSON (no NaN / Infinity tokens)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def stats_cache_path(root: Path, data_fingerprint: dict, split: str, n: int, extractor: str, weights: str | None):
    if extractor == "builtin-cnn":
        from ditlaws.feature_net import default_weights

        path = Path(weights) if weights else default_weights()
        weights = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else str(path)
    key = json.dumps({"data": data_fingerprint, "split": split, "n": n, "extractor": extractor, "weights": weights},
                     sort_keys=True)
    return root / f"{extractor}-{split}-{n}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def accuracy_weights(cfg: EvalConfig) -> str | None:
    if cfg.accuracy_weights is not None:
        return cfg.accuracy_weights
    return cfg.fid_weights if cfg.fid_features == "builtin-cnn" else None


def load_readers(cfg: EvalConfig) -> dict:
    """The networks the chosen metrics need, loaded before any metric runs (missing weights fail fast)."""
    from ditlaws.evaluation.clip import load_clip
    from ditlaws.evaluation.features import get_feature_extractor
    from ditlaws.feature_net import BuiltinFeatureNet, default_weights

    readers = {}
    if "fid" in cfg.metrics:
        readers["fid"] = get_feature_extractor(cfg.fid_features, cfg.fid_weights, cfg.device)
    if "accuracy" in cfg.metrics:
        readers["accuracy"] = BuiltinFeatureNet.load(accuracy_weights(cfg) or default_weights()).to(cfg.device)
    if "clip" in cfg.metrics:
        readers["clip"] = load_clip(cfg.clip_model, cfg.clip_weights, cfg.device)
    return readers


def _generation_meters(cfg: EvalConfig, readers: dict, split: str, real_images, floor_images, stats_cache,
                       out_dir: Path) -> dict:
    from ditlaws.evaluation.clip import ClipScore

    meters = {}
    for metric in (m for m in cfg.metrics if m in GENERATION):
        if metric == "fid":
            if real_images is None:
                raise UserError("fid needs the split's images; this data source gives none")
            extractor = readers["fid"]
            cache = stats_cache(split, extractor.name)
            # the floor's second set of real images, for a split too short to hold it
            other, other_from = (floor_images and floor_images(split)) or (None, "")
            ref, cached = reference_stats(extractor, lambda split=split: real_images(split), cfg.fid_samples, cache,
                                          floor_images=other, floor_from=other_from)
            info = {"reference_stats": str(cache) if cache else None, "reference_cached": cached, "split": split,
                    "feature_dim": int(ref.mean.shape[0])}
            meters[metric] = (FidMeter(extractor, ref, info), cfg.fid_samples)
        elif metric == "accuracy":
            meters[metric] = (accuracy_lib.Accuracy(readers["accuracy"]), cfg.accuracy_samples)
        elif metric == "clip":
            meters[metric] = (ClipScore(readers["clip"]), cfg.clip_samples)
        else:
            meters[metric] = (GridMeter(out_dir / f"samples_{split}.png"), cfg.grid_samples)
    return meters


def evaluate_model(
    model,
    *,
    batches: Callable[[str], Iterable[dict]],
    real_images: Callable[[str], Iterable[dict]] | None,
    pipeline,
    options: EvalConfig,
    out_dir: Path,
    pixel_8bit: bool,
    stats_cache: Callable[[str, str], Path | None] = lambda split, extractor: None,
    readers: dict | None = None,
    log: Callable[[str], None] = print,
    split_size: int | None = None,
    floor_images: Callable[[str], tuple[Callable[[], Iterable[dict]], str] | None] | None = None,
) -> dict:
    """Run the chosen metrics on each split. ``batches(split)`` makes a fresh iterable of encoded batches,
    ``real_images(split)`` one of raw batches {"pixels" in [-1, 1], "caption", ...}; ``split_size`` (when known)
    sizes the cost estimate printed first. ``floor_images(split)`` gives (a maker of other real images of the
    split's distribution, what they are) for FID's real-vs-real floor where the split holds too few, or None."""
    cfg = options
    readers = load_readers(cfg) if readers is None else readers
    log_cost_estimate(model, batches, cfg, split_size, log)
    results, timing, summary = {}, {}, {}
    for split in cfg.splits:
        results[split] = {}
        prefix = "" if split == "val" else f"{split}_"
        for metric in (m for m in cfg.metrics if m not in GENERATION):
            started = time.perf_counter()
            if metric == "loss":
                r = validation_loss(model, batches(split), timesteps_per_sample=cfg.loss_timesteps, loc=cfg.t_loc,
                                    scale=cfg.t_scale, seed=cfg.seed, max_samples=cfg.max_samples,
                                    device=cfg.device, progress=True)
                summary[f"{prefix}val_loss"] = {"mean": r["mean"], "sem": r["sem"]}
            elif metric == "vlb":
                r = vlb(model, batches(split), timesteps_per_sample=cfg.vlb_timesteps, proposal=cfg.vlb_proposal,
                        seed=cfg.seed, max_samples=cfg.max_samples, pixel_8bit=pixel_8bit, device=cfg.device,
                        progress=True)
                summary[f"{prefix}vlb_bpd"] = r["bits_per_dim"]
            else:
                r = ode_nll(model, _cap(batches(split), cfg.nll_samples), method=cfg.nll_method,
                            steps=cfg.nll_steps, divergence=cfg.nll_divergence, n_probes=cfg.nll_probes,
                            seed=cfg.seed, max_samples=cfg.nll_samples, pixel_8bit=pixel_8bit, device=cfg.device,
                            progress=True)
                summary[f"{prefix}nll_bpd"] = r["bits_per_dim"]
            timing[f"{split}/{metric}"] = round(time.perf_counter() - started, 3)
            results[split][metric] = r
            log(f"{split}/{metric}: {_headline(metric, r)} ({timing[f'{split}/{metric}']:.1f} s)")
        meters = _generation_meters(cfg, readers, split, real_images, floor_images, stats_cache, out_dir)
        if not meters:
            continue
        generated, seconds, n_images = run_generation(pipeline, batches(split), meters,
                                                      num_inference_steps=cfg.sample_steps,
                                                      guidance_scale=cfg.guidance_scale, seed=cfg.seed)
        if "accuracy" in generated and real_images is not None:  # the reader's ceiling: real images of the split
            started = time.perf_counter()
            generated["accuracy"]["real_images"] = real_accuracy(readers["accuracy"], real_images(split),
                                                                 cfg.accuracy_samples)
            seconds["accuracy"] += time.perf_counter() - started
        for metric, r in generated.items():
            results[split][metric] = r
            timing[f"{split}/{metric}"] = round(seconds[metric], 3)
            summary.update({f"{prefix}{k}": v for k, v in _summary_of(metric, r).items()})
            log(f"{split}/{metric}: {_headline(metric, r)} ({seconds[metric]:.1f} s + shared generation)")
        timing[f"{split}/generate"] = round(seconds["generate"], 3)
        log(f"{split}/generate: {n_images} images for {', '.join(meters)} "
            f"({seconds['generate']:.1f} s)")
    return {"summary": summary, "results": results, "timing_s": timing, "options": dataclasses.asdict(cfg)}


def log_cost_estimate(model, batches, cfg: EvalConfig, split_size: int | None, log) -> None:
    """Print what each metric will cost before any runs (forward passes, and seconds from one timed batch)."""
    from ditlaws.evaluation import cost

    first = next(iter(batches(cfg.splits[0])), None)
    if first is None:
        return
    passes = cost.forward_passes(cfg, split_size, int(first["latent"][0].numel()))
    if not passes:
        return
    per_forward = cost.seconds_per_forward(model, first, cfg.device)
    log(f"estimated cost on {cfg.device} for {len(cfg.splits)} split(s) (one timed forward pass: "
        f"{per_forward * 1e3:.2f} ms per sample; within ~2x):")
    for line in cost.describe(passes, per_forward, len(cfg.splits)):
        log(line)


def real_accuracy(net, real_batches: Iterable[dict], n: int) -> dict:
    """Accuracy of the split's real images against their own captions: what a perfect generator would score
    with this reader (below 1 where the images are too small to read every shape)."""
    meter = accuracy_lib.Accuracy(net)
    for batch in real_batches:
        take = min(n - meter.images, len(batch["caption"]))
        if take <= 0:
            break
        meter.update(batch["pixels"][:take], batch["caption"][:take])
    return {k: v for k, v in meter.result().items() if k != "chance"}


def _summary_of(metric: str, r: dict) -> dict:
    if metric == "fid":
        return {"fid": r["fid"], "fid_floor": r.get("fid_floor")}  # the floor: real-vs-real FID, same n
    if metric == "accuracy":
        return {**{k: r[k] for k in accuracy_lib.KEYS}, "accuracy_chance": r["chance"]}
    if metric == "clip":
        return {"clip_score": r["clip_score"]}
    return {}


def _headline(metric: str, r: dict) -> str:
    if metric == "loss":
        return f"{r['mean']:.5f} ± {r['sem']:.5f}"
    if metric in ("vlb", "nll"):
        return f"{r['bits_per_dim']:.4f} bits/dim ({r['nats_per_dim']:.4f} nats/dim)"
    if metric == "fid":
        return f"FID {r['fid']:.3f} [{r['feature_extractor']}]"
    if metric == "accuracy":
        real = r.get("real_images") or {}
        return "  ".join(f"{k.removeprefix('accuracy_') if k != 'accuracy' else 'overall'} {r[k]:.3f} "
                         f"(chance {r['chance'][k]:.3f}" + (f", real {real[k]:.3f})" if real else ")")
                         for k in accuracy_lib.KEYS)
    if metric == "clip":
        return f"CLIP score {r['clip_score']:.2f} [{r['clip_model']}]"
    return r["grid"]


def result_warnings(results: dict) -> list[str]:
    """What a measured number means where it is easy to misread: FID from fewer images than feature dimensions,
    the scale of the built-in features' FID, and a negative bits/dim."""
    warnings = []
    for split, by_metric in results.items():
        fid = by_metric.get("fid")
        if fid and fid.get("feature_dim") and min(fid["n_generated"], fid["n_reference"]) <= fid["feature_dim"]:
            n = min(fid["n_generated"], fid["n_reference"])
            warnings.append(f"{split}/fid: {n} images for {fid['feature_dim']}-dim features: each covariance has "
                            f"rank <= {n - 1}, which biases FID upward; compare FIDs only at the same sample count "
                            f"(raise --fid-samples above {fid['feature_dim']} for a full-rank estimate)")
        if fid and fid.get("feature_extractor") == "builtin-cnn":
            warnings.append(f"{split}/fid: builtin-cnn features are unnormalised activations of a small network, so "
                            f"FIDs in the thousands are normal on the built-in set; two sets of real images at the "
                            f"same sample count differ too (the floor): compare only at the same extractor and count")
        for metric in ("vlb", "nll"):
            r = by_metric.get(metric)
            if r and r.get("bits_per_dim") is not None and r["bits_per_dim"] < 0:
                eight = r.get("bits_per_dim_8bit")
                warnings.append(f"{split}/{metric}: {r['bits_per_dim']:.3f} bits/dim is negative, which is not an "
                                f"error: it is -log2 of a density over continuous values in [-1, 1], which exceeds 1 "
                                f"where the model concentrates its mass"
                                + (f"; per 8-bit pixel level (+log2 127.5) it is {eight:.3f} bits/dim, the number "
                                   f"comparable to discrete image likelihoods" if eight is not None else ""))
    return warnings


def data_warnings(cfg: EvalConfig, data_cfg) -> list[str]:
    """Metric / data combinations that are refused (UserError) or that work but mislead (returned warnings)."""
    if "accuracy" in cfg.metrics and data_cfg.source != "builtin":
        raise UserError(f"--metrics accuracy scores captions of the built-in set; data.source is "
                        f"{data_cfg.source!r} (use clip for real data)")
    warnings = []
    if "fid" in cfg.metrics and cfg.fid_features == "builtin-cnn" and data_cfg.source != "builtin":
        warnings.append(f"FID features builtin-cnn were trained on the built-in set only; on data.source "
                        f"{data_cfg.source!r} its FID says little (use --fid-features clip-vit-l-14)")
    if data_cfg.source == "builtin":  # its val and ood splits hold data.val_size samples, the captions generated from
        for metric, asked in (("fid", cfg.fid_samples), ("accuracy", cfg.accuracy_samples)):
            if metric in cfg.metrics and asked > data_cfg.val_size:
                warnings.append(f"{metric} asks for {asked} images but the split holds data.val_size = "
                                f"{data_cfg.val_size}: it is measured on {data_cfg.val_size} (raise data.val_size; "
                                f"the validation loss reads only the first eval.max_samples)")
    if "clip" in cfg.metrics and data_cfg.source == "builtin":
        warnings.append("CLIP score on the built-in set: CLIP reads these tiny synthetic images poorly "
                        "(--metrics accuracy scores them exactly)")
    return warnings


def evaluate_checkpoint(checkpoint: str, data: str | None, options: EvalConfig, out: str | None = None,
                        data_overrides: list[str] | None = None, stats_dir: str | None = None) -> tuple[dict, Path]:
    """Check everything, load the checkpoint and its data, run ``evaluate_model``, write eval.json; returns
    (report, path)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ditlaws.data import build_dataset, build_image_encoder, build_text_encoder, collate_samples, make_dataloader
    from ditlaws.evaluation.loading import load_data_config, load_model, resolve_checkpoint
    from ditlaws.paths import cache_root
    from ditlaws.pipeline import DiTPipeline

    cfg = dataclasses.replace(options)
    model_dir, run_dir = resolve_checkpoint(checkpoint)
    data_cfg = load_data_config(data, run_dir, data_overrides or [])
    out_path = Path(out) if out else (run_dir or model_dir) / "eval.json"
    check_writable(out_path)
    previous = previous_report(out_path)  # read (and a damaged one refused) before any work
    stats_root = Path(stats_dir) if stats_dir else cache_root() / "fid_stats"
    if "fid" in cfg.metrics:  # the reference statistics are cached there
        check_writable(stats_root, "--fid-stats-dir" if stats_dir else "$DITLAWS_CACHE/fid_stats", folder=True)
    cfg.device = resolve_device(cfg.device, "eval.device")
    warnings = data_warnings(cfg, data_cfg)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    model = load_model(model_dir).to(cfg.device).eval()
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise UserError(f"{model_dir}: the weights hold NaN or inf values ({len(bad)} tensors, e.g. {bad[0]}); "
                        "nothing to evaluate: resume the run from an earlier checkpoint")
    readers = load_readers(cfg)
    image_encoder, text_encoder = build_image_encoder(data_cfg), build_text_encoder(data_cfg)  # once, not per metric
    vae = getattr(image_encoder, "vae", None)
    pipeline = DiTPipeline(transformer=model, scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0), vae=vae)
    pipeline.set_progress_bar_config(disable=True)

    def batches(split: str):
        return fitting(make_dataloader(data_cfg, split, batch_size=cfg.batch_size, seed=data_cfg.seed,
                                       text_encoder=text_encoder, image_encoder=image_encoder), model.config, split)

    def real_images(split: str, seed: int | None = None):
        dataset = build_dataset(data_cfg, split, seed=seed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, collate_fn=collate_samples)
        return iter(loader)

    def floor_images(split: str):
        if split == "val":
            return (lambda: real_images("train")), "the training split"
        if split == "ood" and data_cfg.source == "builtin":  # procedural: other scenes of the same shift
            seed = data_cfg.seed + 1
            return (lambda: real_images("ood", seed)), f"the ood split drawn with data.seed {seed}"
        return None

    fingerprint = {k: v for k, v in dataclasses.asdict(data_cfg).items() if k not in ("num_workers", "cache_dir")}
    known_size = data_cfg.source == "builtin" or data_cfg.val_split is None  # val_size rows held out
    report = evaluate_model(
        model, batches=batches, real_images=real_images, pipeline=pipeline, options=cfg, readers=readers,
        out_dir=out_path.parent, pixel_8bit=data_cfg.image_encoder == "identity",
        stats_cache=lambda split, name: stats_cache_path(stats_root, fingerprint, split, cfg.fid_samples, name,
                                                         cfg.fid_weights),
        split_size=data_cfg.val_size if known_size else None, floor_images=floor_images,
    )
    explained = result_warnings(report["results"])
    for warning in explained:
        print(f"note: {warning}", file=sys.stderr)
    report = {"checkpoint": checkpoint, "model_dir": str(model_dir), "model_sha256": weights_fingerprint(model_dir),
              "data": dataclasses.asdict(data_cfg),
              "latent_space": "pixels in [-1, 1] (8-bit images)" if data_cfg.image_encoder == "identity"
              else f"VAE latents of {data_cfg.image_encoder} (VAE terms omitted from VLB / NLL)",
              "warnings": warnings + explained, **report}
    report, replaced = merge_reports(previous and strict_json(previous), strict_json(report))
    if replaced:
        print(f"warning: {out_path}: {replaced}", file=sys.stderr)
    elif previous:
        print(f"merged into {out_path}, which now holds {', '.join(sorted(report['options_by_metric']))}")
    write_json_atomic(out_path, report)
    return report, out_path


def run_record_for_store(run_dir: Path | None) -> dict:
    """The run's summary.json, which names its study and run id in the store; checked before any evaluation."""
    if run_dir is None or not (run_dir / "summary.json").is_file():
        raise UserError("--store: the checkpoint is not a train_dit.py run folder (no summary.json), so its study "
                        "and run id are unknown")
    try:
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{run_dir / 'summary.json'}: not a valid run record ({type(err).__name__})") from None


def store_eval(store: str | Path, record: dict, summary: dict) -> str:
    """Merge an evaluation summary into the run's record in a run store: a local folder, or `hub://<org>/<study>`
    (one commit on the results repo, retried on a newer parent). Created from `record` if absent."""
    from ditlaws.store import LocalStore, merge, open_store

    target = open_store(store)
    if not isinstance(target, LocalStore) and target.study != record["study"]:
        raise UserError(f"--store {store}: the run belongs to study {record['study']!r}, not {target.study!r}")
    target.merge_run(merge(record, {"eval": summary}))
    if isinstance(target, LocalStore):
        return str(target.run_path(record["study"], record["run_id"]))
    return f"{store} (runs/{record['study']}/{record['run_id']}.json)"


def check_store_target(store, record: dict) -> None:
    """The run's study and id must be store names, and the record already stored for it (if any) a JSON object."""
    from ditlaws.store import LocalStore, check_name

    if not isinstance(record, dict):
        raise UserError("--store: the run's summary.json is not a JSON object")
    try:
        study, run_id = check_name("study", record.get("study")), check_name("run id", record.get("run_id"))
    except UserError as err:
        raise UserError(f"--store: the run's summary.json: {err}") from None
    if isinstance(store, LocalStore):
        path = store.run_path(study, run_id)
        if path.exists() or path.is_symlink():
            if not path.is_file():
                raise UserError(f"--store: {path} is not a file (a folder or a dangling link); move it away")
            try:
                existing = json.loads(path.read_bytes())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError) as err:
                raise UserError(f"--store: {path}: not valid JSON ({type(err).__name__}); repair or remove "
                                "it") from None
            if not isinstance(existing, dict):
                raise UserError(f"--store: {path}: a run record must be a JSON object, got "
                                f"{type(existing).__name__}; repair or remove it")
