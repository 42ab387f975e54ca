"""Issue 12.1: the validation rows of a source without its own val split never reach training, whatever the number
of processes, DataLoader workers and files (membership is decided by each row's position in the source)."""

import io
import itertools

import pytest
from datasets import Dataset, Image
from PIL import Image as PILImage

from ditlaws.config import DataConfig
from ditlaws.data import prepare
from ditlaws.data.loader import build_dataset, make_dataloader

ROWS, VAL = 24, 7  # val ends inside a file for every file count below


def png(i):
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (i * 10 % 256, 50, 100)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """{files: [parquet paths]}: the same 24 rows (ids r00..r23) written as 1, 2 or 4 files."""
    root, out = tmp_path_factory.mktemp("holdout"), {}
    for files in (1, 2, 4):
        per = ROWS // files
        paths = []
        for f in range(files):
            rows = range(f * per, (f + 1) * per)
            ds = Dataset.from_dict({"image": [{"bytes": png(i), "path": None} for i in rows],
                                    "text": [f"picture {i}" for i in rows], "id": [f"r{i:02d}" for i in rows]})
            paths.append(str(root / f"{files}files-{f}.parquet"))
            ds.cast_column("image", Image()).to_parquet(paths[-1])
        out[files] = paths
    return out


def cfg_for(paths, workers=0, **kw):
    return DataConfig(source="parquet", data_files=paths, resolution=16, text_len=8, text_dim=16, val_size=VAL,
                      shuffle_buffer=5, num_workers=workers, **kw)


ALL = {f"r{i:02d}" for i in range(ROWS)}
HEAD = {f"r{i:02d}" for i in range(VAL)}


@pytest.mark.parametrize("files", [1, 2, 4])
@pytest.mark.parametrize("ranks", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 2])
def test_validation_rows_never_leak_into_training(sources, files, ranks, workers):
    cfg = cfg_for(sources[files], workers)
    val = [i for r in range(ranks) for b in make_dataloader(cfg, "val", 3, rank=r, world_size=ranks)
           for i in b["id"]]
    assert sorted(val) == sorted(HEAD)  # the first val_size rows, each exactly once over the ranks
    # The training stream repeats; ROWS rows per rank are more than any rank's share of one epoch.
    train = {r: [i for b in itertools.islice(iter(make_dataloader(cfg, "train", 4, rank=r, world_size=ranks)),
                                             ROWS // 4) for i in b["id"]] for r in range(ranks)}
    seen = set().union(*train.values())
    assert not seen & HEAD, f"validation rows in training: {sorted(seen & HEAD)}"
    assert seen == ALL - HEAD  # together they cover the source
    epoch = [s["id"] for r in range(ranks) for s in build_dataset(cfg, "train", rank=r, world_size=ranks)]
    assert sorted(epoch) == sorted(ALL - HEAD)  # one epoch: the ranks' parts are disjoint and complete


def test_prepared_cache_holds_the_same_split(sources, tmp_path):
    cfg = cfg_for(sources[4], cache_dir=str(tmp_path), num_shards=3)
    val, train = prepare.prepare(cfg, "val"), prepare.prepare(cfg, "train")
    assert (val["rows"], train["rows"]) == (VAL, ROWS - VAL)
    ids = {split: {i for b in make_dataloader(cfg, split, 5, seed=0) for i in b["id"]} if split == "val" else
           {i for b in itertools.islice(iter(make_dataloader(cfg, split, 5)), 4) for i in b["id"]}
           for split in ("val", "train")}
    assert ids == {"val": HEAD, "train": ALL - HEAD}
