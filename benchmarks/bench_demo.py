"""`make demo` before and after, on the same machine: wall time, what it trained, and where the time went.

    python benchmarks/bench_demo.py OUT_BEFORE OUT_AFTER      # two finished demo folders (scripts/demo.sh OUT)
    python benchmarks/bench_demo.py --run OUT [OUT_BEFORE]    # run this checkout's demo into OUT first

For each folder it prints the demo's wall time (`timing.json`, written by scripts/demo.sh; for an older demo
without it, the last line of `demo.log` if you kept one: `Demo done in N s`), the budgets, isoFLOP points and
trained FLOPs (trunks + cooldowns, `ditlaws.sweep.trunks.trained_flops`), and the breakdown of the sweep path:
seconds inside training (the records' `wall_time_s`) and the Python processes started for jobs (one
`python -m ditlaws.sweep job` per run before the long-lived workers; one worker per slot after). Then the ratios
after / before. A benchmark, not a test: the numbers depend on the machine and its load; run both on one machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall_seconds(out: Path) -> float | None:
    timing = out / "timing.json"
    if timing.is_file():
        stages = json.loads(timing.read_text())
        return float(max(stages.values())) if stages else None
    log = out / "demo.log"
    if log.is_file():
        found = re.findall(r"Demo done in (\d+) s", log.read_text())
        return float(found[-1]) if found else None
    return None


def job_starts(out: Path) -> dict:
    """Python processes the sweep started for its jobs: per-run children (`$ ... ditlaws.sweep job` lines in the
    run folders' logs) and long-lived workers (<out>/sweep/jobs/worker_<slot>.log, one per start)."""
    per_run = worker_jobs = 0
    for log in (out / "sweep" / "runs").glob("*/sweep_job.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("$ (worker pid"):
                worker_jobs += 1
            elif line.startswith("$ ") and "ditlaws.sweep job" in line:
                per_run += 1
    workers = len({p for p in (out / "sweep" / "jobs").glob("worker_*.log")})
    return {"job_processes": per_run, "worker_processes": workers, "jobs_on_workers": worker_jobs}


def summary(out: Path) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from ditlaws.store import LocalStore
    from ditlaws.sweep.trunks import trained_flops

    records = LocalStore(out / "sweep" / "store").list_runs("demo")
    trunk_s = 0.0  # a branch's record holds its cooldown's time; its trunk's time is in the trunk's metrics
    for metrics in (out / "sweep" / "runs").glob("*-trunk-s*/metrics.jsonl"):
        rows = metrics.read_text().splitlines()
        trunk_s += json.loads(rows[-1]).get("wall_time_s", 0.0) if rows else 0.0
    return {"wall_s": wall_seconds(out), **trained_flops(records),
            "training_s": trunk_s + sum(r.get("wall_time_s") or 0.0 for r in records), **job_starts(out)}


def show(name: str, s: dict) -> None:
    wall = f"{s['wall_s']:.0f} s" if s["wall_s"] is not None else "unknown (no timing.json / demo.log)"
    print(f"{name}: wall {wall}; {s['budgets']} budgets, {s['isoflop_points']} isoFLOP points, {s['trunks']} trunks; "
          f"trained {s['trained_flops']:.3g} FLOPs (independent runs: {s['independent_flops']:.3g}); "
          f"inside training {s['training_s']:.0f} s; Python starts for jobs: {s['job_processes']} per-run + "
          f"{s['worker_processes']} workers ({s['jobs_on_workers']} jobs on workers)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", help="demo output folders: BEFORE AFTER (or, with --run, BEFORE only)")
    p.add_argument("--run", help="run this checkout's scripts/demo.sh into this folder first (the 'after')")
    args = p.parse_args()
    folders = [Path(f) for f in args.folders]
    if args.run:
        started = time.perf_counter()
        subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), args.run], cwd=ROOT, check=True)
        print(f"ran the demo in {time.perf_counter() - started:.0f} s")
        folders.append(Path(args.run))
    if not 1 <= len(folders) <= 2:
        p.error("give BEFORE AFTER, or --run OUT [BEFORE]")
    results = [summary(f) for f in folders]
    for name, s in zip(("before", "after") if len(results) == 2 else ("demo",), results):
        show(name, s)
    if len(results) == 2:
        before, after = results
        if before["wall_s"] and after["wall_s"]:
            print(f"after / before: wall {after['wall_s'] / before['wall_s']:.2f}x for "
                  f"{after['budgets']} vs {before['budgets']} budgets")
        print(f"after / before: trained FLOPs {after['trained_flops'] / before['trained_flops']:.2f}x, isoFLOP points "
              f"{after['isoflop_points']} vs {before['isoflop_points']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
