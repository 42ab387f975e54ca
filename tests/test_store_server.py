"""The test Hub server speaks enough of the Hub API for the real huggingface_hub client (over real HTTP)."""

from pathlib import Path

import pytest
from hub_server import hub_server  # noqa: F401  (the fixture)
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError


def test_create_commit_read_back_and_revisions(hub_server, tmp_path):  # noqa: F811
    api = HfApi(endpoint=hub_server.url)
    url = api.create_repo("org/study-results", repo_type="dataset")
    assert url.repo_id == "org/study-results" and url.repo_type == "dataset"
    assert api.create_repo("org/study-results", repo_type="dataset", exist_ok=True).repo_id == "org/study-results"
    first = api.repo_info("org/study-results", repo_type="dataset").sha
    one = api.create_commit("org/study-results", [CommitOperationAdd("runs/s/a.json", b'{"a": 1}\n')],
                            commit_message="a", repo_type="dataset", parent_commit=first).oid
    two = api.create_commit("org/study-results", [CommitOperationAdd("runs/s/b.json", b'{"b": 2}\n')],
                            commit_message="b", repo_type="dataset").oid
    assert len({first, one, two}) == 3 and api.repo_info("org/study-results", repo_type="dataset").sha == two
    assert [c.commit_id for c in api.list_repo_commits("org/study-results", repo_type="dataset")] == [two, one, first]
    tree = {f.path for f in api.list_repo_tree("org/study-results", repo_type="dataset", recursive=True)}
    assert tree == {".gitattributes", "runs", "runs/s", "runs/s/a.json", "runs/s/b.json"}
    info = api.get_paths_info("org/study-results", ["runs/s/a.json", "missing.json"], repo_type="dataset")
    assert [f.path for f in info] == ["runs/s/a.json"]
    old = snapshot_download("org/study-results", repo_type="dataset", revision=one, endpoint=hub_server.url,
                            cache_dir=tmp_path / "c")
    assert old.endswith(one) and sorted(p.name for p in Path(old).rglob("*.json")) == ["a.json"]
    path = hf_hub_download("org/study-results", "runs/s/b.json", repo_type="dataset", endpoint=hub_server.url,
                           cache_dir=tmp_path / "c")
    assert open(path, "rb").read() == b'{"b": 2}\n'


def test_unchanged_files_make_no_commit_and_a_stale_parent_gets_412(hub_server):  # noqa: F811
    api = HfApi(endpoint=hub_server.url)
    api.create_repo("org/m", repo_type="model")
    parent = api.repo_info("org/m").sha
    sha = api.create_commit("org/m", [CommitOperationAdd("config.json", b"{}")], commit_message="c").oid
    again = api.create_commit("org/m", [CommitOperationAdd("config.json", b"{}")], commit_message="c").oid
    assert again == sha and len(hub_server.commits("model", "org/m")) == 2
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit("org/m", [CommitOperationAdd("x.json", b"1")], commit_message="x", parent_commit=parent)
    assert err.value.response.status_code == 412


def test_space_repos_and_upload_folder(hub_server, tmp_path):  # noqa: F811
    api = HfApi(endpoint=hub_server.url)
    api.create_repo("org/space", repo_type="space", space_sdk="gradio")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "app.py").write_text("print('hi')\n")
    (tmp_path / "app" / "README.md").write_text("---\nsdk: gradio\n---\n# Space\n")
    api.upload_folder(folder_path=tmp_path / "app", repo_id="org/space", repo_type="space")
    assert set(hub_server.files("space", "org/space")) == {".gitattributes", "app.py", "README.md"}
    assert api.space_info("org/space").sdk == "gradio"


def test_writes_need_the_token_and_faults_are_injected(hub_server, monkeypatch):  # noqa: F811
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=hub_server.url, token=False).create_repo("org/x")
    assert err.value.response.status_code == 401
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api.create_repo("org/x")
    hub_server.fail_next(1, 503)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("org/y")
    assert err.value.response.status_code == 503
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info("org/nothing")
    hub_server.down()
    with pytest.raises(Exception, match="onnect"):
        api.create_repo("org/z", exist_ok=True)
    hub_server.up()
    assert api.repo_info("org/x").sha
