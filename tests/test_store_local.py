import json

import pytest

from ditlaws.errors import UserError
from ditlaws.store import LocalStore


def record(run_id, study="s", loss=0.5):
    return {"study": study, "run_id": run_id, "N": 10, "D": 20, "C": 1200.0, "loss_last10pct": loss}


def test_put_get_roundtrip_and_listing(tmp_path):
    store = LocalStore(tmp_path)
    path = store.put_run(record("r1"))
    assert path == tmp_path / "runs" / "s" / "r1.json"
    store.put_run(record("r2", study="t"))
    assert store.get_run("s", "r1") == record("r1")
    assert store.studies() == ["s", "t"]
    assert [r["run_id"] for r in store.list_runs()] == ["r1", "r2"]
    assert [r["run_id"] for r in store.list_runs("t")] == ["r2"]


def test_update_merges_nested_fields_without_losing_others(tmp_path):
    store = LocalStore(tmp_path)
    store.put_run(record("r1"))
    store.update_run("s", "r1", {"eval": {"val_loss": {"mean": 0.4}}})
    store.update_run("s", "r1", {"eval": {"fid": 12.0}})
    got = store.get_run("s", "r1")
    assert got["eval"] == {"val_loss": {"mean": 0.4}, "fid": 12.0}
    assert got["N"] == 10


def test_revision_changes_with_content(tmp_path):
    store = LocalStore(tmp_path)
    store.put_run(record("r1"))
    rev = store.revision()
    assert rev == store.revision()
    store.update_run("s", "r1", {"loss_last10pct": 0.3})
    assert store.revision() != rev


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "a..b"])
def test_unsafe_names_are_rejected(tmp_path, bad):
    with pytest.raises(UserError, match="run id"):
        LocalStore(tmp_path).put_run(record(bad))


def test_corrupt_record_is_a_clear_error(tmp_path):
    store = LocalStore(tmp_path)
    store.put_run(record("r1"))
    (tmp_path / "runs" / "s" / "r1.json").write_text("{not json")
    with pytest.raises(UserError, match="r1.json: not a valid run record"):
        store.get_run("s", "r1")


def test_put_model_copies_a_diffusers_folder(tmp_path):
    src = tmp_path / "model"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"_class_name": "InContextDiT"}))
    (src / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    store = LocalStore(tmp_path / "store")
    dst = store.put_model("r1", src)
    assert (dst / "diffusion_pytorch_model.safetensors").read_bytes() == b"x"
    with pytest.raises(UserError, match="not a diffusers model folder"):
        store.put_model("r2", tmp_path)
