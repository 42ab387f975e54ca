"""What an executor reports: one line per run as it starts and finishes, the records it collected, its failures.

A run counts as done when its record is in the store with the sweep's fingerprint (the job writes it there),
whatever the process or scheduler said; anything else is a failure, named with the log to read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ditlaws.config import SweepConfig
from ditlaws.locks import Holder, folder_lock


class PlannedRun(Protocol):
    """What an executor needs of a planned run (`ditlaws.sweep.plan.PlannedRun` is one): executors sit below the
    sweep and take its runs, their records (`Progress.lookup`) and job files from it."""

    run_id: str
    config: Any  # the run's RunConfig (its output_dir is the run folder)
    plan: Any  # its RunPlan (plan.compute.steps)


@dataclass
class Failure:
    run_id: str
    reason: str  # "exit 3", "job 1234_0 ended (FAILED)"
    log: Path

    def describe(self) -> str:
        return f"{self.run_id}: {self.reason}, log {self.log}"


class RunsFailed(RuntimeError):
    """Some runs of a sweep did not produce a record; the others are in the store. Exit code 1."""

    def __init__(self, failures: list[Failure]):
        self.failures = failures
        super().__init__(f"{len(failures)} run(s) failed: " + "; ".join(f.describe() for f in failures)
                         + ". Fix the cause and run the sweep again: finished runs are kept, failed ones rerun")


@dataclass
class Outcome:
    records: dict[str, dict] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # run ids another process is working on
    done: set[str] = field(default_factory=set)  # jobs (runs or trunks) whose records are all in the store

    def collect(self, job, records: dict[str, dict]) -> None:
        self.records.update(records)
        self.done.add(job.run_id)


class Progress:
    """The [i/n] numbering of a sweep's runs and the reading of their records from the store."""

    def __init__(self, sweep: SweepConfig, runs: list[PlannedRun], lookup: Callable[[PlannedRun], dict | None],
                 log=print):
        self.sweep, self.lookup, self.log = sweep, lookup, log
        self.position = {r.run_id: i for i, r in enumerate(runs, 1)}
        self.total = len(runs)

    def prefix(self, run: PlannedRun) -> str:
        if getattr(run, "branches", None) is not None:  # a trunk job (ditlaws.sweep.trunks)
            ids = [self.position[b.run_id] for b in run.branches]
            return f"[trunk of {','.join(map(str, ids))}/{self.total}] {run.run_id}  steps {run.steps:,}"
        return f"[{self.position[run.run_id]}/{self.total}] {run.run_id}  steps {run.steps:,}"

    def records_of(self, job) -> dict[str, dict] | None:
        """{run_id: record} of what a job (a run, or a trunk's branches) put in the store; None if any is missing."""
        out = {}
        for run in getattr(job, "branches", None) or [job]:
            record = self.record(run)
            if record is None:
                return None
            out[run.run_id] = record
        return out

    def record(self, run: PlannedRun) -> dict | None:
        """The run's record in the store (`lookup`, given by the sweep runner: its test of "done")."""
        return self.lookup(run)

    def finished(self, run: PlannedRun, outcome: Outcome, seconds: float, resumed: bool, reason: str,
                 log_path: Path, since_submission: bool = False) -> None:
        """A job ended: its record into `outcome` (and a progress line), or a failure naming `log_path`."""
        records = self.records_of(run)
        if records is None:
            failure = Failure(run.run_id, reason, log_path)
            outcome.failures.append(failure)
            self.log(f"{self.prefix(run)}  failed ({reason}); log {log_path}")
            return
        outcome.collect(run, records)
        self.log(f"{self.prefix(run)}  {'resumed, ' if resumed else ''}trained + evaluated "
                 f"{'' if since_submission else 'in '}{seconds:.1f} s{' after submission' if since_submission else ''}"
                 f"  val_loss {', '.join(loss_text(r) for r in records.values())}")


def loss_text(record: dict) -> str:
    val = (record.get("eval") or {}).get("val_loss") or {}
    return f"{val['mean']:.4f} ± {val['sem']:.4f}" if "mean" in val else "n/a"


def held_elsewhere(run: PlannedRun) -> Holder | None:
    """Who holds the run folder's lock, when a live process does (another runner training it)."""
    lock = folder_lock(run.config.train.output_dir)
    holder = lock.holder()
    return holder if holder is not None and not lock.is_stale(holder) else None


def has_checkpoint(run: PlannedRun) -> bool:
    from ditlaws.training.checkpoint import complete_checkpoints

    return bool(complete_checkpoints(Path(run.config.train.output_dir)))
