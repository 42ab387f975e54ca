"""evaluate_dit.py defects from issue 12 (items 7, 8, 9) and issue 9 (item 5), one test each: bad input gets one
line and exit 2 before anything is computed, eval.json is strict JSON, weights load from safetensors only."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from eval_helpers import eval_args, evaluate_dit, parquet_data, train_tiny_run
from reliability_report import record_case

from ditlaws.errors import UserError
from ditlaws.evaluation import loading, runner

WEIGHTS = "diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"))


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any metric starts computing."""
    def refuse(*args, **kwargs):
        raise AssertionError("a metric ran before the input was checked")

    for name in ("validation_loss", "vlb", "ode_nll", "run_generation"):
        monkeypatch.setattr(runner, name, refuse, raising=False)


@pytest.fixture
def refused(capsys, request, tmp_path):
    """Run evaluate_dit.py; it must exit 2 with one line. The case goes into docs/reliability.md."""
    def run(argv: list[str], shown: str) -> str:
        assert evaluate_dit.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        record_case("evaluate_dit.py", request.node.name.removeprefix("test_").replace("_", " "), shown, 2,
                    err.replace(str(tmp_path), "<tmp>"))
        return err
    return run


def copy_model(run_dir, tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(run_dir / "model", folder)
    return folder


def data_only(run_dir, *extra):
    """Arguments for a bare model folder, with the run's data settings."""
    return ["--data", "builtin32", "--data.resolution", "16", "--data.text_dim", "16", "--data.text_len", "8",
            "--data.val_size", "8", *extra]


# -- issue 12 item 7: output path that is a folder, under a file, or not writable ---------------------------------

@pytest.mark.parametrize("case", ["folder", "under_a_file", "not_writable"])
def test_out_path_that_is_a_file_or_not_writable_is_refused_before_computing(run_dir, tmp_path, refused, no_work,
                                                                             case):
    (tmp_path / "a_file").write_text("x")
    out = {"folder": tmp_path, "under_a_file": tmp_path / "a_file" / "eval.json",
           "not_writable": Path("/proc/ditlaws-eval/eval.json")}[case]  # /proc: no new files, even for root
    shown = {"folder": "--out <a folder>", "under_a_file": "--out <a file>/eval.json", "not_writable": f"--out {out}"}
    err = refused(eval_args(run_dir, "--out", str(out)), shown[case])
    assert err.startswith(f"error: --out {out}: ")
    assert {"folder": "is a folder", "under_a_file": "is a file, not a folder",
            "not_writable": "cannot write in /proc"}[case] in err


def test_store_that_is_a_file_is_refused(run_dir, tmp_path, refused, no_work):
    (tmp_path / "store").write_text("x")
    assert "is a file, not a run store folder" in refused(eval_args(run_dir, "--store", str(tmp_path / "store")),
                                                          "--store <a file>")


# -- issue 12 item 7: a corrupt model folder names the file ---------------------------------------------------------

def _truncate_weights(folder):
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])


def _truncate_config(folder):
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: len(text) // 2])


def _config_key(key, value):
    def change(folder):
        config = json.loads((folder / "config.json").read_text())
        config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return change


def _latin1_config(folder):
    (folder / "config.json").write_bytes('{"_class_name": "InContextDiT", "x": "café"}'.encode("latin-1"))


@pytest.mark.parametrize("damage, file, message", [
    (_truncate_weights, WEIGHTS, "cannot read the weights (truncated or damaged file?)"),
    (_truncate_config, "config.json", "not valid JSON"),
    (_config_key("depth", 3), "config.json", f"does not match {WEIGHTS}: 12 missing keys"),
    (_config_key("depth", 1), "config.json", f"does not match {WEIGHTS}: 12 unexpected keys"),
    (_config_key("width", 64), "config.json", "is torch.Size([16]) in the weights, torch.Size([32]) by the config"),
    (_latin1_config, "config.json", "not UTF-8 text"),
], ids=["truncated_weights", "truncated_config", "deeper_config", "shallower_config", "wider_config", "latin1"])
def test_corrupt_model_folder_is_one_line_naming_the_file(run_dir, tmp_path, refused, no_work, damage, file, message):
    folder = copy_model(run_dir, tmp_path)
    damage(folder)
    err = refused(eval_args(folder, *data_only(run_dir)), f"--checkpoint <model folder: {damage.__name__}>")
    assert f"error: {folder / file}" in err and message in err


# -- issue 12 item 7: --device bogus ----------------------------------------------------------------------------

@pytest.mark.parametrize("device, message", [
    ("bogus", "eval.device: 'bogus' is not a device; valid: cpu, cuda"),
    ("cuda:7", "eval.device cuda:7: no such CUDA device here"),
])
def test_device_bogus_is_one_line(run_dir, refused, no_work, device, message):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    assert message in refused([*eval_args(run_dir), "--device", device], f"--device {device}")


# -- issue 12 item 8: non-finite options, strict JSON, --max-samples 0 --------------------------------------------

