"""Encode a split once and cache it as parquet shards:  python -m ditlaws.data.prepare --config configs/data/x.yaml

    [--split train|val|ood] [--num-samples N] [--out DIR] [--batch-size 64] [--device cpu|cuda] [--data.key value ...]

Shard s of S holds the split's rows [s·N/S, (s+1)·N/S) in source order (for the built-in set: sample indices, the
same samples the on-the-fly stream draws; for a real source: the same rows, held out or not, that training and
evaluation stream, see `ditlaws.data.sources`). The source is read once, front to back, each row routed to its
shard (N comes from --num-samples, or from a first pass over the caption column only). A shard counts as done when
its sidecar `shard-*.json` exists; the parquet file is written under a temporary name and renamed first, so an
interrupted run leaves no half shard, and a re-run passes over the rows of finished shards without decoding them
and redoes only the rest. `manifest.json` (counts, shapes, dtypes, encoders, versions, source fingerprint, skipped
rows with their file and row) is written last. A bad config or wrong column name stops before any work (exit 2).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
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
from ditlaws.data.files import expand_data_files
from ditlaws.data.loader import collate_samples
from ditlaws.devices import resolve_device
from ditlaws.errors import UserError, report, report_no_space
from ditlaws.jsonio import write_json_atomic
from ditlaws.options import ArgumentParser
from ditlaws.paths import check_writable
from ditlaws.versions import versions

logger = logging.getLogger("ditlaws.data.prepare")
SOURCE_FIELDS = ("source", "data_files", "data_dir", "dataset_config", "image_column", "caption_column",
                 "train_split", "val_split", "val_size", "resolution", "complexity", "seed", "image_encoder",
                 "image_encoder_subfolder", "text_encoder", "text_encoder_subfolder", "tokenizer_subfolder",
                 "text_len", "text_dim", "text_seed", "latent_dtype", "num_shards")
MAX_LISTED = 100  # skipped rows listed per shard and in the manifest (all are counted)


class SourceRows:
    """One split of a real source for prepare: opened once, its rows in source order with their positions."""

    def __init__(self, data_cfg, split: str):
        self.data_cfg = data_cfg
        self.raw = sources.open_source(data_cfg, split)  # checks the columns before any work
        self.range = sources.split_range(data_cfg, self.raw, split)
        self.shards = list(range(self.raw.num_shards))

    def count(self) -> int:
        """Rows in the split, from the caption column alone."""
        logger.info("counting rows of %s (pass --num-samples to skip this)", sources.describe(self.data_cfg))
        small = self.raw.select_columns([self.data_cfg.caption_column])
        return sum(1 for _ in sources.positioned_rows(self.shards, small, self.range.start, self.range.stop))

    def rows(self):
        return sources.positioned_rows(self.shards, self.raw, self.range.start, self.range.stop)

    def decode(self, row: dict) -> dict:
        c = self.data_cfg
        return sources.decode_row(row, c.image_column, c.caption_column, c.resolution)

    def file_names(self, split: str) -> list[str] | None:
        """The file behind each source shard, where `datasets` resolves one file per shard (parquet, webdataset)."""
        from datasets import load_dataset_builder

        c = self.data_cfg
        try:
            builder = load_dataset_builder(c.source, name=c.dataset_config, data_files=expand_data_files(c.data_files),
                                           data_dir=c.data_dir)
            files = [str(f) for f in builder.config.data_files[sources.hf_split(c, split)]]
        except Exception:  # best effort: without names the manifest gives the shard index
            return None
        return files if len(files) == len(self.shards) else None


def count_rows(data_cfg, split: str, num_samples: int | None, source: SourceRows | None) -> int:
    if data_cfg.source == "builtin":
        if split == "train":
            if num_samples is None:
                raise UserError("--num-samples is required for the builtin train split (it is infinite)")
            return num_samples
        return min(num_samples or data_cfg.val_size, data_cfg.val_size)
    held = source.range.held_out
    if split == "val" and held is not None:
        return min(num_samples or held, held)
    return num_samples if num_samples is not None else source.count()


def builtin_samples(data_cfg, split: str, start: int, stop: int):
    """Samples {"pixels", "caption", "id", "skip"} of the built-in set's indices [start, stop)."""
    for index in range(start, stop):
        sample = builtin.builtin_sample(data_cfg.seed, split, index, data_cfg.resolution, data_cfg.complexity)
        sample["skip"] = ""
        yield sample


