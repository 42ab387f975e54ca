"""Real image-text datasets, streamed with `datasets.load_dataset(..., streaming=True)`.

`data.source` is a Hub name or a builder ("parquet", "webdataset", "imagefolder") with `data_files` / `data_dir`;
`data.image_column` / `data.caption_column` name the columns. Images are resized (shorter side) and centre-cropped
to `data.resolution`. Rows whose image does not decode or whose caption is empty are marked with a `skip` reason
(dropped and counted by the training stream, counted and listed by the prepare step).

Every row is tagged with its position in the source: (shard, row), the index of its file (a `datasets` shard) in
the sorted file list and its index inside that file. Which split a row belongs to is decided by that position
alone, so every rank and every DataLoader worker agrees, however the files are spread over them. Without
`data.val_split`, the validation rows are the first `val_size` rows of the source in file order, i.e. the
positions before the *cut* (`holdout_cut`, found by counting rows of the first files), and training reads every
position from the cut on; the prepare step uses the same positions, so the cache holds the same split.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass

import numpy as np
from datasets import Image as ImageFeature
from datasets import IterableDataset, load_dataset
from datasets.distributed import split_dataset_by_node
from PIL import Image

from ditlaws.data.files import check_local_files, expand_data_files
from ditlaws.errors import UserError

logger = logging.getLogger(__name__)
ID_COLUMNS = ("__key__", "id", "image_id", "key")
URL_COLUMN = "__url__"  # webdataset: the tar a row came from
SHARD, ROW = "__shard__", "__row__"
Position = tuple[int, int]


def hf_split(data_cfg, split: str) -> str:
    return data_cfg.train_split if split == "train" or data_cfg.val_split is None else data_cfg.val_split


def describe(data_cfg) -> str:
    """The source as a user wrote it, for messages: 'parquet (data_files /x/*.parquet)' or 'user/set'."""
    where = [f"{key} {getattr(data_cfg, key)}" for key in ("data_files", "data_dir") if getattr(data_cfg, key)]
    return f"{data_cfg.source!r}" + (f" ({', '.join(where)})" if where else "")


def open_source(data_cfg, split: str) -> IterableDataset:
    """The raw stream of a real source's split, in source order, columns checked (images left undecoded)."""
    if split == "ood":
        raise UserError("the 'ood' split exists only for the builtin set (data.source: builtin)")
    name = hf_split(data_cfg, split)
    check_local_files(expand_data_files(data_cfg.data_files))
    try:
        ds = load_dataset(data_cfg.source, name=data_cfg.dataset_config,
                          data_files=expand_data_files(data_cfg.data_files), data_dir=data_cfg.data_dir,
                          split=name, streaming=True)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        raise UserError(f"data.source {describe(data_cfg)} (split {name!r}) cannot be opened: "
                        f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    columns = list(ds.features) if ds.features is not None else list(next(iter(ds.take(1)), {}))
    for key in ("image_column", "caption_column"):
        column = getattr(data_cfg, key)
        if column not in columns:
            raise UserError(f"data.{key}: column {column!r} is not in {data_cfg.source!r}; "
                            f"available columns: {', '.join(map(str, columns)) or '(none)'}")
    if ds.features is not None and isinstance(ds.features[data_cfg.image_column], ImageFeature):
        ds = ds.cast_column(data_cfg.image_column, ImageFeature(decode=False))  # decode here, so bad rows are caught
    keep = [data_cfg.image_column, data_cfg.caption_column] + [c for c in (*ID_COLUMNS, URL_COLUMN) if c in columns]
    return ds.select_columns(list(dict.fromkeys(keep)))


def columns_of(raw: IterableDataset) -> list[str]:
    return list(raw.features) if raw.features is not None else list(next(iter(raw.take(1)), {}))


def _shard_rows(raw: IterableDataset, shard: int, batch_size: int = 64):
    """The rows of one shard of `raw`, in order. `.iter` does not re-split by DataLoader worker, `__iter__` would."""
    for batch in raw.shard(num_shards=raw.num_shards, index=shard).iter(batch_size=batch_size):
        keys = list(batch)
        for values in zip(*(batch[k] for k in keys)):
            yield dict(zip(keys, values))


def holdout_cut(raw: IterableDataset, caption_column: str, val_size: int) -> tuple[Position, int]:
    """(the position where the first `val_size` rows end, how many rows that is); reads only the caption column
    of the first files, up to `val_size` rows. A source with fewer rows is all validation: ((num_shards, 0), n)."""
    small, counted = raw.select_columns([caption_column]), 0
    for shard in range(raw.num_shards):
        rows = 0
        for _ in _shard_rows(small, shard, batch_size=1000):
            rows += 1
            if counted + rows == val_size:
                return (shard, rows), val_size
        counted += rows
    return (raw.num_shards, 0), counted


@dataclass(frozen=True)
class SplitRange:
    """The positions [start, stop) of a split (stop None: to the end), and how many rows validation holds out."""

    start: Position = (0, 0)
    stop: Position | None = None
    held_out: int | None = None  # None: the source has its own validation split


def split_range(data_cfg, raw: IterableDataset, split: str) -> SplitRange:
    if data_cfg.val_split is not None:
        return SplitRange()
    cut, held = holdout_cut(raw, data_cfg.caption_column, data_cfg.val_size)
    return SplitRange(stop=cut, held_out=held) if split == "val" else SplitRange(start=cut, held_out=held)


def positioned_rows(shards: list[int], raw: IterableDataset, start: Position, stop: Position | None):
    """The raw rows of `shards` whose (shard, row) lies in [start, stop), each with its SHARD and ROW."""
    for shard in shards:
        for row, values in enumerate(_shard_rows(raw, shard)):
            if stop is not None and (shard, row) >= stop:
                break
            if (shard, row) >= start:
                yield {**values, SHARD: shard, ROW: row}


def _nothing():
    yield from ()


def positioned(raw: IterableDataset, rng: SplitRange) -> IterableDataset:
    """The rows of `raw` in `rng` as a sharded `IterableDataset` (one shard per source shard that holds any)."""
    first, last = rng.start[0], raw.num_shards
    if rng.stop is not None:
        last = min(last, rng.stop[0] + (1 if rng.stop[1] else 0))
    shards = list(range(first, last))
    if not shards:
        return IterableDataset.from_generator(_nothing)
    return IterableDataset.from_generator(positioned_rows, gen_kwargs={"shards": shards, "raw": raw,
                                                                       "start": rng.start, "stop": rng.stop})


def image_bytes(value) -> bytes | None:
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            with open(value["path"], "rb") as f:
                return f.read()
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        with open(value, "rb") as f:
            return f.read()
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    return None


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with 8 bits per channel. 16-bit and 32-bit grey images (modes I;16*, I) are scaled to 8 bits (Pillow's
    own conversion clips them, so a 16-bit PNG would come out pure white); float images (F) are clipped to [0, 1]
    or [0, 255] by their range."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and values.max(initial=0) > 255):
            values = values / 257.0  # 0..65535 -> 0..255
        elif image.mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def resize_center_crop(image: Image.Image, resolution: int) -> np.ndarray:
    image = to_rgb(image)
    scale = resolution / min(image.size)
    size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
    image = image.resize(size, Image.BICUBIC, reducing_gap=3.0)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)))


