"""Command line of the sweep: run / plan a sweep, run one of its jobs, propose the next budget.

    python -m ditlaws.sweep --config SWEEP.yaml [--out DIR] [--dry-run] [--executor local|subprocess|slurm]
    python -m ditlaws.sweep --config SWEEP.yaml --emit sbatch|list  # job files + a batch script / command list
    python -m ditlaws.sweep job RUN_DIR                 # one run (or trunk + branches) end to end
    python -m ditlaws.sweep worker                      # run folders on stdin, one job after another
    python -m ditlaws.sweep next --store S --budget C [--sizes 5] [--from SWEEP.yaml] --write NEXT.yaml

--executor overrides the YAML's `executor.kind`: `local` trains the runs in this process one after another,
`subprocess` runs `executor.max_parallel` child processes at once (logs in <run folder>/sweep_job.log), `slurm`
submits a job array through submitit and waits (job ids in <out>/jobs.json, so a restart does not resubmit).

Exit codes: 0 done, 1 some runs failed (each named with its log; the others are in the store), 2 bad config or
input (one line naming the key), 3 a run's loss became NaN/inf, 130 interrupted.
"""

from __future__ import annotations

import sys

from ditlaws.errors import UserError, report
from ditlaws.executors import EMITS, KINDS
from ditlaws.options import ArgumentParser


def run_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m ditlaws.sweep", description=__doc__,
                       epilog="subcommands: `job RUN_DIR`, `next ...` (see `next --help`)")
    p.add_argument("--config", required=True, help="sweep YAML (see configs/sweeps/)")
    p.add_argument("--out", help="output folder: run folders in <out>/runs, the store in <out>/store")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--executor", choices=KINDS, help="where the runs execute (overrides the YAML's executor.kind)")
    p.add_argument("--emit", choices=EMITS, help="write the pending runs' job files and an sbatch --array script "
                   "(sbatch) or a command list (list) under <out>/jobs/, print where, and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    from ditlaws.executors.progress import RunsFailed

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["job"]:
            return job_main(argv[1:])
        if argv[:1] == ["worker"]:
            from ditlaws.sweep.worker import main as worker_main

            return worker_main(lambda run_dir: main(["job", run_dir]), argv[1:])
        if argv[:1] == ["next"]:
            from ditlaws.sweep.next import main as next_main

            return next_main(argv[1:])
        return sweep_main(argv)
    except UserError as err:
        return report(err)
    except RunsFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as err:
        from ditlaws.errors import report_no_space

        return report_no_space(err, "the sweep",
                               "finished runs and checkpoints are intact: free space and run the same command again")
    except Exception as err:
        from ditlaws.training import NonFiniteLossError

        if not isinstance(err, NonFiniteLossError):
            raise
        print(f"error: {err}", file=sys.stderr)  # lower train.lr in the sweep's base, then run it again
        return 3


def sweep_main(argv: list[str]) -> int:
    from ditlaws.sweep.plan import format_plan, load_sweep, plan_sweep
    from ditlaws.sweep.runner import emit_jobs, run_sweep

    args = run_parser().parse_args(argv)
    sweep = load_sweep(args.config, out=args.out)
    if args.executor:
        sweep.executor.kind = args.executor
    if args.dry_run:
        print(f"study {sweep.study}: {len(sweep.budgets)} budgets x {len(sweep.size_list)} sizes x "
              f"{len(sweep.seeds)} seeds; store {sweep.store_dir}")
        print(format_plan(plan_sweep(sweep)))
        return 0
    if args.emit:
        emit_jobs(sweep, args.emit)
        return 0
    planned = plan_sweep(sweep)
    if planned and all(r.skip_reason for r in planned):
        raise UserError(f"sweep {sweep.study}: none of its {len(planned)} runs would train (first: "
                        f"{planned[0].run_id}: {planned[0].skip_reason}); raise the budgets or lower min_steps "
                        "(--dry-run shows the plan)")
    run_sweep(sweep)
    print(f"store: {sweep.store_dir}   fit: python fit_laws.py --runs {sweep.store_dir} --out <dir>")
    return 0


def job_main(argv: list[str]) -> int:
    from pathlib import Path

    from ditlaws.sweep.job import read_job_file, run_job
    from ditlaws.sweep.trunk_job import TRUNK_KIND, run_trunk_job

    p = ArgumentParser(prog="python -m ditlaws.sweep job", description="Run one sweep job (train, validation "
                       "loss, store record) from its folder's sweep_job.json; a trunk's folder runs the trunk and "
                       "all its branches.")
    p.add_argument("run_dir", help="the run (or trunk) folder holding sweep_job.json")
    args = p.parse_args(argv)
    if read_job_file(Path(args.run_dir)).get("kind") == TRUNK_KIND:
        records = list(run_trunk_job(args.run_dir).values())
    else:
        records = [run_job(args.run_dir)]
    for record in records:
        val = (record.get("eval") or {}).get("val_loss") or {}
        if "mean" in val:
            print(f"{record['run_id']}: val_loss {val['mean']:.5f} ± {val['sem']:.5f}")
    return 0
