"""Both run stores implement `RunStore` with the same signatures, and the store package is the record layer only."""

import inspect
import typing

import pytest

from ditlaws.errors import UserError
from ditlaws.store import HubStore, LocalStore, RunStore, check_endpoint, layout


def protocol_methods() -> list[str]:
    return sorted(name for name, value in vars(RunStore).items() if callable(value) and not name.startswith("_"))


@pytest.mark.parametrize("name", protocol_methods())
def test_local_and_hub_stores_share_each_signature(name):
    want = inspect.signature(getattr(RunStore, name))
    for cls in (LocalStore, HubStore):
        got = inspect.signature(getattr(cls, name))
        assert list(got.parameters) == list(want.parameters), (cls.__name__, name, str(got))
        assert [p.kind for p in got.parameters.values()] == [p.kind for p in want.parameters.values()]
        ours, theirs = (typing.get_type_hints(getattr(c, name)).get("return") for c in (cls, RunStore))
        if isinstance(theirs, type):  # a "where" (PurePath): a Path locally, a PurePosixPath on the Hub
            assert isinstance(ours, type) and issubclass(ours, theirs), (cls.__name__, name, ours)
        else:
            assert ours == theirs, (cls.__name__, name, ours)


def test_a_local_store_is_a_run_store(tmp_path):
    assert isinstance(LocalStore(tmp_path), RunStore)


def test_the_layout_is_spelled_once(tmp_path):
    assert layout.record_path("s", "r1") == "runs/s/r1.json"
    assert layout.metrics_path("s", "r1") == "runs/s/r1/metrics.jsonl"
    assert LocalStore(tmp_path).run_path("s", "r1") == tmp_path / layout.record_path("s", "r1")
    assert not layout.is_store(tmp_path)
    LocalStore(tmp_path).put_run({"study": "s", "run_id": "r1"})
    assert layout.is_store(tmp_path) and layout.require_store(tmp_path, "--runs") == tmp_path
    with pytest.raises(UserError, match=r"^--runs: .* is not a run store \(no runs/ folder\)$"):
        layout.require_store(tmp_path / "runs", "--runs")


@pytest.mark.parametrize("endpoint", ["notaurl", "ftp://h", "http://", "https://h:99999", "http://a b"])
def test_bad_endpoints_are_one_line(endpoint):
    with pytest.raises(UserError, match=r"^hub.endpoint .*: give an http\(s\) URL such as https://huggingface.co$"):
        check_endpoint(endpoint)


def test_good_endpoints_pass():
    assert check_endpoint("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_endpoint("https://huggingface.co") == "https://huggingface.co" and check_endpoint(None) is None
