"""evaluate_dit.py end to end on a tiny trained run: eval.json, sample grid, cached FID statistics, bad input."""

import json
from pathlib import Path

import pytest
import yaml
from eval_helpers import eval_args, evaluate_dit, train_tiny_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("run"))


_args = eval_args


def test_evaluate_run_writes_eval_json(run_dir, capsys):
    assert evaluate_dit.main(_args(run_dir, "--splits", "val,ood")) == 0
    report = json.loads((run_dir / "eval.json").read_text())
    summary = report["summary"]
    assert set(summary) == {"val_loss", "vlb_bpd", "nll_bpd", "fid", "fid_floor", "ood_val_loss", "ood_vlb_bpd",
                            "ood_nll_bpd", "ood_fid", "ood_fid_floor"}
    assert summary["val_loss"]["sem"] > 0 and summary["fid"] > 0
    val = report["results"]["val"]
    assert val["fid"]["feature_extractor"] == "builtin-cnn" and val["fid"]["n_generated"] == 8
    assert not val["fid"]["reference_cached"]
    assert "bits_per_dim_8bit" in val["nll"] and "bits_per_dim_8bit" in val["vlb"]
    assert Path(val["samples"]["grid"]).is_file() and (run_dir / "samples_ood.png").is_file()
    assert set(report["timing_s"]) == {f"{s}/{m}" for s in ("val", "ood") for m in ("loss", "vlb", "nll", "fid",
                                                                                     "samples", "generate")}
    assert report["options"]["guidance_scale"] == 10.0
    # no data warnings; the notes explain FID from 8 images of 144-dim features and the built-in features' scale
    assert all(w.startswith(("val/", "ood/")) for w in report["warnings"])
    assert any("rank <= 7" in w for w in report["warnings"])
    out = capsys.readouterr().out
    assert "wrote" in out and "estimated cost" in out and "nll: " in out
    # a second run reuses the cached reference statistics and reproduces every number
    out = run_dir / "again.json"
    assert evaluate_dit.main(_args(run_dir, "--metrics", "loss,fid", "--out", str(out))) == 0
    again = json.loads(out.read_text())
    assert again["results"]["val"]["fid"]["reference_cached"]
    assert again["summary"]["fid"] == summary["fid"] and again["summary"]["val_loss"] == summary["val_loss"]
    # the real-vs-real floor: measured with the reference (val: against the training split), cached with it
    assert summary["fid_floor"] > 0 and again["summary"]["fid_floor"] == summary["fid_floor"]
    assert "training split" in val["fid"]["fid_floor_from"]
    # ood's floor: the built-in shifted distribution drawn again with the next seed (the split alone is too short)
    ood = report["results"]["ood"]["fid"]
    assert summary["ood_fid_floor"] > 0 and ood["fid_floor_from"].endswith("ood split drawn with data.seed 1")


