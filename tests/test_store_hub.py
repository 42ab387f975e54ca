"""HubStore over real HTTP (the test Hub server): LocalStore's layout and reading interface, pinned snapshots,
idempotent and conflict-safe commits, cards, safetensors-only loading."""

import json
import threading

import pytest
from hub_server import hub_server  # noqa: F401  (the fixture)
from huggingface_hub import CommitOperationAdd, HfApi, constants

from ditlaws.config import HubConfig
from ditlaws.errors import UserError
from ditlaws.publish.model_repo import load_kept_model
from ditlaws.publish.push import push_store
from ditlaws.store import HubStore, LocalStore, open_results, open_store
from ditlaws.store.cards import validate_card
from ditlaws.store.retry import Retry

FAST = Retry(base_s=0.01)


def record(run_id, study="s", budget=1e9, n=100, loss=0.5):
    return {"study": study, "run_id": run_id, "family": "in_context", "budget": budget, "N": n, "D": 20,
            "C": 6.0 * n * 20, "loss_last10pct": loss, "model_config": {"depth": 2, "width": 128}}


def hub(server, study="s", **kw):
    return HubStore("org", study, endpoint=server.url, retry=FAST, **kw)


def local_store(tmp_path, records):
    store = LocalStore(tmp_path / "store")
    for r in records:
        store.put_run(r)
    return store


def records_of(store, study=None):
    return [r.record for r in store.iter_records(study)]


