"""The Space and the Hub over real HTTP (the Hub-API test server, tests/hub_server.py): `ditlaws space deploy`
creates a Space repo whose files are the app, and the app reads its fit and run records from a results repo
(one pinned snapshot), also when a deployed Space is configured to do so."""

import importlib.util
import json
from pathlib import Path

import pytest
from hub_server import hub_server  # noqa: F401  (the fixture)
from huggingface_hub import HfApi

from ditlaws.space import main as space_main
from ditlaws.space.deploy import deploy, stage
from ditlaws.space.example import example_fit, example_records
from ditlaws.space.source import from_environment, from_hub
from ditlaws.store import HubStore

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"geometry": {"family": "in_context", "sample_size": 32, "in_channels": 4, "patch_size": 2,
                        "mlp_ratio": 4.0, "text_dim": 768, "text_len": 77},
           "presets": [{"depth": 8, "width": 512, "heads": 8, "N": 26_000_000, "N_non_embedding": 25_000_000}]}


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "fit.json").write_text(json.dumps(example_fit()))
    (tmp_path / "presets.json").write_text(json.dumps(PRESETS))
    return tmp_path


def _staged(tmp_path: Path, **kw) -> dict[str, bytes]:
    folder = tmp_path / "staged"
    folder.mkdir()
    stage(folder, **kw)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_deploy_creates_a_space_whose_files_are_the_app(hub_server, inputs, tmp_path, capsys):  # noqa: F811
    out = deploy("org/scaling", fit=inputs / "fit.json", presets=inputs / "presets.json", endpoint=hub_server.url)
    repo = hub_server.repo("space", "org/scaling")
    assert repo.sdk == "gradio" and out["commit"] == repo.head.oid
    files = hub_server.files("space", "org/scaling")
    expected = _staged(tmp_path, fit=inputs / "fit.json", presets=inputs / "presets.json")
    assert {k: v for k, v in files.items() if k != ".gitattributes"} == expected
    assert json.loads(files["fit.json"]) == example_fit() and b"sdk: gradio" in files["README.md"]

    # the same deploy again changes nothing; a deploy without presets removes the old presets.json
    n_commits = len(hub_server.commits("space", "org/scaling"))
    deploy("org/scaling", fit=inputs / "fit.json", presets=inputs / "presets.json", endpoint=hub_server.url)
    assert hub_server.files("space", "org/scaling") == files
    assert len(hub_server.commits("space", "org/scaling")) == n_commits
    assert space_main(["deploy", "--repo", "org/scaling", "--fit", str(inputs / "fit.json"),
                       "--endpoint", hub_server.url]) == 0
    report = json.loads(capsys.readouterr().out)
    after = hub_server.files("space", "org/scaling")
    assert "presets.json" not in after and after["app.py"] == files["app.py"]
    assert report["commit"] == hub_server.repo("space", "org/scaling").head.oid
    # the token never lands in the Space
    assert not any(hub_server.token.encode() in data for data in after.values())


def _results_repo(server, doc: dict, records: list[dict], folder: Path) -> str:
    """Records and a fit_laws.py-style output folder pushed the way a study does it (HubStore.put_runs, put_fit)."""
    store = HubStore("org", "in_context", endpoint=server.url)
    store.put_runs(records)
    folder.mkdir()
    (folder / "fit.json").write_text(json.dumps(doc))
    return store.put_fit(folder)


def test_app_reads_fit_and_records_from_a_pinned_results_repo(hub_server, tmp_path):  # noqa: F811
    doc = example_fit()
    records = example_records(doc)
    first = _results_repo(hub_server, doc, records[:5], tmp_path / "fit1")
    changed = {**doc, "n_runs": 99}
    second = _results_repo(hub_server, changed, records, tmp_path / "fit2")

    src = from_hub("org/in_context-results", endpoint=hub_server.url)
    assert src.origin.startswith(f"org/in_context-results@{second}")
    assert src.fit.doc["n_runs"] == 99 and len(src.runs) == len(records)
    assert src.fit.predict(3e20) == from_hub("org/in_context-results", second, hub_server.url).fit.predict(3e20)
    old = from_hub("org/in_context-results", first, hub_server.url)
    assert old.fit.doc["n_runs"] == doc["n_runs"] and len(old.runs) == 5 and first in old.origin

    # a deployed Space configured by `deploy --results-repo` (space.json) or by its variables reads the same
    app_dir = tmp_path / "space"
    app_dir.mkdir()
    stage(app_dir, fit=None, results_repo="org/in_context-results", revision=first)
    env = {"HF_ENDPOINT": hub_server.url}
    assert from_environment(app_dir, env).origin.startswith(f"org/in_context-results@{first}")
    env.update(DITLAWS_RESULTS_REPO="org/in_context-results", DITLAWS_RESULTS_REVISION=second)
    assert from_environment(app_dir, env).fit.doc["n_runs"] == 99

    # and app.py --hub ... --revision ... on the command line
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "hub_cards" / "space" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    args = app.parse_args(["--hub", "org/in_context-results", "--revision", first, "--endpoint", hub_server.url])
    src = app.load_source(args)
    assert src.fit.doc["n_runs"] == doc["n_runs"] and first in src.origin


def test_missing_results_repo_or_fit_is_one_line(hub_server):  # noqa: F811
    from ditlaws.errors import UserError

    with pytest.raises(UserError, match="no such results repo"):
        from_hub("org/nothing-results", endpoint=hub_server.url)
    HfApi(endpoint=hub_server.url).create_repo("org/empty-results", repo_type="dataset")
    with pytest.raises(UserError, match="holds no fit"):
        from_hub("org/empty-results", endpoint=hub_server.url)
    with pytest.raises(UserError, match="give a results repo id"):
        from_hub("org/empty", endpoint=hub_server.url)
