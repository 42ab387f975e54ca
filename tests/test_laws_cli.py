"""fit_laws.py end to end through a subprocess: outputs, schema, comparison, and exit 2 on bad input."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ditlaws.laws.predict import SCHEMA_VERSION
from ditlaws.laws.synthetic import PAPER_LAWS, isoflop_table, paper_truth

ROOT = Path(__file__).resolve().parents[1]


def _write_csv(path, table, ood=False, loss_scale=None):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["budget", "N", "D", "loss", "fid", "ood_loss", "study"])
        for i in range(len(table)):
            loss = table.loss[i] * (loss_scale(table.budget[i]) if loss_scale else 1.0)
            w.writerow([table.budget[i], table.N[i], table.D[i], loss, table.fid[i],
                        1.1 * loss + 0.05 if ood else "", table.study[i]])
    return path


def _run(*args):
    return subprocess.run([sys.executable, str(ROOT / "fit_laws.py"), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def test_cli_writes_fit_json_and_report(tmp_path):
    truth = paper_truth()
    main = _write_csv(tmp_path / "incontext.csv", isoflop_table(truth, np.random.default_rng(0), 5e-4,
                                                                fid_law=PAPER_LAWS["FID"], study="incontext"), ood=True)
    other = _write_csv(tmp_path / "crossattn.csv",
                       isoflop_table(truth, np.random.default_rng(1), 5e-4, study="crossattn"),
                       loss_scale=lambda b: (b / 1e17) ** -0.011)
    out = tmp_path / "out"
    res = _run("--runs", main, "--out", out, "--predict", "1.5e21", "--compare", other, "--bootstrap", "200",
               "--parametric-bootstrap", "10", "--seed", "0")
    assert res.returncode == 0, res.stderr
    assert "At 1.5e+21 FLOPs, train a" in res.stdout
    fit = json.loads((out / "fit.json").read_text())
    assert fit["schema_version"] == SCHEMA_VERSION
    laws = fit["approach2"]["laws"]
    for name in ("N_opt", "D_opt", "L_opt", "FID"):
        assert {"coef", "exponent", "summary", "r2", "draws", "error_model"} <= laws[name].keys()
        lo, hi = laws[name]["summary"]["exponent"]["ci90"]
        assert lo <= laws[name]["summary"]["exponent"]["median"] <= hi
    assert abs(laws["N_opt"]["exponent"] - 0.5681) < 0.03
    assert len(fit["approach2"]["budgets"]) == 6
    assert all(b["used"] and b["flags"] == [] for b in fit["approach2"]["budgets"])
    assert {"E", "A", "B", "alpha", "beta"} <= fit["approach3"]["params"].keys()
    (pred,) = fit["predictions"]
    assert pred["C"] == 1.5e21 and {"N_opt", "D_opt", "L_opt", "FID"} <= pred["approach2"].keys()
    assert abs(np.log(pred["approach2"]["N_opt"]["value"] / 958e6)) < 0.2
    row = fit["backtest"][0]["quantities"]["N_opt"]
    assert {"predicted", "actual", "ci90", "ci90_noise", "covered"} <= row.keys()
    assert row["covered"] == (row["ci90"][0] <= row["actual"] <= row["ci90"][1])
    assert fit["inputs"][0]["fingerprint"] and fit["versions"]["numpy"]
    assert fit["studies"][0]["study"] == "crossattn"
    loss_diff = [d for d in fit["comparison"]["differences"] if d["law"] == "L_opt"][0]
    assert loss_diff["significant_95"] and abs(loss_diff["difference"] - 0.011) < 0.002
    assert abs(fit["ood"]["slope"] - 1.1) < 1e-6
    report = (out / "report.md").read_text()
    assert report.startswith("# Scaling laws — incontext")
    for png in ("fig1_isoflop.png", "fig2_backtest.png", "fig3_loss_fid.png", "fig4_ood.png", "fig5_compare.png"):
        assert f"]({png})" in report and (out / png).stat().st_size > 10_000


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    res = _run("--runs", tmp_path / "missing.csv", "--out", tmp_path / "o")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "missing.csv" in res.stderr

    bad = tmp_path / "bad.csv"
    bad.write_text("budget,N,loss\n1e17,1e6,0.8\n")
    res = _run("--runs", bad, "--out", tmp_path / "o")
    assert res.returncode == 2 and "missing column(s) D" in res.stderr and res.stderr.strip().count("\n") == 0

    # Two budgets only (and one of them a single point): too little for a scaling law.
    few = isoflop_table(paper_truth(), np.random.default_rng(0), 1e-4, budgets=(1e17, 3e17))
    few = few.select(~((few.budget == 3e17) & (few.N > 1e6)))
    res = _run("--runs", _write_csv(tmp_path / "few.csv", few), "--out", tmp_path / "o", "--no-parametric")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "1 of 2 budget group(s) pass" in res.stderr and "too_few_points" in res.stderr
