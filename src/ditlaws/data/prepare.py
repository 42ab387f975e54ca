"""Encode a split once and cache it as parquet shards:  python -m ditlaws.data.prepare --config configs/data/x.yaml

    [--split train|val|ood] [--num-samples N] [--out DIR] [--batch-size 64] [--device cpu|cuda] [--data.key value ...]

Shard s of S holds the source rows [s·N/S, (s+1)·N/S) (for the built-in set: sample indices, the same samples the
on-the-fly stream draws). A shard counts as done when its sidecar `shard-*.json` exists; the parquet file is written
under a temporary name and renamed first, so an interrupted run leaves no half shard and a re-run redoes only
unfinished ones. `manifest.json` (counts, shapes, dtypes, encoders, versions, source fingerprint, skipped rows) is
written last. A bad config or wrong column name stops before any work with exit code 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from ditlaws.config import load_data_config
from ditlaws.data import builtin, cache, sources
from ditlaws.data.encoders import build_image_encoder, build_text_encoder
from ditlaws.data.loader import collate_samples
from ditlaws.errors import UserError
from ditlaws.jsonio import write_json_atomic

logger = logging.getLogger("ditlaws.data.prepare")
SOURCE_FIELDS = ("source", "data_files", "data_dir", "dataset_config", "image_column", "caption_column",
                 "train_split", "val_split", "val_size", "resolution", "complexity", "seed", "image_encoder",
                 "image_encoder_subfolder", "text_encoder", "text_encoder_subfolder", "tokenizer_subfolder",
                 "text_len", "text_dim", "text_seed", "latent_dtype", "num_shards")


def count_rows(data_cfg, split: str, num_samples: int | None) -> int:
    if data_cfg.source == "builtin":
        if split == "train":
            if num_samples is None:
                raise UserError("--num-samples is required for the builtin train split (it is infinite)")
            return num_samples
        return min(num_samples or data_cfg.val_size, data_cfg.val_size)
    if split == "val" and data_cfg.val_split is None:
        return min(num_samples or data_cfg.val_size, data_cfg.val_size)
    if num_samples is not None:
        return num_samples
    stream = sources.held_out(data_cfg, sources.open_source(data_cfg, split), split)
    logger.info("counting rows of %s (pass --num-samples to skip this)", data_cfg.source)
    return sum(1 for _ in stream)


def shard_samples(data_cfg, split: str, start: int, stop: int):
    """Decoded samples {"pixels", "caption", "id", "skip"} of rows [start, stop) in source order."""
    if data_cfg.source == "builtin":
        for index in range(start, stop):
            sample = builtin.builtin_sample(data_cfg.seed, split, index, data_cfg.resolution, data_cfg.complexity)
            sample["skip"] = ""
            yield sample
        return
    stream = sources.held_out(data_cfg, sources.open_source(data_cfg, split), split)
    yield from sources.decoded(data_cfg, stream.skip(start).take(stop - start))


def tensor_specs(data_cfg, text_encoder, image_encoder) -> dict:
    side = data_cfg.resolution // image_encoder.downsample
    dtype = data_cfg.latent_dtype
    return {"latent": {"dtype": dtype, "shape": [image_encoder.latent_channels, side, side]},
            "text_states": {"dtype": dtype, "shape": [text_encoder.text_len, text_encoder.text_dim]},
            "text_mask": {"dtype": "bool", "shape": [text_encoder.text_len]},
            "pooled": {"dtype": dtype, "shape": [text_encoder.text_dim]}}


def write_shard(path: Path, samples, specs: dict, text_encoder, image_encoder, batch_size: int, device) -> dict:
    """Encode `samples` into `path` (atomically); return {"rows", "skipped": {reason: n}, "skipped_ids"}."""
    dtypes = {name: spec["dtype"] for name, spec in specs.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    skipped, skipped_ids, rows = Counter(), [], 0
    writer = None

    def flush(batch_samples):
        nonlocal writer, rows
        batch = collate_samples(batch_samples)
        states, mask, pooled = text_encoder.encode(batch["caption"])
        latents = image_encoder.encode(batch["pixels"].to(device))
        for name, tensor, spec in (("latent", latents, specs["latent"]), ("text_states", states, specs["text_states"])):
            if list(tensor.shape[1:]) != spec["shape"]:
                raise RuntimeError(f"{name} has shape {list(tensor.shape[1:])}, expected {spec['shape']}")
        table = cache.encoded_table({"latent": latents, "text_states": states, "text_mask": mask, "pooled": pooled,
                                     "caption": batch["caption"], "id": batch["id"]}, dtypes)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
        rows += len(batch_samples)

    try:
        pending = []
        for sample in samples:
            if sample["skip"]:
                skipped[sample["skip"]] += 1
                skipped_ids.append(sample["id"])
                logger.debug("skipping row %s: %s", sample["id"], sample["skip"])
                continue
            pending.append(sample)
            if len(pending) == batch_size:
                flush(pending)
                pending = []
        if pending:
            flush(pending)
        if writer is None:  # every row skipped: still write a valid, empty shard
            empty = {name: torch.zeros(0, *spec["shape"], dtype=cache.STORAGE_DTYPES[spec["dtype"]])
                     for name, spec in specs.items()}
            writer = pq.ParquetWriter(tmp, cache.encoded_table({**empty, "caption": [], "id": []}, dtypes).schema)
        writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"rows": rows, "skipped": dict(skipped), "skipped_ids": skipped_ids[:100]}


def versions() -> dict:
    import datasets
    import diffusers
    import transformers

    import ditlaws

    return {"ditlaws": ditlaws.__version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__, "datasets": datasets.__version__}


def prepare(data_cfg, split: str = "train", num_samples: int | None = None, out: str | None = None,
            batch_size: int = 64, device: str | None = None) -> dict:
    """Write (or finish) the cache of one split; return its manifest."""
    out = out or data_cfg.cache_dir
    if not out:
        raise UserError("no output folder: pass --out DIR or set data.cache_dir")
    if split not in ("train", "val", "ood"):
        raise UserError(f"--split {split!r} is not valid; choose one of train, val, ood")
    if num_samples is not None and num_samples <= 0:
        raise UserError(f"--num-samples must be positive, got {num_samples}")
    if data_cfg.source != "builtin":
        sources.open_source(data_cfg, split)  # column check before any work
    total = count_rows(data_cfg, split, num_samples)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    text_encoder = build_text_encoder(data_cfg).to(device)
    image_encoder = build_image_encoder(data_cfg).to(device)
    specs = tensor_specs(data_cfg, text_encoder, image_encoder)
    source = {key: getattr(data_cfg, key) for key in SOURCE_FIELDS}
    fingerprint = hashlib.blake2b(json.dumps({"source": source, "split": split, "rows": total}, sort_keys=True)
                                  .encode(), digest_size=16).hexdigest()

    split_dir = Path(out) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    for stale in split_dir.glob(".shard-*.tmp-*"):  # left by an interrupted run
        stale.unlink()
    shards_total = data_cfg.num_shards
    shard_infos = []
    for index in tqdm(range(shards_total), desc=f"prepare {split}", unit="shard"):
        name = cache.shard_name(index, shards_total)
        done_marker = split_dir / (name[: -len(".parquet")] + ".json")
        start, stop = index * total // shards_total, (index + 1) * total // shards_total
        if done_marker.is_file() and (split_dir / name).is_file():
            info = json.loads(done_marker.read_text())
            if info.get("fingerprint") != fingerprint:
                raise UserError(f"{split_dir}: holds shards from a different config or sample count; "
                                f"use another --out or delete that folder")
            shard_infos.append(info)
            continue
        samples = shard_samples(data_cfg, split, start, stop)
        info = write_shard(split_dir / name, samples, specs, text_encoder, image_encoder, batch_size, device)
        info.update(file=name, start=start, stop=stop, fingerprint=fingerprint)
        write_json_atomic(done_marker, info, indent=None)
        shard_infos.append(info)

    skipped = Counter()
    for info in shard_infos:
        skipped.update(info["skipped"])
    manifest = {
        "split": split, "rows": sum(i["rows"] for i in shard_infos), "source_rows": total,
        "skipped": dict(skipped), "skipped_ids": [x for i in shard_infos for x in i["skipped_ids"]][:100],
        "tensors": specs,
        "encoders": {"text": text_encoder.name, "text_dim": text_encoder.text_dim, "text_len": text_encoder.text_len,
                     "image": image_encoder.name, "latent_channels": image_encoder.latent_channels,
                     "downsample": image_encoder.downsample, "scaling_factor": image_encoder.scaling_factor,
                     "shift_factor": image_encoder.shift_factor},
        "source": source, "fingerprint": fingerprint, "versions": versions(),
        "shards": [{"file": i["file"], "rows": i["rows"], "skipped": i["skipped"]} for i in shard_infos],
    }
    if manifest["rows"] == 0:
        held = f"; the first data.val_size={data_cfg.val_size} rows are held out for val" if (
            data_cfg.source != "builtin" and split == "train" and data_cfg.val_split is None) else ""
        raise UserError(f"{data_cfg.source}: no usable rows for split {split!r} ({total} read, "
                        f"{sum(skipped.values())} skipped{held})")
    write_json_atomic(split_dir / "manifest.json", manifest)
    if skipped:
        logger.warning("%s: skipped %d unusable rows (%s); see manifest.json", split_dir, sum(skipped.values()),
                       ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ditlaws.data.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="YAML file with a `data:` section (configs/data/*.yaml)")
    parser.add_argument("--split", default="train", help="train, val or ood (builtin only)")
    parser.add_argument("--num-samples", type=int, default=None, help="rows to encode (required for builtin train)")
    parser.add_argument("--out", default=None, help="cache folder (default: data.cache_dir)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.batch_size <= 0:
            raise UserError(f"--batch-size must be positive, got {args.batch_size}")
        cfg = load_data_config(args.config, overrides)
        manifest = prepare(cfg, args.split, args.num_samples, args.out, args.batch_size, args.device)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {manifest['rows']} rows in {len(manifest['shards'])} shards "
          f"(skipped {sum(manifest['skipped'].values())}) to {Path(args.out or cfg.cache_dir) / args.split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