@pytest.mark.parametrize("flag", ["--guidance-scale", "--t-loc"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_guidance_scale_nan_is_refused(run_dir, refused, no_work, flag, value):
    err = refused(eval_args(run_dir, f"{flag}={value}"), f"{flag}={value}")
    assert f"eval.{flag[2:].replace('-', '_')} must be a finite number" in err


def test_eval_json_is_strict_json_when_a_number_is_undefined(run_dir, tmp_path, capsys):
    # one validation sample: its standard error is undefined (NaN), which must not reach eval.json as a NaN token
    out = tmp_path / "e.json"
    assert evaluate_dit.main(eval_args(run_dir, "--metrics", "loss", "--max-samples", "1", "--out", str(out))) == 0

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    report = json.loads(out.read_text(), parse_constant=refuse)
    assert report["summary"]["val_loss"]["sem"] is None and report["summary"]["val_loss"]["mean"] > 0
    printed = capsys.readouterr().out
    json.loads(printed[printed.index("{") : printed.index("wrote ")], parse_constant=refuse)


def test_max_samples_zero_blames_the_flag(run_dir, refused, no_work):
    err = refused(eval_args(run_dir, "--max-samples", "0"), "--max-samples 0")
    assert "eval.max_samples must be >= 1, got 0" in err and "data" not in err


# -- issue 12 items 7 and 9: non-UTF-8 data YAML, FID's built-in features on other data ----------------------------

def test_non_utf8_data_yaml_is_one_line(run_dir, tmp_path, refused, no_work):
    path = tmp_path / "data.yaml"
    path.write_bytes("# données\ndata:\n  resolution: 16\n".encode("latin-1"))
    assert f"{path}: not UTF-8 text" in refused(eval_args(run_dir, "--data", str(path)), "--data <latin-1 YAML>")


def test_fid_with_builtin_features_on_real_data_warns(run_dir, tmp_path, capsys):
    data = parquet_data(tmp_path)
    out = tmp_path / "e.json"
    assert evaluate_dit.main(eval_args(run_dir, "--metrics", "fid", "--fid-samples", "4", "--data", str(data),
                                       "--out", str(out))) == 0
    err = capsys.readouterr().err
    assert "warning: FID features builtin-cnn were trained on the built-in set only; on data.source 'parquet'" in err
    report = json.loads(out.read_text())
    assert report["warnings"] and report["summary"]["fid"] >= 0
    # accuracy reads built-in captions only: refused up front on real data
    assert evaluate_dit.main(eval_args(run_dir, "--metrics", "accuracy", "--data", str(data),
                                       "--out", str(out))) == 2
    assert "--metrics accuracy scores captions of the built-in set; data.source is 'parquet'" in capsys.readouterr().err


# -- issue 9 item 5: safetensors only ----------------------------------------------------------------------------

def test_pickle_only_model_folder_is_refused(run_dir, tmp_path, refused, no_work):
    from safetensors.torch import load_file

    folder = copy_model(run_dir, tmp_path)
    torch.save(load_file(str(folder / WEIGHTS)), folder / "diffusion_pytorch_model.bin")
    (folder / WEIGHTS).unlink()
    err = refused(eval_args(folder, *data_only(run_dir)), "--checkpoint <folder with only a .bin>")
    assert f"{folder}: only pickle weights (diffusion_pytorch_model.bin); ditlaws loads safetensors only" in err


def test_hub_checkpoint_downloads_no_pickles_and_loads_safetensors_only(run_dir, tmp_path, monkeypatch):
    import fnmatch

    import huggingface_hub
    from safetensors.torch import load_file

    repo = copy_model(run_dir, tmp_path / "repo")
    torch.save(load_file(str(repo / WEIGHTS)), repo / "diffusion_pytorch_model.bin")  # a repo holding both
    calls = []

    def snapshot_download(repo_id, repo_type=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, repo_type, allow_patterns))
        local = tmp_path / "snapshot" / repo_id.replace("/", "--")
        for path in repo.iterdir():
            if allow_patterns is None or any(fnmatch.fnmatch(path.name, p) for p in allow_patterns):
                local.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, local / path.name)
        return str(local)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    loaded = []
    original = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda d: loaded.append(d) or original(d))
    model_dir, run = loading.resolve_checkpoint("someone/ditlaws-run")
    assert calls == [("someone/ditlaws-run", "model", loading.HUB_FILES)] and run is None
    assert sorted(p.name for p in model_dir.iterdir()) == ["config.json", WEIGHTS]  # the pickle never came
    assert loading.load_model(model_dir).config.depth == 2
    # a repo with pickle weights only is refused in one line
    (repo / WEIGHTS).unlink()
    shutil.rmtree(tmp_path / "snapshot")
    model_dir, _ = loading.resolve_checkpoint("someone/pickles")
    with pytest.raises(UserError, match="no diffusion_pytorch_model.safetensors"):
        loading.load_model(model_dir)


def test_from_pretrained_is_asked_for_safetensors(run_dir, monkeypatch):
    from ditlaws.models import InContextDiT

    seen = {}
    original = InContextDiT.from_pretrained.__func__

    def spy(cls, path, **kwargs):
        seen.update(kwargs)
        return original(cls, path, **kwargs)

    monkeypatch.setattr(InContextDiT, "from_pretrained", classmethod(spy))
    loading.load_model(run_dir / "model")
    assert seen.get("use_safetensors") is True