def test_pushed_store_reads_back_equal_with_metrics_and_commit_sha(hub_server, tmp_path):  # noqa: F811
    local = local_store(tmp_path, [record("r1"), record("r2", n=200), record("t1", study="t")])
    (tmp_path / "m.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n{"step": 3')
    local.put_metrics("s", "r1", tmp_path / "m.jsonl")
    report = push_store(local.root, HubConfig(org="org", endpoint=hub_server.url), retry=FAST)
    assert report.ok and set(report.landed) == {"s/records", "t/records"}
    snap = hub(hub_server).snapshot()
    assert records_of(snap, "s") == records_of(local, "s")
    for name in ("r1", "r2"):  # byte for byte: a fit of the snapshot reads exactly what a fit of the store reads
        assert snap.run_path("s", name).read_bytes() == local.run_path("s", name).read_bytes()
    assert snap.metrics_path("s", "r1").read_text() == '{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n'
    head = hub_server.repo("dataset", "org/s-results").head.oid
    assert snap.provenance()["revision"] == head == snap.revision() and snap.provenance()["kind"] == "hub"
    assert snap.provenance()["repo"] == "org/s-results"
    # the reading interface of the HubStore itself is that snapshot's
    store = hub(hub_server)
    assert store.studies() == ["s"] and [r["run_id"] for r in store.list_runs("s")] == ["r1", "r2"]
    assert store.get_run("s", "r2") == record("r2", n=200) and store.has_run("s", "r1")
    assert not store.has_run("s", "zz") and store.provenance()["revision"] == head
    card = (snap.root / "README.md").read_text()
    validate_card(card, "results", study="s")
    assert "| r1 | in_context | 2 | 128 |" in card and "fit_laws.py --hub org/s-results" in card
    assert records_of(hub(hub_server, study="t").snapshot()) == records_of(local, "t")


def test_the_same_runs_pushed_twice_make_no_new_commit(hub_server, tmp_path):  # noqa: F811
    local = local_store(tmp_path, [record("r1"), record("r2")])
    settings = HubConfig(org="org", endpoint=hub_server.url)
    push_store(local.root, settings, retry=FAST)
    commits = len(hub_server.commits("dataset", "org/s-results"))
    assert push_store(local.root, settings, retry=FAST).ok
    hub(hub_server).put_run(record("r1"))
    assert len(hub_server.commits("dataset", "org/s-results")) == commits


def test_an_older_revision_holds_the_older_set_of_runs(hub_server):  # noqa: F811
    store = hub(hub_server)
    store.put_run(record("r1"))
    old = store.put_runs([record("r2")])
    store.put_run(record("r3"))
    assert [r["run_id"] for r in store.snapshot(old).list_runs()] == ["r1", "r2"]
    assert [r["run_id"] for r in store.snapshot().list_runs()] == ["r1", "r2", "r3"]
    pinned = hub(hub_server, revision=old)
    assert pinned.provenance()["revision"] == old and len(pinned.list_runs()) == 2
    with pytest.raises(UserError, match="no revision 'f{40}'"):
        store.snapshot("f" * 40)


def test_snapshot_works_offline_from_the_cache(hub_server, monkeypatch):  # noqa: F811
    store = hub(hub_server)
    store.put_run(record("r1"))
    online = store.snapshot()
    hub_server.down()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    offline = hub(hub_server).snapshot()
    assert offline.provenance()["revision"] == online.provenance()["revision"]
    assert records_of(offline) == records_of(online)
    assert records_of(hub(hub_server).snapshot(online.revision())) == records_of(online)
    with pytest.raises(UserError, match="not in the cache") as err:
        hub(hub_server, study="other").snapshot()
    assert "\n" not in str(err.value)


def test_merge_and_update_keep_the_other_fields(hub_server):  # noqa: F811
    store = hub(hub_server)
    store.put_run(record("r1"))
    store.merge_run({"study": "s", "run_id": "r1", "eval": {"val_loss": {"mean": 0.4, "sem": 0.01}}})
    got = store.update_run("s", "r1", {"eval": {"fid": 12.0}})
    assert got == {**record("r1"), "eval": {"val_loss": {"mean": 0.4, "sem": 0.01}, "fid": 12.0}}
    assert store.get_run("s", "r1") == got
    store.merge_run(record("r2"))
    assert store.get_run("s", "r2") == record("r2")
    with pytest.raises(UserError, match="no such run"):
        store.update_run("s", "missing", {"x": 1})


def test_two_concurrent_pushers_lose_no_record(hub_server):  # noqa: F811
    hub(hub_server).put_run(record("r0"))
    errors = []

    def pusher(name):
        try:
            store = hub(hub_server)
            for i in range(4):
                store.put_run(record(f"{name}{i}"))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=pusher, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    runs = sorted(r["run_id"] for r in hub(hub_server).list_runs())
    assert runs == ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3", "r0"]


def test_a_commit_conflict_is_retried_on_the_new_parent(hub_server):  # noqa: F811
    hub(hub_server).put_run(record("r0"))
    held = hub_server.hold(lambda method, path: method == "POST" and path.endswith("/commit/main"))
    a = threading.Thread(target=lambda: hub(hub_server).put_run(record("a")))
    a.start()
    assert held.reached.wait(30)
    hub(hub_server).put_run(record("b"))  # lands while a's commit waits on its (now stale) parent
    held.release()
    a.join(30)
    assert ("POST", "/api/datasets/org/s-results/commit/main", 412) in hub_server.log
    assert sorted(r["run_id"] for r in hub(hub_server).list_runs()) == ["a", "b", "r0"]
    readme = hub_server.files("dataset", "org/s-results")["README.md"].decode()
    assert all(f"| {name} |" in readme for name in ("a", "b", "r0"))  # the card was rebuilt on the new parent


def test_server_errors_are_retried(hub_server):  # noqa: F811
    hub_server.fail_next(2, 500, path="/api/repos/create")
    hub_server.fail_next(2, 429, path="/commit/")
    hub_server.fail_next(1, 503, path="/tree/")
    hub(hub_server).put_run(record("r1"))
    assert [r["run_id"] for r in hub(hub_server).list_runs()] == ["r1"]


def test_open_store_specs(tmp_path, hub_server):  # noqa: F811
    assert isinstance(open_store(tmp_path), LocalStore)
    store = open_store("hub://org/s", api=HfApi(endpoint=hub_server.url))
    assert isinstance(store, HubStore) and store.results_repo == "org/s-results" and store.spec == "hub://org/s"
    assert store.model_repo("r1") == "org/s-r1"
    for bad in ("hub://org", "hub://org/s/x", "hub:///s"):
        with pytest.raises(UserError, match="hub://<org>/<study>"):
            open_store(bad)
    with pytest.raises(UserError, match="--revision applies to a Hub store"):
        open_store(tmp_path, revision="main")
    with pytest.raises(UserError, match="not a valid Hub repo id"):
        HubStore("org", "s-", endpoint=hub_server.url)
    with pytest.raises(UserError, match="hub.org"):
        HubStore("a/b", "s", endpoint=hub_server.url)
    hub(hub_server).put_run(record("r1"))
    snap = open_results("org/s-results", api=HfApi(endpoint=hub_server.url))
    assert snap.provenance()["repo"] == "org/s-results" and [r["run_id"] for r in snap.list_runs()] == ["r1"]
    for bad in ("org/s", "org/-results", "s-results"):
        with pytest.raises(UserError, match="<org>/<study>-results"):
            open_results(bad)


def test_a_repo_with_only_pickle_weights_is_refused(hub_server, tmp_path):  # noqa: F811
    api = HfApi(endpoint=hub_server.url)
    api.create_repo("org/s-r1")
    api.create_commit("org/s-r1", [CommitOperationAdd("config.json", json.dumps({"_class_name": "InContextDiT"})
                                                      .encode()),
                                   CommitOperationAdd("diffusion_pytorch_model.bin", b"pickle")], commit_message="p")
    with pytest.raises(UserError, match=r"^org/s-r1: only pickle weights \(diffusion_pytorch_model.bin\); ditlaws "
                                        r"loads safetensors only$"):
        load_kept_model(hub(hub_server), "r1")
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UserError, match="only pickle weights"):
        LocalStore(tmp_path / "store").put_model("r1", folder)
    with pytest.raises(UserError, match="only pickle weights"):
        hub(hub_server).put_model("r1", folder)