@pytest.mark.parametrize("extra, message", [
    (["--metrics", "loss,bogus"], "eval.metrics[1]: 'bogus' is not valid; choose one of loss, vlb, nll, fid"),
    (["--data", "no-such-config"], "--data no-such-config: not a file and not a config name"),
    (["--fid-samples", "1"], "eval.fid_samples must be >= 2, got 1"),
    (["--data.resolutoin", "8"], "data.resolutoin: unknown key"),
    (["--nll-method", "rk4"], "eval.nll_method: 'rk4' is not valid; choose one of euler, rk45"),
    (["--batch-size", "two"], "eval.batch_size: expected an integer, got 'two'"),
])
def test_bad_input_exits_2_with_one_line(run_dir, capsys, extra, message):
    assert evaluate_dit.main(_args(run_dir, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    assert evaluate_dit.main(["--checkpoint", str(tmp_path / "nothing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert evaluate_dit.main(["--metrics", "loss"]) == 2
    assert "eval.checkpoint is required" in capsys.readouterr().err


def test_store_receives_the_eval_summary_and_fit_laws_reads_it(run_dir, tmp_path):
    from ditlaws.laws.table import load_runs
    from ditlaws.store import LocalStore

    store = tmp_path / "store"
    args = _args(run_dir, "--metrics", "loss", "--splits", "val,ood", "--out", str(tmp_path / "e.json"))
    assert evaluate_dit.main([*args, "--store", str(store)]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    record = LocalStore(store).get_run(summary["study"], summary["run_id"])
    assert record["N"] == summary["N"] and record["eval"]["val_loss"]["mean"] > 0
    table = load_runs(str(store))
    assert table.loss[0] == record["eval"]["val_loss"]["mean"]
    assert table.ood_loss[0] == record["eval"]["ood_val_loss"]["mean"]
    # a second evaluation merges into the same record without losing the first one's fields
    assert evaluate_dit.main([*_args(run_dir, "--metrics", "fid", "--out", str(tmp_path / "f.json")),
                              "--store", str(store)]) == 0
    again = LocalStore(store).get_run(summary["study"], summary["run_id"])
    assert again["eval"]["val_loss"] == record["eval"]["val_loss"] and again["eval"]["fid"] > 0


def test_store_needs_a_run_folder(run_dir, tmp_path, capsys):
    import shutil

    shutil.copytree(run_dir / "model", tmp_path / "bare_model")  # a diffusers folder with no run around it
    args = _args(tmp_path / "bare_model", "--metrics", "loss", "--data", "builtin32", "--data.resolution", "16",
                 "--out", str(tmp_path / "e.json"))
    assert evaluate_dit.main([*args, "--store", str(tmp_path / "store")]) == 2
    assert "--store: the checkpoint is not a train_dit.py run folder" in capsys.readouterr().err
    assert not (tmp_path / "e.json").exists()  # refused before any evaluation ran


def test_data_only_config_by_name(run_dir, tmp_path):
    """`--data builtin32` is a data-only YAML: its (absent) train section must not be validated."""
    args = _args(run_dir, "--metrics", "loss", "--data", "builtin32", "--data.resolution", "16",
                 "--data.text_dim", "16", "--data.text_len", "8", "--data.val_size", "8",
                 "--out", str(tmp_path / "e.json"))
    assert evaluate_dit.main(args) == 0
    assert json.loads((tmp_path / "e.json").read_text())["summary"]["val_loss"]["mean"] > 0


def test_more_generated_images_than_the_split_holds_is_a_warning(run_dir):
    val_size = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["val_size"]
    out = run_dir / "wide.json"
    assert evaluate_dit.main(_args(run_dir, "--metrics", "fid", "--fid-samples", str(val_size + 8),
                                   "--out", str(out))) == 0
    report = json.loads(out.read_text())
    assert report["results"]["val"]["fid"]["n_generated"] == val_size
    assert any(f"fid asks for {val_size + 8} images" in w and "data.val_size" in w for w in report["warnings"])


def test_a_second_evaluation_is_merged_into_eval_json(tmp_path, capsys):
    # the README's two commands into one run: the first's loss and OOD results and grids survive the second
    run = train_tiny_run(tmp_path / "run")
    assert evaluate_dit.main(_args(run, "--metrics", "loss,samples", "--splits", "val,ood")) == 0
    first = json.loads((run / "eval.json").read_text())
    assert evaluate_dit.main(_args(run, "--metrics", "fid,samples", "--guidance-scale", "2")) == 0
    assert "merged into" in capsys.readouterr().out
    merged = json.loads((run / "eval.json").read_text())
    assert merged["summary"]["val_loss"] == first["summary"]["val_loss"]
    assert merged["summary"]["ood_val_loss"] == first["summary"]["ood_val_loss"] and merged["summary"]["fid"] > 0
    assert merged["results"]["ood"]["samples"]["grid"] == str(run / "samples_ood.png")
    assert (run / "samples_ood.png").is_file()
    by_metric = merged["options_by_metric"]
    assert by_metric["val/loss"]["guidance_scale"] == 10.0 and by_metric["val/fid"]["guidance_scale"] == 2.0
    assert set(merged["timing_s"]) >= {"val/loss", "ood/loss", "val/fid"}
    # other weights: the old results describe another model, so they are replaced (and it says so)
    from safetensors.torch import load_file, save_file

    weights = next((run / "model").glob("*.safetensors"))
    tensors = load_file(weights)
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 1
    save_file(tensors, weights, metadata={"format": "pt"})
    assert evaluate_dit.main(_args(run, "--metrics", "loss")) == 0
    assert "other weights" in capsys.readouterr().err
    assert set(json.loads((run / "eval.json").read_text())["summary"]) == {"val_loss"}


def test_a_damaged_eval_json_is_refused_before_any_work(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    out.write_text("{ half written")
    assert evaluate_dit.main(_args(run_dir, "--metrics", "loss", "--out", str(out))) == 2
    assert "not valid eval.json" in capsys.readouterr().err and out.read_text() == "{ half written"