def pick_caption(value) -> str | None:
    if isinstance(value, (list, tuple)):  # several captions per image (COCO): the first non-empty one
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value.strip() if isinstance(value, str) and value.strip() else None


def row_file(row: dict, image_column: str) -> str | None:
    """The file a row came from when the row says so (imagefolder: the image's path; webdataset: the tar)."""
    value = row.get(image_column)
    if isinstance(value, dict) and value.get("path") and not value.get("bytes"):
        return str(value["path"])
    return str(row[URL_COLUMN]) if row.get(URL_COLUMN) else None


def decode_row(row: dict, image_column: str, caption_column: str, resolution: int) -> dict:
    """A raw row -> {"pixels", "caption", "id", "skip", "shard", "row", "file"}; `skip` names why a row is unusable
    ("" when it is fine). `id` is the row's key column when it has one, else a hash of the image bytes; `shard`,
    `row` (and `file` where the row names it) say where it is in the source."""
    empty = np.zeros((resolution, resolution, 3), np.uint8)
    caption = pick_caption(row.get(caption_column))
    try:
        data = image_bytes(row.get(image_column))
    except OSError:
        data = None
    key = next((str(row[c]) for c in ID_COLUMNS if row.get(c) is not None), None)
    row_id = key or (hashlib.blake2b(data, digest_size=8).hexdigest() if data else "")
    where = {"shard": row.get(SHARD, -1), "row": row.get(ROW, -1), "file": row_file(row, image_column) or ""}
    if caption is None:
        return {"pixels": empty, "caption": "", "id": row_id, "skip": "no_caption", **where}
    if data is None:
        return {"pixels": empty, "caption": caption, "id": row_id, "skip": "no_image", **where}
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = resize_center_crop(image, resolution)
    except Exception:  # PIL raises many types for corrupt files; any of them means "skip this row"
        return {"pixels": empty, "caption": caption, "id": row_id, "skip": "bad_image", **where}
    return {"pixels": pixels, "caption": caption, "id": row_id, "skip": "", **where}


def decoded(data_cfg, ds: IterableDataset, columns: list[str]) -> IterableDataset:
    return ds.map(decode_row, remove_columns=[*columns, SHARD, ROW],
                  fn_kwargs={"image_column": data_cfg.image_column, "caption_column": data_cfg.caption_column,
                             "resolution": data_cfg.resolution})


def _usable(row: dict) -> bool:
    return not row["skip"]


@dataclass(frozen=True)
class SourceSplit:
    dataset: IterableDataset  # decoded rows of this rank: {"pixels", "caption", "id", "skip", "shard", "row", "file"}
    range: SplitRange


def source_split(data_cfg, split: str, rank: int = 0, world_size: int = 1, seed: int = 0,
                 keep_bad: bool = False) -> SourceSplit:
    """This rank's disjoint part of a real source's split, shuffled for training, decoded."""
    raw = open_source(data_cfg, split)
    rng = split_range(data_cfg, raw, split)
    ds = split_dataset_by_node(positioned(raw, rng), rank=rank, world_size=world_size)
    if split == "train" and data_cfg.shuffle_buffer > 1:
        ds = ds.shuffle(seed=seed, buffer_size=data_cfg.shuffle_buffer, max_buffer_input_shards=1)
    ds = decoded(data_cfg, ds, columns_of(raw))
    return SourceSplit(ds if keep_bad else ds.filter(_usable), rng)


def build_source_dataset(data_cfg, split: str, rank: int = 0, world_size: int = 1, seed: int = 0,
                         keep_bad: bool = False) -> IterableDataset:
    return source_split(data_cfg, split, rank, world_size, seed, keep_bad).dataset