def test_push_store_lists_and_skips_malformed_records_and_finds_a_sweeps_store(hub_server, tmp_path, caplog):  # noqa: F811
    from ditlaws.cli import main as ditlaws_main

    local = local_store(tmp_path / "sweep", [record("r1")])  # a sweep's <out>/store
    (local.root / "runs" / "s" / "broken.json").write_text("{not json")
    (local.root / "runs" / "s" / "other.json").write_text(json.dumps(record("r9")))
    (tmp_path / "sweep" / "runs" / "r1").mkdir(parents=True)  # the sweep's run folders
    (tmp_path / "sweep" / "runs" / "r1" / "summary.json").write_text(json.dumps(record("r1")))
    assert ditlaws_main(["push", str(tmp_path / "sweep"), "--hub.org", "org", "--hub.endpoint", hub_server.url]) == 0
    assert [r["run_id"] for r in hub(hub_server).list_runs()] == ["r1"]
    assert "broken.json: not valid JSON" in caplog.text and "other.json: its study/run_id do not match" in caplog.text


def test_a_fit_goes_to_fit_in_the_results_repo(hub_server, tmp_path):  # noqa: F811
    (tmp_path / "fit").mkdir()
    (tmp_path / "fit" / "fit.json").write_text('{"schema_version": 2}')
    (tmp_path / "fit" / "report.md").write_text("# report\n")
    store = hub(hub_server)
    store.put_run(record("r1"))
    store.put_fit(tmp_path / "fit")
    snap = store.snapshot()
    assert (snap.root / "fit" / "fit.json").read_text() == '{"schema_version": 2}' and snap.studies() == ["s"]
    with pytest.raises(UserError, match="no fit.json"):
        store.put_fit(tmp_path)
