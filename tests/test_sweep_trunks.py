"""Trunks and branches: a branch is the independent WSD run of its budget, bit for bit on CPU in fp32, for less
training; a trunk sweep is idempotent; bad trunk configs are one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tiny_sweep import tiny_sweep

from ditlaws.errors import UserError
from ditlaws.store import LocalStore
from ditlaws.sweep import plan_sweep, run_sweep, sweep_from_dict
from ditlaws.sweep.plan import cost_of
from ditlaws.sweep.trunks import trained_flops

WSD = {"schedule": "wsd", "cooldown_frac": 0.2, "warmup_steps": 2}
BUDGETS = [4e7, 8e7, 1.2e8]  # 2 sizes x 3 budgets: 4..32 steps per run
RECORD_KEYS = ("steps", "N", "D", "C", "final_loss", "final_loss_ema", "loss_last10pct")


def trunk_sweep(tmp: Path, study: str, trunks: bool, **train):
    raw = tiny_sweep(study, train={**WSD, **train}, budgets=BUDGETS, trunks=trunks, out=str(tmp / study))
    return sweep_from_dict(raw)


def weights(record: dict) -> str:
    path = Path(record["sweep"]["output_dir"]) / "model" / "diffusion_pytorch_model.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def comparable(record: dict) -> dict:
    return {**{k: record[k] for k in RECORD_KEYS}, "val_loss": record["eval"]["val_loss"], "weights": weights(record)}


def trained_steps(sweep, records: list[dict]) -> int:
    """Optimizer steps actually trained (metrics.jsonl has one line per step): trunks + each branch after its
    branch point, or every run in full."""
    def lines(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    total = sum(len(lines(p)) for p in Path(sweep.runs_dir).glob("*-trunk-s*/metrics.jsonl"))
    for r in records:
        start = (r.get("trunk") or {}).get("branch_step", 0)
        total += sum(1 for row in lines(Path(r["sweep"]["output_dir"]) / "metrics.jsonl") if row["step"] > start)
    return total


@pytest.fixture(scope="module")
def independent(tmp_path_factory):
    sweep = trunk_sweep(tmp_path_factory.mktemp("independent"), "wsd", trunks=False)
    return sweep, run_sweep(sweep, log=lambda *_: None)


def test_branches_are_the_independent_wsd_runs_bit_for_bit(tmp_path, independent):
    ind_sweep, ind_records = independent
    sweep = trunk_sweep(tmp_path, "wsd", trunks=True)
    records = run_sweep(sweep, log=lambda *_: None)
    assert [r["run_id"] for r in records] == [r["run_id"] for r in ind_records] and len(records) == 6
    for ours, theirs in zip(records, ind_records):
        assert comparable(ours) == comparable(theirs), ours["run_id"]
        assert ours["trunk"]["branch_step"] == ours["steps"] - max(1, round(0.2 * ours["steps"]))
        assert "trunk" not in theirs
    ours_steps, theirs_steps = trained_steps(sweep, records), trained_steps(ind_sweep, ind_records)
    assert theirs_steps == sum(r["steps"] for r in ind_records)
    assert ours_steps <= 0.7 * theirs_steps, (ours_steps, theirs_steps)
    cost = cost_of([r for r in plan_sweep(sweep) if r.skip_reason is None])
    assert cost.points == 6 and cost.budgets == 3
    assert cost.trained / cost.independent == pytest.approx(ours_steps / theirs_steps, rel=0.05)  # sizes differ
    from_records = trained_flops(records)  # what the demo and the lead's report read: the same numbers
    assert from_records["trained_flops"] == pytest.approx(cost.trained) and from_records["trunks"] == 2
    assert from_records["independent_flops"] == pytest.approx(cost.independent)
    assert trained_flops(ind_records)["trained_flops"] == pytest.approx(cost.independent)

    # idempotent: a second runner finds every branch in the store and trains nothing
    store = LocalStore(sweep.store_dir)
    before = {r["run_id"]: store.get_run("wsd", r["run_id"]) for r in records}
    lines = []
    again = run_sweep(sweep, log=lines.append)
    assert [comparable(r) for r in again] == [comparable(r) for r in records]
    assert sum("in store, skipped" in line for line in lines) == 6
    assert {r["run_id"]: store.get_run("wsd", r["run_id"]) for r in records} == before


def test_trunks_need_wsd_and_a_cooldown_of_10_percent(tmp_path):
    raw = tiny_sweep("bad", train={"schedule": "cosine"}, trunks=True, out=str(tmp_path / "a"))
    with pytest.raises(UserError, match="base.train.schedule must be wsd"):
        plan_sweep(sweep_from_dict(raw))
    raw = tiny_sweep("bad", train={"schedule": "wsd", "cooldown_frac": 0.05}, trunks=True, out=str(tmp_path / "b"))
    with pytest.raises(UserError, match="cooldown_frac must be >= 0.1"):
        plan_sweep(sweep_from_dict(raw))


@pytest.mark.slow
def test_trunks_on_long_lived_workers_give_the_same_records(tmp_path, independent):
    """The subprocess executor: one worker per slot runs each trunk with its branches (one job per trunk)."""
    _, ind_records = independent
    raw = tiny_sweep("wsd", train=WSD, budgets=BUDGETS, trunks=True, out=str(tmp_path / "workers"),
                     executor={"kind": "subprocess", "max_parallel": 2})
    lines = []
    records = run_sweep(sweep_from_dict(raw), log=lines.append)
    assert [comparable(r) for r in records] == [comparable(r) for r in ind_records]
    started = [line for line in lines if "started (pid" in line]
    assert len(started) == 2 and all("-trunk-s0" in line for line in started)  # two trunk jobs, no job per run
    assert len({line.split("(pid ")[1].split(",")[0] for line in started}) == 2  # on the two workers


def test_emit_writes_one_job_per_trunk(tmp_path):
    """--emit list|sbatch: one line / array task per trunk, whose folder's job file lists its branches."""
    from ditlaws.sweep.runner import emit_jobs

    sweep = trunk_sweep(tmp_path, "emit", trunks=True)
    for what in ("list", "sbatch"):
        path = emit_jobs(sweep, what, log=lambda *_: None)
        text = path.read_text()
        trunks = sorted(Path(sweep.runs_dir).resolve().glob("*-trunk-s0"))
        assert len(trunks) == 2 and all(f"ditlaws.sweep job {t}" in text for t in trunks)
        assert text.count("ditlaws.sweep job") == 2
    spec = json.loads((trunks[0] / "sweep_job.json").read_text())
    assert spec["kind"] == "trunk" and [b["branch_step"] for b in spec["branches"]] == sorted(
        b["branch_step"] for b in spec["branches"]) and len(spec["branches"]) == 3


