"""Progressive scaling: `python -m ditlaws.sweep next` proposes the next budget's sizes around the fitted N_opt."""

import math

import numpy as np
import pytest
import yaml

from ditlaws.store import LocalStore
from ditlaws.sweep.next import main as next_main
from ditlaws.sweep.plan import load_sweep, plan_sweep

WIDTHS = (8, 12, 16, 24, 32, 48, 64)
SWEEP = {"study": "prog", "budgets": [1e9, 3e9, 1e10], "min_steps": 1,
         "sizes": [{"depth": 1, "width": w, "heads": 1} for w in WIDTHS],
         "base": {"model": {"patch_size": 4}, "data": {"resolution": 16, "text_dim": 16, "text_len": 8},
                  "train": {"global_batch": 4, "mixed_precision": "no"}}}
E, ALPHA, BETA = 0.1, 0.5, 0.5


def truth_loss(N, D, A, B):
    return E + A / N**ALPHA + B / D**BETA


def n_opt_true(C, A, B):
    return (ALPHA * A / (BETA * B)) ** (1 / (ALPHA + BETA)) * (C / 6) ** (BETA / (ALPHA + BETA))


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / "out")}))
    runs = plan_sweep(load_sweep(path))
    N = np.array(sorted({r.N for r in runs}))
    # put the true optimum of the middle budget in the middle of the sampled sizes
    A = 50.0
    B = A / (np.sqrt(N[0] * N[-1]) / math.sqrt(3e9 / 6))
    store = LocalStore(tmp_path / "out" / "store")
    rng = np.random.default_rng(0)
    for r in runs:
        loss = truth_loss(r.N, r.D, A, B) * (1 + 1e-4 * rng.standard_normal())
        store.put_run({"study": "prog", "run_id": r.run_id, "budget": r.budget, "N": r.N, "D": r.D, "C": r.C,
                       "eval": {"val_loss": {"mean": float(loss), "sem": 1e-4}}})
    return path, A, B


def test_next_proposes_an_interior_grid_on_synthetic_truth(study, tmp_path, capsys):
    path, A, B = study
    budget = 3e10
    assert next_main(["--from", str(path), "--budget", str(budget), "--sizes", "5",
                      "--write", str(tmp_path / "next.yaml")]) == 0
    nxt = load_sweep(tmp_path / "next.yaml")
    runs = plan_sweep(nxt)
    assert nxt.budgets == [budget] and nxt.study == "prog" and len(runs) == 5
    assert nxt.store_dir == tmp_path / "out" / "store"  # extends the same study
    Ns = sorted(r.N for r in runs)
    assert len(set(Ns)) == 5
    true = n_opt_true(budget, A, B)
    assert Ns[0] < true < Ns[-1]  # the new budget's minimum lies inside the proposed sizes
    assert Ns[1] < true < Ns[-2]  # with room on both sides
    assert "N_opt" in capsys.readouterr().out


@pytest.mark.parametrize("args, key", [
    (["--budget", "-1"], "--budget"), (["--budget", "nan"], "--budget"), (["--budget", "1e11", "--sizes", "2"],
                                                                            "--sizes"),
])
def test_next_bad_input(study, tmp_path, args, key):
    from ditlaws.errors import UserError

    path, _, _ = study
    with pytest.raises(UserError, match=key):
        next_main(["--from", str(path), "--write", str(tmp_path / "n.yaml"), *args])
