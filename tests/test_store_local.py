import json

import pytest

from ditlaws.errors import UserError
from ditlaws.publish.model_repo import load_kept_model
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


def test_merge_metrics_and_provenance_of_a_snapshot(tmp_path):
    store = LocalStore(tmp_path)
    assert not store.has_run("s", "r1")
    store.merge_run(record("r1"))
    merged = store.merge_run({"study": "s", "run_id": "r1", "eval": {"fid": 3.0}})
    assert merged == {**record("r1"), "eval": {"fid": 3.0}} == store.get_run("s", "r1")
    (tmp_path / "m.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"st')  # a line still being written
    path = store.put_metrics("s", "r1", tmp_path / "m.jsonl")
    assert path == tmp_path / "runs" / "s" / "r1" / "metrics.jsonl" and path.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert [r.record["run_id"] for r in store.iter_records()] == ["r1"]  # the metrics folder is not a record
    assert store.provenance()["kind"] == "local" and store.revision().startswith("local-")
    pinned = LocalStore(tmp_path, source={"kind": "hub", "repo": "o/s-results", "revision": "a" * 40})
    assert pinned.provenance() == {"kind": "hub", "repo": "o/s-results", "revision": "a" * 40, "root": str(tmp_path)}
    assert pinned.revision() == "a" * 40


def test_kept_models_load_from_safetensors_only(tmp_path):
    import torch

    from ditlaws.models import build_model

    model = build_model("in_context", sample_size=8, in_channels=3, patch_size=4, depth=1, width=16, heads=1,
                        text_dim=8, text_len=4)
    model.save_pretrained(tmp_path / "model")
    store = LocalStore(tmp_path / "store")
    store.put_model("r1", tmp_path / "model", card="---\ntags: [x]\n---\n")
    assert (store.model_path("r1") / "README.md").is_file()
    loaded = load_kept_model(store, "r1")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(UserError, match="no kept model"):
        load_kept_model(store, "r2")
