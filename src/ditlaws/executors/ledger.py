"""`<sweep out>/jobs.json`: the scheduler jobs of a sweep's runs, so a restarted runner does not resubmit them.

    {"<run_id>": {"job_id": "4242_3", "cluster": "slurm", "folder": ".../jobs/4242_3", "stdout": ..., "stderr": ...,
                  "submitted": 1764770000.0, "state": "submitted" | "completed" | "failed", "pid_start": ...}}

The file is rewritten atomically; writers hold `jobs.json.lock` while they read, submit and write.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ditlaws.errors import UserError
from ditlaws.jsonio import read_json, write_json_atomic

LEDGER_FILE = "jobs.json"


@dataclass
class JobEntry:
    job_id: str
    cluster: str  # submitit's cluster name: "slurm", or "local" in tests
    folder: str
    stdout: str
    stderr: str
    submitted: float
    state: str = "submitted"
    pid_start: str | None = None  # local jobs: the process start time, to tell a live job from a reused pid


def ledger_path(out_dir: Path) -> Path:
    return Path(out_dir) / LEDGER_FILE


def read_ledger(path: Path) -> dict[str, JobEntry]:
    if not path.is_file():
        return {}
    try:
        raw = read_json(path)
        return {run_id: JobEntry(**entry) for run_id, entry in raw.items()}
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: not a sweep job ledger ({err}); remove it to forget the submitted jobs") from None


def write_ledger(path: Path, entries: dict[str, JobEntry]) -> None:
    write_json_atomic(path, {run_id: asdict(entry) for run_id, entry in sorted(entries.items())})
