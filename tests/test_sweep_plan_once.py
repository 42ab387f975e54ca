"""A sweep plans each run once: the job file carries the plan, training uses it (and checks it against the data)."""

import json
from pathlib import Path

import pytest
from tiny_sweep import tiny_sweep

from ditlaws.errors import UserError
from ditlaws.sweep import plan_sweep, run_sweep, sweep_from_dict
from ditlaws.sweep.job import JOB_FILE, plan_from_dict, run_job, write_job


def test_a_plan_survives_the_job_file(tmp_path):
    sweep = sweep_from_dict(tiny_sweep("once", out=str(tmp_path / "out")))
    for run in plan_sweep(sweep):
        path = write_job(run.config, sweep, run.plan)
        assert plan_from_dict(json.loads(path.read_text())["plan"], path) == run.plan


def test_training_in_a_sweep_does_not_plan_again(tmp_path, monkeypatch):
    import ditlaws.training.loop as loop

    def no_second_plan(*args, **kwargs):
        raise AssertionError("training planned a run the sweep had planned")

    monkeypatch.setattr(loop, "plan_run", no_second_plan)
    sweep = sweep_from_dict(tiny_sweep("once", budgets=[4e7], out=str(tmp_path / "out")))
    records = run_sweep(sweep, log=lambda _: None)
    assert [r["run_id"] for r in records] == [r.run_id for r in plan_sweep(sweep)]
    assert all(r["steps"] == p.plan.compute.steps for r, p in zip(records, plan_sweep(sweep), strict=True))


def test_a_plan_made_for_other_data_is_refused_before_training(tmp_path):
    sweep = sweep_from_dict(tiny_sweep("once", budgets=[4e7], out=str(tmp_path / "out")))
    run = plan_sweep(sweep)[0]
    path = write_job(run.config, sweep, run.plan)
    spec = json.loads(path.read_text())
    spec["plan"]["model_kwargs"]["sample_size"] = 32  # the data gives 16 px images
    path.write_text(json.dumps(spec))
    with pytest.raises(UserError, match=r"the run's plan was made for input geometry .*'sample_size': 32.* but the "
                                        r"data gives .*'sample_size': 16"):
        run_job(Path(run.config.train.output_dir))
    assert not (Path(run.config.train.output_dir) / "summary.json").exists()


def test_a_damaged_plan_in_a_job_file_is_one_line(tmp_path):
    sweep = sweep_from_dict(tiny_sweep("once", budgets=[4e7], out=str(tmp_path / "out")))
    run = plan_sweep(sweep)[0]
    path = write_job(run.config, sweep, run.plan)
    spec = json.loads(path.read_text())
    del spec["plan"]["compute"]
    path.write_text(json.dumps(spec))
    with pytest.raises(UserError, match=rf"{JOB_FILE}: the job's plan is not valid"):
        run_job(Path(run.config.train.output_dir))
