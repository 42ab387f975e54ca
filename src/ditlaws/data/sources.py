"""Real image-text datasets, streamed with `datasets.load_dataset(..., streaming=True)`.

`data.source` is a Hub name or a builder ("parquet", "webdataset", "imagefolder") with `data_files` / `data_dir`;
`data.image_column` / `data.caption_column` name the columns. Images are resized (shorter side) and centre-cropped
to `data.resolution`. Rows whose image does not decode or whose caption is empty are marked with a `skip` reason
(dropped by the training stream, counted by the prepare step). Without `data.val_split`, the first `val_size` rows
of the train split are the held-out set and training starts after them.
"""

from __future__ import annotations

import hashlib
import io
import logging

import numpy as np
from datasets import Image as ImageFeature
from datasets import IterableDataset, load_dataset
from datasets.distributed import split_dataset_by_node
from PIL import Image

from ditlaws.errors import UserError

logger = logging.getLogger(__name__)
ID_COLUMNS = ("__key__", "id", "image_id", "key")


def open_source(data_cfg, split: str) -> IterableDataset:
    """The raw stream of a real source's split, with its column names checked (images left undecoded)."""
    if split == "ood":
        raise UserError("the 'ood' split exists only for the builtin set (data.source: builtin)")
    hf_split = data_cfg.train_split if split == "train" or data_cfg.val_split is None else data_cfg.val_split
    try:
        ds = load_dataset(data_cfg.source, name=data_cfg.dataset_config, data_files=data_cfg.data_files,
                          data_dir=data_cfg.data_dir, split=hf_split, streaming=True)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as err:
        raise UserError(f"data.source {data_cfg.source!r} (split {hf_split!r}) cannot be opened: "
                        f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    columns = list(ds.features) if ds.features is not None else list(next(iter(ds.take(1)), {}))
    for key in ("image_column", "caption_column"):
        name = getattr(data_cfg, key)
        if name not in columns:
            raise UserError(f"data.{key}: column {name!r} is not in {data_cfg.source!r}; "
                            f"available columns: {', '.join(map(str, columns)) or '(none)'}")
    if ds.features is not None and isinstance(ds.features[data_cfg.image_column], ImageFeature):
        ds = ds.cast_column(data_cfg.image_column, ImageFeature(decode=False))  # decode here, so bad rows are caught
    keep = [data_cfg.image_column, data_cfg.caption_column] + [c for c in ID_COLUMNS if c in columns]
    return ds.select_columns(list(dict.fromkeys(keep)))


def held_out(data_cfg, ds: IterableDataset, split: str) -> IterableDataset:
    """The val rows are the head of the train split unless the source has its own val split."""
    if data_cfg.val_split is not None:
        return ds
    return ds.take(data_cfg.val_size) if split == "val" else ds.skip(data_cfg.val_size)


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


def resize_center_crop(image: Image.Image, resolution: int) -> np.ndarray:
    image = image.convert("RGB")
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


def decode_row(row: dict, image_column: str, caption_column: str, resolution: int) -> dict:
    """A raw row -> {"pixels", "caption", "id", "skip"}; `skip` names why a row is unusable ("" when it is fine)."""
    empty = np.zeros((resolution, resolution, 3), np.uint8)
    caption = pick_caption(row.get(caption_column))
    try:
        data = image_bytes(row.get(image_column))
    except OSError:
        data = None
    key = next((str(row[c]) for c in ID_COLUMNS if row.get(c) is not None), None)
    row_id = key or (hashlib.blake2b(data, digest_size=8).hexdigest() if data else "")
    if caption is None:
        return {"pixels": empty, "caption": "", "id": row_id, "skip": "no_caption"}
    if data is None:
        return {"pixels": empty, "caption": caption, "id": row_id, "skip": "no_image"}
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = resize_center_crop(image, resolution)
    except Exception:  # PIL raises many types for corrupt files; any of them means "skip this row"
        return {"pixels": empty, "caption": caption, "id": row_id, "skip": "bad_image"}
    return {"pixels": pixels, "caption": caption, "id": row_id, "skip": ""}


def decoded(data_cfg, ds: IterableDataset) -> IterableDataset:
    return ds.map(decode_row, remove_columns=list(ds.column_names or []) or None,
                  fn_kwargs={"image_column": data_cfg.image_column, "caption_column": data_cfg.caption_column,
                             "resolution": data_cfg.resolution})


def build_source_dataset(data_cfg, split: str, rank: int = 0, world_size: int = 1, seed: int = 0,
                         keep_bad: bool = False) -> IterableDataset:
    """This rank's disjoint part of a real source, shuffled for training, decoded to {"pixels", "caption", "id"}."""
    ds = held_out(data_cfg, open_source(data_cfg, split), split)
    ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
    if split == "train" and data_cfg.shuffle_buffer > 1:
        ds = ds.shuffle(seed=seed, buffer_size=data_cfg.shuffle_buffer, max_buffer_input_shards=1)
    ds = decoded(data_cfg, ds)
    return ds if keep_bad else ds.filter(lambda row: not row["skip"])
