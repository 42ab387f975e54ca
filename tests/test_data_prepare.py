"""The prepare step and the parquet cache: exact round trip, resumable writes, bad rows, rank splits, CLI errors."""

import io
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset, Image
from PIL import Image as PILImage

from ditlaws.config import DataConfig
from ditlaws.data import cache, prepare
from ditlaws.data.encoders import BuiltinTextEncoder
from ditlaws.data.loader import build_dataset, collate_samples, make_dataloader
from ditlaws.errors import UserError


def builtin_cfg(**kw):
    return DataConfig(resolution=16, text_len=8, text_dim=16, num_shards=4, val_size=10, **kw)


def cached_rows(cfg, split, batch_size=4, rank=0, world_size=1, skip=0, batches=None):
    loader = make_dataloader(cfg, split, batch_size, rank=rank, world_size=world_size, skip_batches=skip)
    return list(itertools.islice(iter(loader), batches)) if batches else list(loader)


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*.parquet"))}


def test_prepare_then_stream_back_identical(tmp_path):
    cfg = builtin_cfg(cache_dir=str(tmp_path), shuffle_buffer=8)
    manifest = prepare.prepare(cfg, "train", num_samples=30, batch_size=8)
    assert manifest["rows"] == 30 and [s["rows"] for s in manifest["shards"]] == [7, 8, 7, 8]
    assert manifest["tensors"]["latent"] == {"dtype": "float16", "shape": [3, 16, 16]}
    assert manifest["encoders"]["text"].startswith("builtin-hash") and manifest["encoders"]["image"] == "identity"
    epoch = [b for b in cached_rows(cfg, "train", batches=30 // 5, batch_size=5)]
    ids = [i for b in epoch for i in b["id"]]
    assert sorted(ids) == sorted(f"builtin-train-0-{i}" for i in range(30))  # one epoch: every row once
    fresh = {}
    for batch in cached_rows(builtin_cfg(), "train", batch_size=30, batches=1):
        fresh = {i: {k: batch[k][j] for k in cache.TENSOR_COLUMNS} for j, i in enumerate(batch["id"])}
    for batch in epoch:
        for j, row_id in enumerate(batch["id"]):
            for name in ("latent", "text_states", "pooled"):
                assert torch.equal(batch[name][j], fresh[row_id][name].half().float()), name
            assert torch.equal(batch["text_mask"][j], fresh[row_id]["text_mask"])


def test_cache_resume_and_rank_split(tmp_path):
    cfg = builtin_cfg(cache_dir=str(tmp_path), shuffle_buffer=5, latent_dtype="bfloat16")
    prepare.prepare(cfg, "train", num_samples=22)
    prepare.prepare(cfg, "val")
    full = cached_rows(cfg, "train", batch_size=4, rank=1, world_size=2, batches=9)  # 11 rows a rank: crosses epochs
    resumed = cached_rows(cfg, "train", batch_size=4, rank=1, world_size=2, skip=5, batches=4)
    assert [b["id"] for b in resumed] == [b["id"] for b in full[5:]]
    assert all(torch.equal(a["latent"], b["latent"]) for a, b in zip(resumed, full[5:]))
    val = [i for r in range(2) for b in cached_rows(cfg, "val", 3, rank=r, world_size=2) for i in b["id"]]
    assert sorted(val) == sorted(f"builtin-val-0-{i}" for i in range(10)) and len(set(val)) == 10
    with pytest.raises(UserError, match="multiple of 3"):
        make_dataloader(cfg, "val", 2, rank=0, world_size=3)


def test_interrupted_prepare_resumes_to_the_same_result(tmp_path, monkeypatch):
    cfg = builtin_cfg()
    reference = prepare.prepare(cfg, "val", out=str(tmp_path / "ref"), batch_size=2)
    out = tmp_path / "run"
    calls = {"n": 0}
    real_table = cache.encoded_table

    def crash_on_third_batch(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # as if killed mid-shard
        return real_table(*args, **kw)

    monkeypatch.setattr(cache, "encoded_table", crash_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        prepare.prepare(cfg, "val", out=str(out), batch_size=2)  # shard 0 = rows 0..1 done, shard 1 dies midway
    monkeypatch.setattr(cache, "encoded_table", real_table)
    split_dir = out / "val"
    assert sorted(p.name for p in split_dir.iterdir()) == ["shard-00000-of-00004.json",
                                                           "shard-00000-of-00004.parquet"]
    (split_dir / ".shard-00002-of-00004.parquet.tmp-999").write_bytes(b"half a shard")  # a stale tmp from a kill
    done_before = (split_dir / "shard-00000-of-00004.parquet").stat().st_mtime_ns
    manifest = prepare.prepare(cfg, "val", out=str(out), batch_size=2)
    assert (split_dir / "shard-00000-of-00004.parquet").stat().st_mtime_ns == done_before  # finished shard kept
    assert not list(split_dir.glob(".*"))
    assert shard_bytes(split_dir) == shard_bytes(tmp_path / "ref" / "val")
    assert manifest["shards"] == reference["shards"] and manifest["fingerprint"] == reference["fingerprint"]
    with pytest.raises(UserError, match="different config"):
        prepare.prepare(builtin_cfg(seed=1), "val", out=str(out))


def png(color, size=(24, 16)):
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def parquet_source(tmp_path):
    """12 rows: a corrupt image at row 5, a missing caption at row 8, the rest solid colours."""
    images = [{"bytes": png((10 * i, 100, 200)), "path": None} for i in range(12)]
    images[5] = {"bytes": b"not an image", "path": None}
    captions = [f"picture number {i}" for i in range(12)]
    captions[8] = None
    ds = Dataset.from_dict({"image": images, "text": captions, "id": [f"row{i}" for i in range(12)]})
    path = tmp_path / "source.parquet"
    ds.cast_column("image", Image()).to_parquet(str(path))
    return str(path)


def source_cfg(path, **kw):
    kw = {"resolution": 16, "text_len": 8, "text_dim": 16, "num_shards": 2, "val_size": 2, "shuffle_buffer": 0, **kw}
    return DataConfig(source="parquet", data_files=path, **kw)


def test_real_source_bad_rows_are_counted_not_fatal(parquet_source, tmp_path):
    cfg = source_cfg(parquet_source, cache_dir=str(tmp_path / "cache"))
    manifest = prepare.prepare(cfg, "train")
    assert manifest["source_rows"] == 10 and manifest["rows"] == 8  # rows 0, 1 are the held-out val rows
    assert manifest["skipped"] == {"bad_image": 1, "no_caption": 1}
    source = os.path.abspath(parquet_source)
    assert manifest["skipped_rows"] == [{"id": "row5", "file": source, "row": 5, "reason": "bad_image"},
                                        {"id": "row8", "file": source, "row": 8, "reason": "no_caption"}]
    assert json.loads((tmp_path / "cache" / "train" / "manifest.json").read_text())["skipped"] == manifest["skipped"]
    batches = cached_rows(cfg, "train", batch_size=8, batches=1)
    assert sorted(batches[0]["id"]) == sorted(f"row{i}" for i in (2, 3, 4, 6, 7, 9, 10, 11))
    row = batches[0]["id"].index("row3")
    expected = torch.tensor([30, 100, 200]) / 127.5 - 1  # solid colour survives resize + centre crop
    assert torch.allclose(batches[0]["latent"][row, :, 8, 8], expected, atol=2e-3)
    states = BuiltinTextEncoder(text_dim=16, text_len=8).encode(["picture number 3"])[0][0]
    assert torch.allclose(batches[0]["text_states"][row], states.half().float())


def test_real_source_streams_disjoint_complete_over_ranks(parquet_source):
    cfg = source_cfg(parquet_source, shuffle_buffer=4)
    seen = [s["id"] for rank in range(2) for s in build_dataset(cfg, "train", rank=rank, world_size=2)]
    assert sorted(seen) == sorted(f"row{i}" for i in (2, 3, 4, 6, 7, 9, 10, 11))
    val = list(build_dataset(cfg, "val"))
    assert [s["id"] for s in val] == ["row0", "row1"] and val[0]["pixels"].shape == (16, 16, 3)
    batch = collate_samples(val)
    assert batch["pixels"].shape == (2, 3, 16, 16)
    stream = cached_rows(cfg, "train", batch_size=3, batches=5)  # 8 rows: repeats, reshuffled per epoch
    assert {i for b in stream for i in b["id"]} == set(seen) and len(stream) == 5
    resumed = cached_rows(cfg, "train", batch_size=3, skip=2, batches=3)
    assert [b["id"] for b in resumed] == [b["id"] for b in stream[2:]]


def test_wrong_column_is_a_clear_error_before_work(parquet_source, tmp_path):
    with pytest.raises(UserError, match="image_column.*'img'.*available columns: image, text, id"):
        prepare.prepare(source_cfg(parquet_source, image_column="img"), "train", out=str(tmp_path))
    assert not (tmp_path / "train").exists()


def test_prepare_cli_exit_codes(parquet_source, tmp_path):
    config = tmp_path / "data.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "parquet", "data_files": parquet_source,
                                               "caption_column": "caption", "resolution": 16}}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "ditlaws.data.prepare", "--config", str(config), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "data.caption_column: column 'caption'" in result.stderr and "Traceback" not in result.stderr
    assert prepare.main(["--config", str(config), "--data.caption_column", "text", "--data.resolution", "8"]) == 2
    assert prepare.main(["--config", str(config), "--data.caption_column", "text", "--split", "ood",
                         "--out", str(tmp_path / "o")]) == 2
    ok = ["--config", str(config), "--data.caption_column", "text", "--data.text_dim", "16", "--data.text_len", "8"]
    assert prepare.main([*ok, "--out", str(tmp_path / "empty")]) == 2  # the default val_size=256 holds out all rows
    assert prepare.main([*ok, "--data.val_size", "2", "--num-samples", "4", "--out", str(tmp_path / "ok")]) == 0
    manifest = cache.read_manifest(tmp_path / "ok" / "train")  # source rows 2..5, of which row 5 is corrupt
    assert np.sum([s["rows"] for s in manifest["shards"]]) == 3 and manifest["skipped"] == {"bad_image": 1}


def rows_read_by_parquet(monkeypatch):
    """Counts the rows `datasets`' parquet reader hands out (every pass over the source goes through it)."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    read = {"rows": 0}
    real = Parquet._generate_tables

    def counting(self, *args, **kw):
        for key, table in real(self, *args, **kw):
            read["rows"] += table.num_rows
            yield key, table

    monkeypatch.setattr(Parquet, "_generate_tables", counting)
    return read


def test_prepare_reads_the_source_once_not_once_per_shard(parquet_source, tmp_path, monkeypatch):
    read = rows_read_by_parquet(monkeypatch)
    work = {}
    for shards in (1, 5):
        read["rows"] = 0
        cfg = source_cfg(parquet_source, num_shards=shards)
        manifest = prepare.prepare(cfg, "train", out=str(tmp_path / f"{shards}"))
        assert manifest["rows"] == 8
        work[shards] = read["rows"]
    # the head cut (2 val rows), the count and the encoding pass: each at most one pass over the 12 rows
    assert work[5] == work[1] <= 3 * 12, work
    out = tmp_path / "5" / "train"
    (out / "shard-00003-of-00005.json").unlink()  # as if interrupted: one shard to redo
    before = shard_bytes(out)
    read["rows"] = 0
    prepare.prepare(source_cfg(parquet_source, num_shards=5), "train", out=str(tmp_path / "5"))
    assert shard_bytes(out) == before and read["rows"] <= 3 * 12


def test_skipped_rows_name_their_file_and_row(tmp_path):
    paths = []
    for f in range(2):  # row 1 of the second file has a broken image, row 2 of the first no caption
        images = [{"bytes": png((f * 100, 10 * i, 0)), "path": None} for i in range(4)]
        captions = [f"file {f} row {i}" for i in range(4)]
        if f == 1:
            images[1] = {"bytes": b"truncated", "path": None}
        else:
            captions[2] = ""
        paths.append(str(tmp_path / f"part-{f}.parquet"))
        Dataset.from_dict({"image": images, "text": captions}).cast_column("image", Image()).to_parquet(paths[-1])
    manifest = prepare.prepare(source_cfg(paths, val_size=1, num_shards=3), "train", out=str(tmp_path / "out"))
    assert manifest["rows"] == 5 and manifest["skipped"] == {"bad_image": 1, "no_caption": 1}
    entries = sorted(manifest["skipped_rows"], key=lambda e: e["reason"])
    assert [(e["file"], e["row"], e["reason"]) for e in entries] == [(paths[1], 1, "bad_image"),
                                                                     (paths[0], 2, "no_caption")]
    assert all(len(e["id"]) == 16 for e in entries)  # no id column: the content hash, now with a location
