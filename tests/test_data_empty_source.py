"""Issue 12.2: a real source that yields no usable training row stops with one line naming the source and the rows
read and skipped (exit 2 from the CLI), instead of looping over empty epochs forever."""

import contextlib
import io
import json
import signal
import sys
from pathlib import Path

import pytest
from datasets import Dataset, Image
from PIL import Image as PILImage

from ditlaws.config import DataConfig
from ditlaws.data.loader import make_dataloader
from ditlaws.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def png():
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (200, 50, 100)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def forty_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("forty") / "forty.parquet"
    ds = Dataset.from_dict({"image": [{"bytes": png(), "path": None}] * 40, "text": [f"pic {i}" for i in range(40)]})
    ds.cast_column("image", Image()).to_parquet(str(path))
    return str(path)


@pytest.fixture(scope="module")
def undecodable_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("undecodable")
    with open(folder / "metadata.jsonl", "w") as f:
        for i in range(6):
            (folder / f"img{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really a picture")
            f.write(json.dumps({"file_name": f"img{i}.png", "text": f"caption {i}"}) + "\n")
    return str(folder)


def small(**kw):
    return DataConfig(resolution=16, text_len=8, text_dim=16, shuffle_buffer=0, **kw)


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging the suite) when the block runs longer than `seconds`."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: the stream loops over empty epochs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def first_batch(cfg, **kw):
    with deadline(60):
        return next(iter(make_dataloader(cfg, "train", 4, **kw)))


def test_no_usable_training_row_stops_with_one_line_not_a_hang(forty_rows, undecodable_folder):
    with pytest.raises(UserError) as err:  # the default val_size 256 holds out all 40 rows
        first_batch(small(source="parquet", data_files=forty_rows))
    message = str(err.value)
    assert "\n" not in message and forty_rows in message
    assert "no usable training rows (0 rows read, 0 skipped, after the first 40 rows held out for validation" \
           in message and "data.val_size" in message
    with pytest.raises(UserError, match=r"no usable training rows \(6 rows read, 6 skipped: bad_image 6\)") as err:
        first_batch(small(source="imagefolder", data_dir=undecodable_folder, val_split="train"))
    assert undecodable_folder in str(err.value)
    for workers in (0, 2):  # a worker without shards used to spin over empty epochs; every rank stops the same way
        cfg = small(source="imagefolder", data_dir=undecodable_folder, val_size=2, num_workers=workers)
        with pytest.raises(UserError, match=r"rank 1 of 2 \(\d rows read, \d skipped: bad_image \d, after the first "
                                            r"2 rows held out"):
            first_batch(cfg, rank=1, world_size=2)


def test_no_usable_training_row_cli_exits_2(forty_rows, tmp_path, capsys):
    sys.path.insert(0, str(ROOT))
    import train_dit

    args = ["--data.source", "parquet", "--data.data_files", forty_rows, "--data.resolution", "16",
            "--data.text_dim", "16", "--data.text_len", "8", "--data.shuffle_buffer", "0", "--model.depth", "1",
            "--model.width", "16", "--model.heads", "1", "--model.patch_size", "4", "--train.steps", "2",
            "--train.global_batch", "4", "--train.mixed_precision", "no", "--train.output_dir", str(tmp_path / "run")]
    with deadline(60):  # used to hang forever
        code = train_dit.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: data.source 'parquet'") and "no usable training rows" in err[0]