def tensor_specs(data_cfg, text_encoder, image_encoder) -> dict:
    side = data_cfg.resolution // image_encoder.downsample
    dtype = data_cfg.latent_dtype
    return {"latent": {"dtype": dtype, "shape": [image_encoder.latent_channels, side, side]},
            "text_states": {"dtype": dtype, "shape": [text_encoder.text_len, text_encoder.text_dim]},
            "text_mask": {"dtype": "bool", "shape": [text_encoder.text_len]},
            "pooled": {"dtype": dtype, "shape": [text_encoder.text_dim]}}


def skipped_entry(sample: dict, files: list[str] | None) -> dict:
    """Where a skipped row is: its id, the file it came from (or its shard index) and its row inside that file."""
    shard = sample.get("shard", -1)
    file = sample.get("file") or (files[shard] if files and 0 <= shard < len(files) else f"shard {shard}")
    return {"id": sample["id"], "file": file, "row": sample.get("row", -1), "reason": sample["skip"]}


def write_shard(path: Path, samples, specs: dict, text_encoder, image_encoder, batch_size: int, device,
                files: list[str] | None = None) -> dict:
    """Encode `samples` into `path` (atomically); return {"rows", "skipped": {reason: n}, "skipped_rows"}."""
    dtypes = {name: spec["dtype"] for name, spec in specs.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    skipped, skipped_rows, rows = Counter(), [], 0
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
                if len(skipped_rows) < MAX_LISTED:
                    skipped_rows.append(skipped_entry(sample, files))
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
    return {"rows": rows, "skipped": dict(skipped), "skipped_rows": skipped_rows}


def read_marker(path: Path) -> dict | None:
    """A finished shard's sidecar; None when there is none or it is unreadable (the shard is then redone)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) else None


def check_finished_shards(split_dir: Path, fingerprint: str) -> None:
    """Shards already in `split_dir` must be of this config and sample count: refused before any work, not mixed."""
    for marker in sorted(split_dir.glob("shard-*.json")) if split_dir.is_dir() else []:
        info = read_marker(marker)
        if info is not None and info.get("fingerprint") != fingerprint:
            raise UserError(f"{split_dir}: holds shards from a different config or sample count ({marker.name}); "
                            "use another --out or delete that folder")


def no_rows_message(data_cfg, source, split: str, total: int, skipped: int) -> str:
    held = source.range.held_out if source is not None and split == "train" else None
    held = (f"; the first {held} rows are held out for val (data.val_size {data_cfg.val_size}: lower it)"
            if held else "")
    return (f"data.source {sources.describe(data_cfg)}: no usable rows for split {split!r} ({total} read, "
            f"{skipped} skipped{held})")


def prepare(data_cfg, split: str = "train", num_samples: int | None = None, out: str | None = None,
            batch_size: int = 64, device: str | None = None) -> dict:
    """Write (or finish) the cache of one split; return its manifest."""
    flag = "--out" if out else "data.cache_dir"
    out = out or data_cfg.cache_dir
    if not out:
        raise UserError("no output folder: pass --out DIR or set data.cache_dir")
    if split not in ("train", "val", "ood"):
        raise UserError(f"--split {split!r} is not valid; choose one of train, val, ood")
    check_writable(Path(out), flag, folder=True)
    check_writable(Path(out) / split, flag, folder=True)  # <out>/<split> a file: refused too
    device = resolve_device(device)
    if num_samples is not None and num_samples <= 0:
        raise UserError(f"--num-samples must be positive, got {num_samples}")
    source = SourceRows(data_cfg, split) if data_cfg.source != "builtin" else None  # columns checked here
    total = count_rows(data_cfg, split, num_samples, source)
    settings = {key: getattr(data_cfg, key) for key in SOURCE_FIELDS}
    fingerprint = hashlib.blake2b(json.dumps({"source": settings, "split": split, "rows": total}, sort_keys=True)
                                  .encode(), digest_size=16).hexdigest()
    split_dir = Path(out) / split
    check_finished_shards(split_dir, fingerprint)
    if total == 0:
        raise UserError(no_rows_message(data_cfg, source, split, 0, 0))
    text_encoder = build_text_encoder(data_cfg).to(device)
    image_encoder = build_image_encoder(data_cfg).to(device)
    specs = tensor_specs(data_cfg, text_encoder, image_encoder)

    created = [p for p in (split_dir, *split_dir.parents) if not p.exists()]
    split_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for stale in split_dir.glob(".shard-*.tmp-*"):  # left by an interrupted run
        stale.unlink()
    shards_total = data_cfg.num_shards
    rows = source.rows() if source is not None else None  # one pass over the source, routed to the shards in turn
    files = source.file_names(split) if source is not None else None
    shard_infos = []
    for index in tqdm(range(shards_total), desc=f"prepare {split}", unit="shard"):
        name = cache.shard_name(index, shards_total)
        done_marker = split_dir / (name[: -len(".parquet")] + ".json")
        start, stop = index * total // shards_total, (index + 1) * total // shards_total
        info = read_marker(done_marker)
        if info is not None and (split_dir / name).is_file():
            if rows is not None:  # pass over this shard's rows without decoding them
                collections.deque(itertools.islice(rows, stop - start), maxlen=0)
            shard_infos.append(info)
            continue
        if rows is None:
            samples = builtin_samples(data_cfg, split, start, stop)
        else:
            samples = map(source.decode, itertools.islice(rows, stop - start))
        info = write_shard(split_dir / name, samples, specs, text_encoder, image_encoder, batch_size, device, files)
        written.append(split_dir / name)
        info.update(file=name, start=start, stop=stop, fingerprint=fingerprint)
        write_json_atomic(done_marker, info, indent=None)
        written.append(done_marker)
        shard_infos.append(info)

    skipped = Counter()
    for info in shard_infos:
        skipped.update(info["skipped"])
    manifest = {
        "split": split, "rows": sum(i["rows"] for i in shard_infos), "source_rows": total,
        "skipped": dict(skipped),
        "skipped_rows": [x for i in shard_infos for x in i.get("skipped_rows", [])][:MAX_LISTED],
        "tensors": specs,
        "encoders": {"text": text_encoder.name, "text_dim": text_encoder.text_dim, "text_len": text_encoder.text_len,
                     "image": image_encoder.name, "latent_channels": image_encoder.latent_channels,
                     "downsample": image_encoder.downsample, "scaling_factor": image_encoder.scaling_factor,
                     "shift_factor": image_encoder.shift_factor},
        "source": settings, "fingerprint": fingerprint, "versions": versions(),
        "shards": [{"file": i["file"], "rows": i["rows"], "skipped": i["skipped"]} for i in shard_infos],
    }
    if manifest["rows"] == 0:  # refused: what this run wrote goes, so a corrected rerun starts clean
        for path in written:
            path.unlink(missing_ok=True)
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise UserError(no_rows_message(data_cfg, source, split, total, sum(skipped.values())))
    write_json_atomic(split_dir / "manifest.json", manifest)
    if skipped:
        logger.warning("%s: skipped %d unusable rows (%s); see manifest.json", split_dir, sum(skipped.values()),
                       ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m ditlaws.data.prepare", description=__doc__.splitlines()[0])
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
        return report(err)
    except OSError as err:
        return report_no_space(err, args.out,
                               "finished shards are kept: free space and run the same command again to finish")
    print(f"wrote {manifest['rows']} rows in {len(manifest['shards'])} shards "
          f"(skipped {sum(manifest['skipped'].values())}) to {Path(args.out or cfg.cache_dir) / args.split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
