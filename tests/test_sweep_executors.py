"""Sweep executors: child processes and submitit jobs give the in-process runner's records; jobs.json restarts;
the emitted sbatch script is what Slurm expects; bad executor input is one line and exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_sweep import tiny_sweep

from ditlaws.errors import UserError
from ditlaws.executors.launch import Launch, job_command
from ditlaws.executors.ledger import JobEntry, read_ledger, write_ledger
from ditlaws.executors.progress import RunsFailed
from ditlaws.executors.subprocess_pool import child_env
from ditlaws.locks import _process_start
from ditlaws.store import LocalStore
from ditlaws.sweep import main, run_sweep, sweep_from_dict
from ditlaws.sweep import plan_sweep as plan
from ditlaws.sweep.runner import emit_jobs, pending_runs

ROOT = Path(__file__).resolve().parents[1]
SWEEP = tiny_sweep("exec", budgets=[3e7, 6e7])
SLURM = {"kind": "slurm", "slurm_partition": "gpu", "slurm_account": "lab", "slurm_time_min": 90,
         "slurm_gpus_per_node": 0, "slurm_cpus_per_task": 2, "slurm_mem_gb": 8, "slurm_additional": ["qos=high"]}


def sweep_at(out: Path, **extra):
    return sweep_from_dict({**SWEEP, "out": str(out), **extra})


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))  # children import this checkout


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "sweep"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    return out, run_sweep(sweep_at(out), log=lambda _: None)


def comparable(record: dict) -> dict:
    """A store record without what differs between two places and times of the same run."""
    sweep = {k: v for k, v in record["sweep"].items() if k != "output_dir"}
    return {**{k: v for k, v in record.items() if k != "wall_time_s"}, "sweep": sweep}


def stored(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "store" / "runs" / "exec").glob("*.json"))}


def step_losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_records(out: Path, reference: Path) -> None:
    mine, theirs = stored(out), stored(reference)
    assert sorted(mine) == sorted(theirs) and len(mine) == 4
    for run_id, record in mine.items():
        assert comparable(record) == comparable(theirs[run_id])  # losses bit-equal, same fingerprint
        assert step_losses(out / "runs" / run_id) == step_losses(reference / "runs" / run_id)


# -- submitit (LocalExecutor: real processes, real job folders) --------------------------------------------------

@pytest.mark.slow
def test_submitit_jobs_give_the_in_process_records_and_a_restart_submits_nothing(tmp_path, in_process):
    reference, _ = in_process
    out = tmp_path / "sweep"
    lines = []
    records = run_sweep(sweep_at(out, executor=SLURM), log=lines.append, cluster="local")
    assert [r["run_id"] for r in records] == [r.run_id for r in plan(sweep_at(out))]
    assert_same_records(out, reference)
    ledger = read_ledger(out / "jobs.json")
    assert sorted(ledger) == sorted(stored(out)) and {e.state for e in ledger.values()} == {"completed"}
    folders = sorted(p.name for p in (out / "jobs").iterdir() if p.is_dir() and p.name[0].isdigit())
    assert folders == sorted(e.job_id for e in ledger.values())
    assert all(Path(e.stdout).is_file() for e in ledger.values())
    assert sum("trained + evaluated" in line for line in lines) == 4

    before = (out / "jobs.json").read_bytes(), sorted((out / "jobs").iterdir())
    lines.clear()
    run_sweep(sweep_at(out, executor=SLURM), log=lines.append, cluster="local")
    assert ((out / "jobs.json").read_bytes(), sorted((out / "jobs").iterdir())) == before
    assert sum("in store, skipped" in line for line in lines) == 4 and not any("submitted" in x for x in lines)


@pytest.mark.slow
def test_restart_waits_for_a_running_job_and_resubmits_a_dead_one(tmp_path):
    one_budget = {"budgets": [3e7], "executor": SLURM}
    sweep = sweep_at(tmp_path / "sweep", **one_budget)
    runs, _, todo = pending_runs(sweep, LocalStore(sweep.store_dir), log=lambda _: None)
    running, dead = todo
    # an earlier runner's job, still running: the job command, started here, recorded in jobs.json
    proc = subprocess.Popen([sys.executable, "-m", "ditlaws.sweep", "job", running.config.train.output_dir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    # and one whose process is gone without a record (start "0": never a live process's start time)
    entries = {running.run_id: entry(proc.pid, tmp_path), dead.run_id: entry(gone.pid, tmp_path, start="0")}
    write_ledger(tmp_path / "sweep" / "jobs.json", entries)
    lines = []
    try:
        run_sweep(sweep, log=lines.append, cluster="local")
    finally:
        proc.wait(timeout=300)
    assert any(f"job {proc.pid} running, not resubmitted" in line for line in lines)
    assert any(f"job {gone.pid} ended without a record" in line for line in lines)
    ledger = read_ledger(tmp_path / "sweep" / "jobs.json")
    assert ledger[running.run_id].job_id == str(proc.pid) and ledger[running.run_id].state == "completed"
    assert ledger[dead.run_id].job_id != str(gone.pid) and ledger[dead.run_id].state == "completed"
    job_folders = [p.name for p in (tmp_path / "sweep" / "jobs").iterdir() if p.name[0].isdigit()]
    assert job_folders == [ledger[dead.run_id].job_id]  # one new job: the dead one's
    assert sorted(stored(tmp_path / "sweep")) == sorted(r.run_id for r in runs)


def entry(pid: int, tmp_path: Path, start: str | None = None) -> JobEntry:
    folder = tmp_path / "elsewhere" / str(pid)
    return JobEntry(job_id=str(pid), cluster="local", folder=str(folder), stdout=str(folder / "log.out"),
                    stderr=str(folder / "log.err"), submitted=time.time(),
                    pid_start=start if start is not None else _process_start(pid))


# -- subprocess ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_child_processes_at_once_give_the_in_process_records(tmp_path, in_process):
    reference, _ = in_process
    out = tmp_path / "sweep"
    lines = []
    run_sweep(sweep_at(out, executor={"kind": "subprocess", "max_parallel": 2}), log=lines.append)
    assert_same_records(out, reference)
    assert sum("started (pid" in line for line in lines) == 4
    assert all((out / "runs" / run_id / "sweep_job.log").is_file() for run_id in stored(out))


# A stand-in for `python -m ditlaws.sweep worker`: the same protocol (run folders on stdin, "<code> <folder>" on
# stdout, each job's output in its sweep_job.log), each job running the fake script.
FAKE_WORKER = ("import subprocess, sys\n"
               "for line in sys.stdin:\n"
               "    d = line.strip()\n"
               "    with open(d + '/sweep_job.log', 'a') as log:\n"
               "        code = subprocess.run([sys.executable, '-c', sys.argv[1], d], stdout=log,\n"
               "                              stderr=subprocess.STDOUT).returncode\n"
               "    print(code, d, flush=True)\n")


def fake_jobs(monkeypatch, script: str) -> None:
    """Children that run `script` (with the run folder as argv[1]) instead of training: pool logic in a second."""
    monkeypatch.setattr("ditlaws.executors.subprocess_pool.job_command",
                        lambda run_dir, launch, port=None: [sys.executable, "-c", script, str(run_dir)])
    monkeypatch.setattr("ditlaws.executors.subprocess_pool.worker_command",
                        lambda: [sys.executable, "-c", FAKE_WORKER, script])


def test_pool_runs_at_most_max_parallel_children_and_names_the_failures(tmp_path, monkeypatch):
    fake_jobs(monkeypatch, "import sys, time, json, os; t0 = time.time(); time.sleep(1.0); "
              "print('boom', os.environ['OMP_NUM_THREADS']); open(sys.argv[1] + '/span', 'w').write("
              "json.dumps([t0, time.time()])); sys.exit(3)")
    monkeypatch.delenv("OMP_NUM_THREADS")
    sweep = sweep_at(tmp_path / "sweep", executor={"kind": "subprocess", "max_parallel": 2})
    with pytest.raises(RunsFailed) as err:
        run_sweep(sweep, log=lambda _: None)
    failures = err.value.failures
    assert len(failures) == 4 and all(f.reason == "exit 3" for f in failures)
    assert all(f.log.name == "sweep_job.log" and "boom" in f.log.read_text() for f in failures)
    assert str(failures[0].log) in str(err.value)
    spans = [json.loads((f.log.parent / "span").read_text()) for f in failures]
    overlap = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    assert overlap == 2  # two at once, never three
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert all(f"boom {threads}" in f.log.read_text() for f in failures)


def test_cli_exit_1_when_runs_fail(tmp_path, monkeypatch, capsys):
    fake_jobs(monkeypatch, "import sys; sys.exit(1)")
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / "sweep")}))
    assert main(["--config", str(config), "--executor", "subprocess"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: 4 run(s) failed") and "sweep_job.log" in err[0]


def test_child_threads_and_launch_commands(monkeypatch):
    cpu2 = Launch(processes=2, use_cpu=True)
    monkeypatch.delenv("OMP_NUM_THREADS")
    cores = len(os.sched_getaffinity(0))
    assert child_env(Launch(), slot=0, parallel=2)["OMP_NUM_THREADS"] == str(max(1, cores // 2))
    assert "OMP_NUM_THREADS" not in child_env(Launch(), slot=0, parallel=1)
    env = child_env(cpu2, slot=1, parallel=2)
    assert env["ACCELERATE_USE_CPU"] == "true" and env["OMP_NUM_THREADS"] == str(max(1, cores // 4))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert child_env(Launch(), slot=0, parallel=2)["OMP_NUM_THREADS"] == "3"  # the user's choice stays
    assert job_command("r", Launch())[1:] == ["-m", "ditlaws.sweep", "job", "r"]
    cmd = job_command("r", cpu2, port="1234")
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cmd
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[cmd.index("--main_process_port") + 1] == "1234"
    assert cmd[-4:] == ["-m", "ditlaws.sweep", "job", "r"]
    two_nodes = job_command("r", Launch(processes=4, nodes=2, use_cpu=False), machine_rank="1", main_ip="h0")
    assert two_nodes[two_nodes.index("--machine_rank") + 1] == "1" and "h0" in two_nodes


# -- emitted job files ---------------------------------------------------------------------------------------------

def directives(script: str) -> dict[str, str]:
    return dict(re.match(r"#SBATCH --([\w-]+)=(.*)", line).groups() for line in script.splitlines()
                if line.startswith("#SBATCH"))


def case_commands(script: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^  (\d+)\) (.*) ;;", script, re.M)}


def test_sbatch_script_is_what_slurm_expects(tmp_path):
    sweep = sweep_at(tmp_path / "sweep", executor=SLURM)
    path = emit_jobs(sweep, "sbatch", log=lambda _: None)
    script = path.read_text()
    assert script.startswith("#!/bin/bash\n") and path == tmp_path / "sweep" / "jobs" / "sweep.sbatch"
    first_command = next(i for i, line in enumerate(script.splitlines()) if line and not line.startswith("#"))
    assert all(line.startswith("#") for line in script.splitlines()[:first_command])  # directives come first
    d = directives(script)
    assert d["array"] == "0-3" and d["partition"] == "gpu" and d["account"] == "lab" and d["time"] == "01:30:00"
    assert d["cpus-per-task"] == "2" and d["mem"] == "8G" and d["qos"] == "high" and "gpus-per-node" not in d
    assert d["output"] == f"{tmp_path / 'sweep' / 'jobs' / 'sbatch'}/%A_%a.out"
    commands = case_commands(script)
    runs = plan(sweep)
    assert sorted(commands) == list(range(4))
    for i, run in enumerate(runs):  # one job per index, each the i-th pending run's job command
        assert commands[i].endswith(f"-m ditlaws.sweep job {tmp_path / 'sweep' / 'runs' / run.run_id}")
        assert (Path(run.config.train.output_dir) / "sweep_job.json").is_file()  # job files written first
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    bad = subprocess.run(["bash", str(path)], env={**os.environ, "SLURM_ARRAY_TASK_ID": "7"}, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "no run for array task 7" in bad.stderr

    gpus = {**SLURM, "slurm_gpus_per_node": 4, "slurm_nodes": 2, "processes": 8}
    multi = emit_jobs(sweep_at(tmp_path / "multi", executor=gpus), "sbatch", log=lambda _: None).read_text()
    assert directives(multi)["gpus-per-node"] == "4" and directives(multi)["nodes"] == "2"
    line = case_commands(multi)[0]
    assert line.startswith("exec srun --nodes=2 --ntasks-per-node=1 bash -c ")
    assert '--machine_rank "$SLURM_NODEID"' in line and '--main_process_ip "$MASTER_ADDR"' in line
    assert "MASTER_ADDR=$(scontrol show hostnames" in multi


@pytest.mark.slow
def test_sbatch_array_task_runs_its_run(tmp_path):
    sweep = sweep_at(tmp_path / "sweep", executor=SLURM)
    path = emit_jobs(sweep, "sbatch", log=lambda _: None)
    runs = plan(sweep)
    proc = subprocess.run(["bash", str(path)], env={**os.environ, "SLURM_ARRAY_TASK_ID": "2"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(stored(tmp_path / "sweep")) == [runs[2].run_id]
    again = emit_jobs(sweep, "sbatch", log=lambda _: None).read_text()
    assert directives(again)["array"] == "0-2"  # the finished run is no longer pending
    assert runs[2].run_id not in again


def test_command_list_has_one_line_per_pending_run(tmp_path, capsys):
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / "sweep")}))
    assert main(["--config", str(config), "--emit", "list"]) == 0
    path = tmp_path / "sweep" / "jobs" / "commands.txt"
    assert str(path) in capsys.readouterr().out
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    for line, run in zip(lines, plan(sweep_at(tmp_path / "sweep")), strict=True):
        assert line.startswith(f"cd {os.getcwd()} && ") and line.endswith(f"job {tmp_path}/sweep/runs/{run.run_id}")


# -- bad input -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--executor", "kubernetes"], "--executor: invalid choice: 'kubernetes'"),
    (["--emit", "tarball"], "--emit: invalid choice: 'tarball'"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, capsys, args, says):
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / "sweep")}))
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config), *args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and says in lines[0]


@pytest.mark.parametrize("executor, args, says", [
    ({"kind": "kubernetes"}, [], "executor.kind"),
    ({"kind": "subprocess", "max_parallel": 0}, [], "executor.max_parallel"),
    ({**SLURM, "slurm_additional": ["qos"]}, ["--emit", "sbatch"], "executor.slurm_additional[0]"),
    ({**SLURM, "slurm_nodes": 2, "processes": 3}, ["--emit", "sbatch"], "executor.processes"),
    (SLURM, [], "needs Slurm's sbatch"),  # no Slurm on this machine
])
def test_bad_executor_config_is_one_line_and_exit_2(tmp_path, capsys, executor, args, says):
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({**SWEEP, "out": str(tmp_path / "sweep"), "executor": executor}))
    assert main(["--config", str(config), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0]


def test_ledger_that_is_not_json_is_a_user_error(tmp_path):
    (tmp_path / "jobs.json").write_text("[1, 2")
    with pytest.raises(UserError, match="jobs.json: not a sweep job ledger"):
        read_ledger(tmp_path / "jobs.json")
