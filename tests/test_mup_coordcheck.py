"""`ditlaws coordcheck` on tiny models: μP's activation scales are flat in width, SP's grow (μP is wired in)."""

import json

import pytest
import yaml

from ditlaws.cli import main

TINY = {"model": {"depth": 2, "heads": 2, "patch_size": 4},
        "data": {"resolution": 16, "text_dim": 16, "text_len": 8},
        "train": {"global_batch": 8, "steps": 10, "lr": 3.0e-3, "mixed_precision": "no"}}


def test_coordcheck_mup_is_flat_in_width_and_sp_grows(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "cc"
    assert main(["coordcheck", "--config", str(config), "--widths", "16,256", "--steps", "3",
                 "--out", str(out)]) == 0
    result = json.loads((out / "coordcheck.json").read_text())
    assert (out / "coordcheck.png").stat().st_size > 10_000
    assert result["widths"] == [16, 256] and result["base_width"] == 16 and len(result["results"]["sp"]["output"]) == 4
    for layer, spread in result["spread"]["mup"].items():  # step 3, width 256 vs 16
        assert spread < 2.0, (layer, result["spread"])
    for layer in ("attention_out", "mlp_out"):  # the hidden layers: SP's updates grow with the fan-in
        assert result["growth"]["sp"][layer] > 2.0, (layer, result["growth"])
    # step 0 (before any update): the output is zero at every width (zero-initialised output layer), both ways
    assert result["results"]["mup"]["output"][0] == result["results"]["sp"]["output"][0] == [0.0, 0.0]


@pytest.mark.parametrize("args, key", [(["--widths", "16,x"], "--widths"), (["--widths", "16,24", "--heads", "5"],
                                                                             "--heads"),
                                       (["--steps", "0"], "--steps")])
def test_coordcheck_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, key):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["coordcheck", "--config", str(config), "--out", str(tmp_path / "cc"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and key in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cc").exists()
