"""Issue 12.9: the shipped webdataset pattern `{00000..00003}.tar` expands for local files (datasets does not)."""

import io
import tarfile
from pathlib import Path

import pytest
import yaml
from PIL import Image as PILImage

from ditlaws.config import DataConfig
from ditlaws.data.files import expand_braces, expand_data_files
from ditlaws.data.loader import build_dataset
from ditlaws.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_expand_braces():
    assert expand_braces("/d/{00000..00003}.tar") == [f"/d/0000{i}.tar" for i in range(4)]
    assert expand_braces("{8..11}-{a,b}") == ["8-a", "8-b", "9-a", "9-b", "10-a", "10-b", "11-a", "11-b"]
    assert expand_braces("{3..1}") == ["3", "2", "1"] and expand_braces("plain/*.tar") == ["plain/*.tar"]
    assert expand_data_files(["a{1..2}", "b"]) == ["a1", "a2", "b"] and expand_data_files("x") == "x"
    assert expand_data_files({"train": "t{0..1}"}) == {"train": ["t0", "t1"]} and expand_data_files(None) is None
    with pytest.raises(UserError, match=r"data.data_files: 'x\{1\.\.\}'"):
        expand_braces("x{1..}")


def write_tars(folder: Path, tars: int = 4, per: int = 3) -> None:
    for t in range(tars):
        with tarfile.open(folder / f"{t:05d}.tar", "w") as tar:
            for i in range(per):
                key = f"{t:05d}{i:04d}"
                buffer = io.BytesIO()
                PILImage.new("RGB", (20, 16), (40 * t, 20 * i, 90)).save(buffer, format="JPEG")
                for ext, data in (("jpg", buffer.getvalue()), ("txt", f"tar {t} image {i}".encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def test_webdataset_brace_pattern_expands_for_local_files(tmp_path):
    write_tars(tmp_path)
    shipped = yaml.safe_load((ROOT / "configs/data/laion_sd15.yaml").read_text())["data"]
    pattern = shipped["data_files"]
    assert "{00000..00999}" in pattern  # the form the config ships, pointed at our four tars
    local = str(tmp_path / Path(pattern).name.replace("00999", "00003"))
    cfg = DataConfig(source="webdataset", data_files=local, image_column=shipped["image_column"],
                     caption_column=shipped["caption_column"], val_size=2, resolution=16, text_len=8, text_dim=16,
                     shuffle_buffer=0)
    val = [s["id"] for s in build_dataset(cfg, "val")]
    train = [s["id"] for s in build_dataset(cfg, "train")]
    assert val == ["000000000", "000000001"] and len(train) == 10 and not set(val) & set(train)
    assert {s["file"] for s in build_dataset(cfg, "val")} == {str(tmp_path / "00000.tar")}
