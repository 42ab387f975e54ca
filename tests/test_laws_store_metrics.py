"""Runs read through the store interface (any store object), its provenance in fit.json and the report; budget
grouping within a tolerance; generation metrics (FID, accuracy, CLIP score) fitted from the records."""

import json

import numpy as np
import pytest

from ditlaws.laws.cli import main
from ditlaws.laws.document import fit_document
from ditlaws.laws.predict import load_fit
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import isoflop_table, paper_truth
from ditlaws.laws.table import group_budgets, load_runs, table_from_store
from ditlaws.store import LocalStore, StoredRecord

FAST = ["--bootstrap", "50", "--no-parametric", "--no-figures", "--holdout", "1"]


def _records(seed=0, metrics=True):
    """Records of a paper-truth sweep; generation metrics tied to the loss gap above the budget's optimum."""
    t = isoflop_table(paper_truth(), np.random.default_rng(seed), 3e-4, budgets=(1e17, 3e17, 1e18, 3e18),
                      depths=range(2, 12))
    _, _, l_opt = paper_truth().optimal(t.nominal)
    gap = t.loss / l_opt - 1
    out = []
    for i in range(len(t)):
        ev = {"val_loss": {"mean": float(t.loss[i]), "sem": 1e-4}}
        if metrics:
            scale = (t.nominal[i] / 1e17) ** -0.2
            ev.update({"fid": float(50 * scale * (1 + 30 * gap[i])),
                       "accuracy": float(1 - 0.4 * scale * (1 + 30 * gap[i])),
                       "accuracy_colour": float(1 - 0.2 * scale), "accuracy_position": float(1 - 0.5 * scale),
                       "accuracy_shape": float(1 - 0.3 * scale),
                       "clip_score": float(20 * (t.nominal[i] / 1e17) ** 0.05)})
        out.append({"run_id": f"r{i:03d}", "study": "demo", "budget": float(t.nominal[i]), "N": float(t.N[i]),
                    "D": float(t.D[i]), "C": float(6 * t.N[i] * t.D[i]), "tokens_per_sample": 64, "eval": ev})
    return out


class MemoryStore:
    """Any object with iter_records() and provenance() is a store (as a Hub snapshot will be)."""

    def __init__(self, records, revision="0123abcd" * 5):
        self.records, self.revision = records, revision

    def iter_records(self):
        for r in self.records:
            yield StoredRecord(f"runs/demo/{r['run_id']}.json", "demo", r) if isinstance(r, dict) else r

    def provenance(self):
        return {"kind": "hub", "repo": "org/demo-results", "revision": self.revision}


def test_table_from_any_store_object_keeps_its_revision_and_lists_malformed_records():
    records = _records(metrics=False) + [StoredRecord("runs/demo/bad.json", "demo", None, "not valid JSON"),
                                         {"run_id": "partial", "study": "demo", "budget": 1e17, "N": 1e6}]
    table = table_from_store(MemoryStore(records))
    assert len(table) == 40 and table.provenance["revision"] == "0123abcd" * 5
    assert [s["where"] for s in table.skipped] == ["runs/demo/bad.json", "runs/demo/partial.json"]
    assert "no loss" in table.skipped[1]["reason"] and table.tokens_per_sample == 64
    group_budgets(table, 0.05)
    doc = fit_document(table, FitOptions(n_boot=50, parametric=False, holdout=0))
    assert doc["provenance"]["revision"] == "0123abcd" * 5 and len(doc["skipped_records"]) == 2
    with pytest.raises(Exception, match="bad.json: not valid JSON"):
        table_from_store(MemoryStore(records), strict=True)


def test_local_store_fit_writes_revision_into_fit_json_and_report(tmp_path, capsys):
    store = LocalStore(tmp_path / "store")
    for r in _records():
        store.put_run(r)
    assert main(["--runs", str(tmp_path / "store"), "--out", str(tmp_path / "o"), *FAST]) == 0
    fit = json.loads((tmp_path / "o" / "fit.json").read_text())
    revision = store.provenance()["revision"]
    assert fit["provenance"]["revision"] == revision and fit["inputs"][0]["revision"] == revision
    assert revision in (tmp_path / "o" / "report.md").read_text()
    assert fit["study"] == "demo" and fit["tokens_per_sample"] == 64


