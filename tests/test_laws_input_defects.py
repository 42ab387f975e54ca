"""fit_laws.py on bad input (issue 12, items 7 and 8): every case one line `error: ...` and exit 2 before any work,
or a warning naming the rows. One test per defect, named after it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ditlaws.laws.cli import main
from ditlaws.laws.synthetic import isoflop_table, paper_truth

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--bootstrap", "20", "--no-parametric", "--no-figures", "--holdout", "0"]


def _csv(path, rows=None, header="budget,N,D,loss,fid"):
    if rows is None:
        t = isoflop_table(paper_truth(), np.random.default_rng(0), 1e-4, budgets=(1e17, 3e17, 1e18),
                          depths=(2, 3, 4, 5, 6, 7))
        rows = [f"{b!r},{n!r},{d!r},{v!r},{30 * v!r}" for b, n, d, v in
                zip(t.nominal.tolist(), t.N.tolist(), t.D.tolist(), t.loss.tolist())]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _run(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    return code, err


def _one_line_error(code, err):
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith("error: ")


def test_duplicated_rows_are_an_error_naming_them(tmp_path, capsys):
    path = _csv(tmp_path / "runs.csv")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[3]]) + "\n")  # line 4 (a run) again at the end, line 20
    code, err = _run(capsys, "--runs", path, "--out", tmp_path / "o", *FAST)
    assert _one_line_error(code, err) and "duplicated runs" in err and "line 4" in err and "line 20" in err
    code, err = _run(capsys, "--runs", path, "--out", tmp_path / "o", *FAST, "--drop-duplicates")
    assert code == 0 and "duplicated run(s) dropped" in err and "line 20" in err
    fit = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert fit["n_runs"] == 18 and any("dropped" in w for w in fit["warnings"])


def test_predict_inf_is_rejected(tmp_path, capsys):
    code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", tmp_path / "o", "--predict", "inf")
    assert _one_line_error(code, err) and "--predict must be a finite number" in err
    code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", tmp_path / "o", "--predict=-1e20")
    assert _one_line_error(code, err) and "--predict must be > 0" in err


def test_d_inconsistent_with_the_budget_by_100x_is_an_error_naming_the_row(tmp_path, capsys):
    path = _csv(tmp_path / "runs.csv")
    lines = path.read_text().splitlines()
    b, n, d, v, f = lines[5].split(",")
    lines[5] = ",".join([b, n, repr(float(d) * 100), v, f])  # D in the wrong units on line 6
    path.write_text("\n".join(lines) + "\n")
    code, err = _run(capsys, "--runs", path, "--out", tmp_path / "o", *FAST)
    assert _one_line_error(code, err) and "runs.csv line 6" in err and "100x its budget" in err


@pytest.mark.parametrize("bad", ["0", "-3", "inf", "-inf"])  # empty (or nan) means "no FID for this run"
def test_fid_not_positive_or_not_finite_is_an_error_naming_the_row(tmp_path, capsys, bad):
    path = _csv(tmp_path / "runs.csv")
    lines = path.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:4] + [bad])
    path.write_text("\n".join(lines) + "\n")
    code, err = _run(capsys, "--runs", path, "--out", tmp_path / "o", *FAST)
    assert _one_line_error(code, err) and "runs.csv line 3" in err and "'fid' must be a finite number > 0" in err


def test_holdout_negative_is_rejected(tmp_path, capsys):
    code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", tmp_path / "o", "--holdout", "-1")
    assert _one_line_error(code, err) and "--holdout must be >= 0, got -1" in err


def test_seed_negative_is_rejected(tmp_path, capsys):
    code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", tmp_path / "o", "--seed", "-1")
    assert _one_line_error(code, err) and "--seed must be >= 0, got -1" in err


def test_compare_missing_file_is_reported_as_compare(tmp_path, capsys):
    code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", tmp_path / "o", "--compare",
                     tmp_path / "missing.csv")
    assert _one_line_error(code, err) and err.startswith("error: --compare:") and "missing.csv" in err


def test_non_utf8_csv_is_one_line(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_bytes("budget,N,D,loss\n1e17,1e6,1e10,0.8\n".encode("utf-16"))
    code, err = _run(capsys, "--runs", path, "--out", tmp_path / "o")
    assert _one_line_error(code, err) and "not UTF-8" in err


def test_non_utf8_json_record_is_listed_and_skipped_or_fatal_with_strict(tmp_path, capsys):
    runs = tmp_path / "store" / "runs" / "s"
    runs.mkdir(parents=True)
    t = isoflop_table(paper_truth(), np.random.default_rng(0), 1e-4, budgets=(1e17, 3e17, 1e18), depths=range(2, 8))
    for i in range(len(t)):
        rec = {"run_id": f"r{i}", "study": "s", "budget": t.nominal[i], "N": t.N[i], "D": t.D[i],
               "eval": {"val_loss": {"mean": t.loss[i]}}}
        (runs / f"r{i}.json").write_text(json.dumps(rec))
    (runs / "zz.json").write_bytes(b'{"run_id": "zz", "note": "\xff\xfe"}')
    code, err = _run(capsys, "--runs", tmp_path / "store", "--out", tmp_path / "o", *FAST)
    assert code == 0 and "zz.json" in err and "not valid JSON" in err
    fit = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert [s["where"].endswith("zz.json") for s in fit["skipped_records"]] == [True] and fit["n_runs"] == 18
    assert "zz.json" in (tmp_path / "o" / "report.md").read_text()
    code, err = _run(capsys, "--runs", tmp_path / "store", "--out", tmp_path / "o", *FAST, "--strict")
    assert _one_line_error(code, err) and "zz.json" in err and "--strict" in err


def test_output_path_that_is_a_file_is_rejected_before_any_work(tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("not a folder")
    code, err = _run(capsys, "--runs", tmp_path / "does-not-exist.csv", "--out", out)  # the output is checked first
    assert _one_line_error(code, err) and "--out" in err and "not a folder" in err


def test_output_path_that_is_not_writable_is_rejected(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", blocker / "sub")
    assert _one_line_error(code, err) and err.startswith("error: --out ") and "file is a file, not a folder" in err
    code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", "/sys/ditlaws-fit")  # even root cannot
    assert _one_line_error(code, err) and "cannot write in /sys" in err
    if os.geteuid() != 0:  # root writes anywhere; a read-only folder only stops other users
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        code, err = _run(capsys, "--runs", _csv(tmp_path / "r.csv"), "--out", ro / "o")
        assert _one_line_error(code, err) and "--out" in err


def test_missing_required_flag_and_unknown_choice_are_one_line():
    for args in ([], ["--runs", "x.csv"], ["--runs", "x.csv", "--out", "o", "--estimator", "bogus"]):
        res = subprocess.run([sys.executable, str(ROOT / "fit_laws.py"), *args], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "error:" in res.stderr, res.stderr
