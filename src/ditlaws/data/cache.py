"""The prepared cache: parquet shards of encoded samples, and streaming them back as training batches.

Layout: `<cache_dir>/<split>/shard-00003-of-00008.parquet` + `<cache_dir>/<split>/manifest.json`. Each row holds
`latent`, `text_states`, `text_mask`, `pooled` as raw little-endian bytes of fixed shapes and dtypes (recorded in the
manifest and in every shard's parquet metadata), plus `caption` and `id`. Raw bytes keep bf16 exact and reading fast
(one `np.frombuffer` per column per batch).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from datasets import load_dataset

from ditlaws.errors import UserError

TENSOR_COLUMNS = ("latent", "text_states", "text_mask", "pooled")
STORAGE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "bool": torch.bool}
META_KEY = b"ditlaws"


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.parquet"


def tensor_to_bytes(x: torch.Tensor) -> list[bytes]:
    """Rows of a tensor as raw bytes (bf16 goes through int16: numpy has no bfloat16)."""
    x = x.detach().cpu().contiguous()
    array = x.view(torch.int16).numpy() if x.dtype == torch.bfloat16 else x.numpy()
    return [row.tobytes() for row in array]


def bytes_to_tensor(rows: list[bytes], dtype: str, shape: list[int]) -> torch.Tensor:
    torch_dtype = STORAGE_DTYPES[dtype]
    np_dtype = np.int16 if torch_dtype == torch.bfloat16 else torch.empty(0, dtype=torch_dtype).numpy().dtype
    array = np.frombuffer(b"".join(rows), dtype=np_dtype).reshape(len(rows), *shape)
    tensor = torch.from_numpy(array.copy())
    return tensor.view(torch.bfloat16) if torch_dtype == torch.bfloat16 else tensor


def encoded_table(batch: dict, dtypes: dict[str, str]) -> pa.Table:
    columns = {name: pa.array(tensor_to_bytes(batch[name].to(STORAGE_DTYPES[dtypes[name]])), pa.binary())
               for name in TENSOR_COLUMNS}
    columns["caption"] = pa.array(batch["caption"], pa.string())
    columns["id"] = pa.array(batch["id"], pa.string())
    return pa.table(columns)


def read_manifest(split_dir: Path) -> dict:
    path = split_dir / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path}: no manifest; run `python -m ditlaws.data.prepare` for this split first")
    return json.loads(path.read_text())


def decode_rows(rows: dict, manifest: dict) -> dict:
    """A dict of column lists (as from `IterableDataset.iter`) -> a float32 / bool batch."""
    batch = {"caption": list(rows["caption"]), "id": list(rows["id"])}
    for name in TENSOR_COLUMNS:
        spec = manifest["tensors"][name]
        tensor = bytes_to_tensor(rows[name], spec["dtype"], spec["shape"])
        batch[name] = tensor if tensor.dtype == torch.bool else tensor.float()
    return batch


class CachedLoader:
    """Encoded batches streamed from the parquet shards of one split, for one rank.

    Rank r reads shards r, r + w, ... (disjoint and complete; the shard count must be a multiple of the world
    size). "train" repeats forever, reshuffled per epoch (file order and a `shuffle(seed, buffer,
    max_buffer_input_shards=1)` buffer, both seeded by (seed, epoch)); other splits are one ordered pass.
    `skip_batches` resumes exactly: whole epochs are skipped by arithmetic, the rest by reading.
    """

    def __init__(self, data_cfg, split: str, batch_size: int, rank: int = 0, world_size: int = 1,
                 skip_batches: int = 0, seed: int | None = None, device=None):
        self.split_dir = Path(data_cfg.cache_dir) / split
        self.manifest = read_manifest(self.split_dir)
        shards = [str(self.split_dir / s["file"]) for s in self.manifest["shards"]]
        if len(shards) % world_size:
            raise UserError(f"{self.split_dir}: {len(shards)} shards cannot be split evenly over {world_size} "
                            f"processes; re-run prepare with data.num_shards a multiple of {world_size}")
        self.shards, self.batch_size, self.rank, self.world_size = shards, batch_size, rank, world_size
        self.train = split == "train"
        self.seed = data_cfg.seed if seed is None else seed
        self.buffer = data_cfg.shuffle_buffer
        self.skip_batches, self.device = skip_batches, device
        counts = [s["rows"] for s in self.manifest["shards"]]
        self.rows_per_epoch = sum(counts[rank::world_size])  # rank r reads shards r, r + w, ...
        if self.rows_per_epoch == 0:
            raise UserError(f"{self.split_dir}: rank {rank} of {world_size} has no rows in the cache")

    def __len__(self) -> int:
        if self.train:
            raise TypeError("the training stream is infinite")
        return max(0, -(-self.rows_per_epoch // self.batch_size) - self.skip_batches)

    def _epoch_rows(self, epoch: int, skip_rows: int) -> Iterator[dict]:
        """This rank's rows of one epoch. The epoch's randomness is ours (file order and buffer seed from
        (seed, epoch)) and skipping is plain reading, so a resumed epoch replays exactly (datasets' own
        `set_epoch` reshuffling is bypassed once `skip` wraps a dataset)."""
        files = self.shards[self.rank :: self.world_size]
        if self.train:
            rng = np.random.default_rng([self.seed, epoch])
            files = [files[i] for i in rng.permutation(len(files))]
        ds = load_dataset("parquet", data_files=files, split="train", streaming=True)
        if self.train and self.buffer > 1:
            ds = ds.shuffle(seed=int(rng.integers(2**31)), buffer_size=self.buffer, max_buffer_input_shards=1)
        return itertools.islice(iter(ds), skip_rows, None)

    def __iter__(self) -> Iterator[dict]:
        epoch, skip_rows = divmod(self.skip_batches * self.batch_size, self.rows_per_epoch)
        if not self.train:
            epoch, skip_rows = 0, self.skip_batches * self.batch_size
        rows: list[dict] = []  # carried over epoch boundaries, so every training batch is full
        while True:
            for row in self._epoch_rows(epoch, skip_rows):
                rows.append(row)
                if len(rows) == self.batch_size:
                    yield self._batch(rows)
                    rows = []
            if not self.train:
                if rows:
                    yield self._batch(rows)
                return
            epoch, skip_rows = epoch + 1, 0

    def _batch(self, rows: list[dict]) -> dict:
        batch = decode_rows({key: [row[key] for row in rows] for key in rows[0]}, self.manifest)
        if self.device is not None:
            for name in TENSOR_COLUMNS:
                batch[name] = batch[name].to(self.device)
        return batch

def cached_loader(data_cfg, split, batch_size, rank=0, world_size=1, skip_batches=0, seed=None, device=None):
    return CachedLoader(data_cfg, split, batch_size, rank, world_size, skip_batches=skip_batches, seed=seed,
                        device=device)