def test_generation_metrics_get_compute_optimal_laws_with_higher_is_better_handled():
    table = table_from_store(MemoryStore(_records()))
    group_budgets(table, 0.05)
    doc = fit_document(table, FitOptions(n_boot=100, parametric=False, holdout=1), targets=[1e20])
    laws = doc["approach2"]["laws"]
    for name in ("FID", "accuracy", "accuracy_colour", "accuracy_position", "accuracy_shape", "clip_score"):
        assert name in laws, name
    assert laws["FID"]["exponent"] == pytest.approx(-0.2, abs=0.02) and not laws["FID"]["higher_is_better"]
    acc = laws["accuracy"]
    assert acc["fitted"] == "accuracy / (1 - accuracy)" and acc["transform"] == "odds" and acc["higher_is_better"]
    assert acc["exponent"] > 0  # the odds of a correct image rise with compute
    assert laws["clip_score"]["exponent"] == pytest.approx(0.05, abs=0.005)  # higher is better: positive exponent
    p = load_fit(doc).predict(1e20)["approach2"]
    true_acc = 1 - 0.4 * (1e20 / 1e17) ** -0.2
    # the records' truth is 1 - acc = 0.4·(C/1e17)^-0.2; the odds law is another (bounded) form, which 30x beyond
    # the last budget it tracks to within 0.02 (0.913 vs 0.900 here), while never leaving (0, 1)
    assert p["accuracy"]["value"] == pytest.approx(true_acc, abs=0.02)
    assert p["accuracy"]["ci90_noise"][0] <= p["accuracy"]["value"] <= p["accuracy"]["ci90_noise"][1] < 1
    assert p["accuracy_colour"]["value"] > p["accuracy_position"]["value"]
    assert doc["loss_to_fid"]["status"] == "fitted" and doc["loss_to_fid"]["exponent"] > 0  # FID rises with loss
    assert load_fit(doc).predict(1e20)["fid_from_loss"]["value"] > 0
    bt = [b for b in doc["backtest"] if b["approach"] == "approach2"][0]["quantities"]
    assert bt["accuracy"]["actual"] == pytest.approx(doc["approach2"]["budgets"][-1]["metrics"]["accuracy"])


def test_budget_tolerance_groups_nearby_budgets_in_log_space(tmp_path):
    t = isoflop_table(paper_truth(), np.random.default_rng(0), 3e-4, budgets=(1e17, 1e18), depths=range(2, 10))
    jitter = np.where(np.arange(len(t)) % 2 == 0, 1.02, 0.985)
    rows = ["budget,N,D,loss"] + [f"{b * j!r},{n!r},{d * j!r},{v!r}" for b, n, d, v, j in
                                  zip(t.nominal.tolist(), t.N.tolist(), t.D.tolist(), t.loss.tolist(), jitter.tolist())]
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(rows) + "\n")
    table = group_budgets(load_runs(path), 0.05)
    assert len(np.unique(table.budget)) == 2
    assert len(np.unique(group_budgets(load_runs(path), 0.0).budget)) == 4
    nobudget = tmp_path / "nobudget.csv"  # without a budget column each run's budget is its own C = 6ND
    nobudget.write_text("\n".join(["N,D,loss"] + [",".join(r.split(",")[1:]) for r in rows[1:]]) + "\n")
    assert len(np.unique(group_budgets(load_runs(nobudget), 0.05).budget)) == 2


def test_fit_json_and_report_carry_the_study_cost_as_trained_trunks_and_cooldowns(tmp_path):
    """Records of trunk branches cost their cooldowns plus each trunk's longest stretch; others their whole C."""
    records = _records(metrics=False)
    by_size: dict[float, list[dict]] = {}
    for r in records:
        r["steps"] = 1000 * (1 + len(by_size.get(r["N"], [])))  # a size's budgets: 1000, 2000, ... steps
        by_size.setdefault(r["N"], []).append(r)
    trunked = [r for rs in by_size.values() for r in rs if len(rs) >= 2]
    for r in trunked:  # a 20 % cooldown from trunk-<N>
        r["trunk"] = {"run_id": f"trunk-{r['N']:.0f}", "branch_step": int(0.8 * r["steps"])}
    store = LocalStore(tmp_path / "store")
    for r in records:
        store.put_run(r)
    assert main(["--runs", str(tmp_path / "store"), "--out", str(tmp_path / "o"), *FAST]) == 0
    cost = json.loads((tmp_path / "o" / "fit.json").read_text())["training_cost"]
    trunk_len = {}
    for r in trunked:
        trunk_len[r["trunk"]["run_id"]] = max(trunk_len.get(r["trunk"]["run_id"], 0), r["C"] * 0.8)
    expected = sum(r["C"] * 0.2 for r in trunked) + sum(trunk_len.values()) + \
        sum(r["C"] for r in records if "trunk" not in r)
    assert cost["trained_flops"] == pytest.approx(expected, rel=1e-12)
    assert cost["independent_flops"] == pytest.approx(sum(r["C"] for r in records), rel=1e-12)
    assert cost["trunks"] == len(trunk_len) and cost["isoflop_points"] == len(records)
    assert cost["trained_flops"] < cost["independent_flops"]
    assert "training compute of `demo`" in (tmp_path / "o" / "report.md").read_text()