def test_a_later_budget_continues_the_trunks(tmp_path, independent):
    """What `sweep next` writes (the same sweep with a larger budget) continues each trunk from its last branch
    point instead of training it again, and its branches are still the independent WSD runs."""
    _, ind_records = independent
    first = sweep_from_dict(tiny_sweep("wsd", train=WSD, budgets=BUDGETS[:2], trunks=True, out=str(tmp_path / "s")))
    run_sweep(first, log=lambda *_: None)
    before = {p.parent.name: p.read_text().splitlines() for p in Path(first.runs_dir).glob("*-trunk-s0/metrics.jsonl")}
    later = sweep_from_dict(tiny_sweep("wsd", train=WSD, budgets=BUDGETS[2:], trunks=True, out=str(tmp_path / "s")))
    records = run_sweep(later, log=lambda *_: None)
    assert [comparable(r) for r in records] == [comparable(r) for r in ind_records if r["budget"] == BUDGETS[2]]
    for r in records:  # each trunk trained only from its previous end to the new branch point: the rows before it
        rows = (Path(later.runs_dir) / r["trunk"]["run_id"] / "metrics.jsonl").read_text().splitlines()
        old = before[r["trunk"]["run_id"]]  # (with their wall times) are the first sweep's
        assert rows[:len(old)] == old and len(old) < r["trunk"]["branch_step"]
        assert [json.loads(line)["step"] for line in rows] == list(range(1, r["trunk"]["branch_step"] + 1))


@pytest.mark.slow  # the fit behind the proposal (bootstrap)
def test_sweep_next_says_which_trunks_it_continues(tmp_path, capsys):
    """The YAML `sweep next` writes for a trunk sweep names, per size, the existing trunk it continues (and from
    which step) or a new trunk."""
    import math

    import numpy as np
    import yaml
    from test_sweep_next import SWEEP, truth_loss

    from ditlaws.sweep.next import main as next_main
    from ditlaws.training.checkpoint import checkpoint_dir, write_state

    raw = {**SWEEP, "trunks": True, "out": str(tmp_path / "out"),
           "base": {**SWEEP["base"], "train": {**SWEEP["base"]["train"], **WSD}}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    runs = [r for r in plan_sweep(sweep_from_dict(raw)) if r.skip_reason is None]
    N = np.array(sorted({r.N for r in runs}))
    A = 50.0
    B = A / (np.sqrt(N[0] * N[-1]) / math.sqrt(3e9 / 6))
    store = LocalStore(tmp_path / "out" / "store")
    for r in runs:
        store.put_run({"study": "prog", "run_id": r.run_id, "budget": r.budget, "N": r.N, "D": r.D, "C": r.C,
                       "eval": {"val_loss": {"mean": float(truth_loss(r.N, r.D, A, B)), "sem": 1e-4}}})
    for r in runs:  # every trunk of the first sweep has its checkpoint at its last branch point
        folder = checkpoint_dir(tmp_path / "out" / "runs" / r.trunk_id, r.branch_step)
        folder.mkdir(parents=True, exist_ok=True)
        write_state(folder, {"step": r.branch_step})
    assert next_main(["--from", str(path), "--budget", "3e10", "--sizes", "5", "--span", "3",
                      "--write", str(tmp_path / "next.yaml")]) == 0
    header = [line for line in (tmp_path / "next.yaml").read_text().splitlines() if line.startswith("# trunk ")]
    assert len(header) == 5
    existing = {r.trunk_id: max(q.branch_step for q in runs if q.trunk_id == r.trunk_id) for r in runs}
    for line in header:
        trunk = line.split()[2].rstrip(":")
        if trunk in existing:
            assert f"continues the existing trunk from step {existing[trunk]:,}" in line
        else:
            assert "new trunk" in line
    assert any("continues" in line for line in header)
