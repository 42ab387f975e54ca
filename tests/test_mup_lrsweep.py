"""`ditlaws lrsweep`: loss vs learning rate per width for sp and mup, the best lr per width, tuned.yaml."""

import json
import math

import numpy as np
import pytest
import yaml

from ditlaws.cli import main
from ditlaws.config import load_config
from ditlaws.mup.lrsweep import best_lr

TINY = {"model": {"depth": 2, "heads": 2, "patch_size": 4},
        "data": {"resolution": 16, "text_dim": 16, "text_len": 8},
        "train": {"global_batch": 8, "steps": 10, "lr": 3.0e-3, "mixed_precision": "no", "warmup_steps": 1}}


def test_best_lr_is_the_vertex_of_a_parabola_in_ln_lr():
    lrs = [1e-3 * 2**k for k in range(7)]
    vertex = math.log(5.5e-3)
    losses = [0.3 * (math.log(lr) - vertex) ** 2 + 0.1 for lr in lrs]
    best = best_lr(lrs, losses)
    assert best["interior"] and best["points"] == 5 and best["lr"] == pytest.approx(5.5e-3, rel=1e-9)
    # diverged runs (inf) are left out; a minimum at the grid's edge is that grid point, flagged
    assert best_lr(lrs, losses[:5] + [math.inf, math.inf])["lr"] == pytest.approx(5.5e-3, rel=1e-9)
    edge = best_lr(lrs, list(np.linspace(1.0, 0.5, 7)))
    assert edge == {"lr": lrs[-1], "interior": False, "points": 3}
    assert best_lr(lrs, [math.inf] * 7)["lr"] is None


def test_lrsweep_trains_every_width_and_lr_and_writes_the_tuned_config(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "sweep"
    args = ["lrsweep", "--config", str(config), "--widths", "16,32", "--lrs", "1e-3,4e-3,1.6e-2", "--steps", "3",
            "--out", str(out)]
    assert main(args) == 0
    result = json.loads((out / "lrsweep.json").read_text())
    assert (out / "lrsweep.png").stat().st_size > 10_000
    assert result["widths"] == [16, 32] and result["steps"] == 3
    for p in ("sp", "mup"):
        for width in ("16", "32"):
            assert set(result["results"][p][width]) == {"0.001", "0.004", "0.016"}
            assert all(math.isfinite(v) for v in result["results"][p][width].values())
    assert result["results"]["mup"]["16"] == result["results"]["sp"]["16"]  # μP at its base width is SP
    assert result["results"]["mup"]["32"] != result["results"]["sp"]["32"]
    trained = sorted(p.name for p in (out / "runs").iterdir())
    assert trained == sorted(f"{p}-w{w}-lr{lr}" for p, w in [("sp", 16), ("sp", 32), ("mup", 32)]
                             for lr in ("0.001", "0.004", "0.016"))
    run = load_config(out / "runs" / "mup-w32-lr0.004" / "config.yaml")
    assert (run.model.parametrization, run.model.base_width, run.model.width, run.train.lr) == ("mup", 16, 32, 4e-3)
    tuned = load_config(out / "tuned.yaml")
    best = result["best"]["mup"]["16"]["lr"]
    assert tuned.model.parametrization == "mup" and tuned.model.base_width == 16
    assert tuned.train.lr == pytest.approx(best, rel=1e-3) and 1e-3 <= best <= 1.6e-2
    # a rerun trains nothing again and reports the same
    summary = (out / "runs" / "sp-w16-lr0.001" / "summary.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert (out / "runs" / "sp-w16-lr0.001" / "summary.json").stat().st_mtime_ns == summary
    assert json.loads((out / "lrsweep.json").read_text())["results"] == result["results"]


@pytest.mark.parametrize("args, key", [(["--lrs", "1e-3,2e-3"], "--lrs"), (["--lrs", "1e-3,x,3"], "--lrs"),
                                       (["--lrs", "1e-3,2e-3,4e-3", "--base-width", "64"], "--base-width")])
def test_lrsweep_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, key):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    assert main(["lrsweep", "--config", str(config), "--widths", "16,32", "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and key in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()
